"""Register images for the profile tests: captures, a fake device read and one plan cycle.

The fake read replaces the Modbus link because these tests check planning and
decoding, not the wire. The scan-loop and simulator tests replay the same captures over
real Modbus TCP.
"""

import array
import json

from bessai_edge.errors import DeviceException
from tests.conftest import CAPTURES

ILLEGAL_DATA_ADDRESS = 2


def load_capture(name):
    with open(CAPTURES / name, encoding="utf-8") as stream:
        return json.load(stream)


def capture_image(capture):
    """Return (unit, function code, address) -> word for every function the capture serves."""
    codes = {"holding": 3, "input": 4}
    functions = capture.get("functions") or [capture["function"]]
    return {(capture["unit_id"], codes[function], int(address)): word
            for function in functions
            for address, word in capture["registers"].items()}


class FakeDevice:
    """Answers reads from an image; an address it does not hold gets exception 2."""

    def __init__(self, image):
        self.image = dict(image)
        self.requests = []   # (unit, function, address, count) of every read
        self.rejected = []   # the reads answered with exception 2

    def read(self, unit_id, function, address, count):
        self.requests.append((unit_id, function, address, count))
        words = []
        for offset in range(count):
            word = self.image.get((unit_id, function, address + offset))
            if word is None:
                self.rejected.append((unit_id, function, address, count))
                raise DeviceException(ILLEGAL_DATA_ADDRESS)
            words.append(word)
        return words


def run_cycle(plan, device, probe=True):
    """Read every request of the plan from the device and decode; return (values, quality).

    A request rejected with exception 2 goes to ``plan.mark_illegal_address`` (with the
    device's read function when ``probe``), as the scan loop does.
    """
    buffer = array.array("H", bytes(2 * plan.buffer_words))
    requests = list(plan.requests)
    status = bytearray(b"\x01" * len(requests))
    for request in requests:
        try:
            words = device.read(request.unit_id, request.function, request.address,
                                request.count)
        except DeviceException as error:
            assert error.code == ILLEGAL_DATA_ADDRESS
            plan.mark_illegal_address(request, device.read if probe else None)
            continue
        buffer[request.buffer_offset:request.buffer_offset + request.count] = array.array(
            "H", words)
        status[request.block] = 0
    values, quality = plan.table.decode(buffer, status)
    return list(values), bytes(quality)


def point_at(plan, unit_id, address, type_name=None):
    """Return the index of the readable point of a plan at (unit id, address)."""
    for index, point in enumerate(plan.points):
        if point.unit_id == unit_id and point.address == address and (
                type_name is None or point.type == type_name):
            return index
    raise AssertionError(f"no point at unit {unit_id} address {address} in the plan")
