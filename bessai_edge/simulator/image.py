"""A register image: the words a simulated device holds, per unit id and function code."""

from bessai_edge.simulator.server import ILLEGAL_DATA_ADDRESS, ILLEGAL_FUNCTION

GATEWAY_TARGET_FAILED = 11  # Modbus exception 0B: Gateway Target Device Failed to Respond

# Replies of a device to a unit id it does not serve. Devices differ: some respond with
# exception 11, some return every register as 0xFFFF, others stay silent until the
# request times out.
UNKNOWN_UNIT_REPLIES = ("exception11", "ffff", "none")


class RegisterImage:
    """Words per (unit id, function code); a read of an address it does not hold gets exception 2."""

    def __init__(self, unknown_unit="exception11"):
        if unknown_unit not in UNKNOWN_UNIT_REPLIES:
            raise ValueError(f"unknown_unit={unknown_unit!r}: expected one of {UNKNOWN_UNIT_REPLIES}")
        self.unknown_unit = unknown_unit
        self.tables = {}

    @property
    def unit_ids(self):
        return sorted({unit_id for unit_id, _ in self.tables})

    def table(self, unit_id, function_code):
        """Return the address-to-word dict of one unit and function, created when missing."""
        return self.tables.setdefault((unit_id, function_code), {})

    def set_words(self, unit_id, function_code, address, words):
        table = self.table(unit_id, function_code)
        for offset, word in enumerate(words):
            table[address + offset] = word

    def read(self, unit_id, function_code, address, count):
        """Return the words, or the exception code a device would respond with."""
        if not any(unit == unit_id for unit, _ in self.tables):
            return self._unknown_unit_reply(count)
        table = self.tables.get((unit_id, function_code))
        if table is None:
            return ILLEGAL_FUNCTION
        words = []
        for address in range(address, address + count):
            word = table.get(address)
            if word is None:
                return ILLEGAL_DATA_ADDRESS
            words.append(word)
        return words

    def _unknown_unit_reply(self, count):
        if self.unknown_unit == "exception11":
            return GATEWAY_TARGET_FAILED
        if self.unknown_unit == "ffff":
            return [0xFFFF] * count
        return None
