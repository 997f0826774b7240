"""Faults the simulator can inject, so tests can reproduce what real devices do.

Each fault copies a behaviour seen on site: a slow device (latency), a Huawei
inverter that ignores requests for about a second after a connect (quiet period),
exception codes on addresses a firmware does not implement, a busy device
(exception 6), a gateway that drops the connection, now and then or at every read
of some addresses, a device that accepts TCP and never replies.
"""

import dataclasses
import re

from bessai_edge.i18n import _

BUSY_EXCEPTION = 6  # Modbus exception 06: Server Device Busy

_EXCEPTION_SPEC = re.compile(r"(\d+)(?:-(\d+))?=(\d+)\Z")
_RANGE_SPEC = re.compile(r"(\d+)(?:-(\d+))?\Z")


@dataclasses.dataclass(frozen=True)
class AddressException:
    """Respond with Modbus exception ``code`` to any read that touches ``first``..``last``."""

    first: int
    last: int
    code: int

    def touches(self, address, count):
        return address <= self.last and address + count - 1 >= self.first


def parse_exception_spec(text):
    """Parse ``ADDRESS=CODE`` or ``FIRST-LAST=CODE`` into an AddressException.

    Raises ValueError with a message that shows the accepted form.
    """
    match = _EXCEPTION_SPEC.match(text.strip())
    if not match:
        raise ValueError(_("invalid exception fault {text!r}: expected ADDRESS=CODE or "
                           "FIRST-LAST=CODE, such as 32064=2").format(text=text))
    first = int(match.group(1))
    last = int(match.group(2) or first)
    code = int(match.group(3))
    if not 0 <= first <= last <= 65535:
        raise ValueError(_("invalid exception fault {text!r}: addresses must be 0 to 65535, "
                           "first not above last").format(text=text))
    if not 1 <= code <= 255:
        raise ValueError(_("invalid exception fault {text!r}: the code must be 1 to 255").format(
            text=text))
    return AddressException(first, last, code)


def parse_address_range(text):
    """Parse ``ADDRESS`` or ``FIRST-LAST`` (register addresses) into a (first, last) tuple."""
    match = _RANGE_SPEC.match(text.strip())
    first = int(match.group(1)) if match else 0
    last = int(match.group(2) or first) if match else 0
    if not match or not first <= last <= 65535:
        raise ValueError(_("invalid address range {text!r}: expected ADDRESS or FIRST-LAST "
                           "from 0 to 65535, first not above last, such as 32064 or "
                           "32064-32070").format(text=text))
    return first, last


def parse_request_range(text):
    """Parse ``N`` or ``N-M`` (request numbers from 1) into a (first, last) tuple."""
    match = _RANGE_SPEC.match(text.strip())
    first = int(match.group(1)) if match else 0
    last = int(match.group(2) or first) if match else 0
    if not match or not 1 <= first <= last:
        raise ValueError(_("invalid request range {text!r}: expected N or N-M with "
                           "1 <= N <= M, such as 2 or 2-5").format(text=text))
    return first, last


@dataclasses.dataclass(frozen=True)
class Faults:
    """Fault settings of one simulator; the defaults inject nothing.

    Request numbers count every request the server received since it started, from 1.
    """

    latency_s: float = 0.0          # delay before each reply
    latency_requests: tuple = ()    # (first, last): delay only these requests; empty: all
    quiet_after_accept_s: float = 0.0  # requests within this time after accept get no reply
    exceptions: tuple = ()          # AddressException entries
    busy_every: int = 0             # every Nth request gets exception 6
    disconnect_every: int = 0       # every Nth request closes the connection without a reply
    disconnect_at: tuple = ()       # (first, last) ranges: a read touching one closes it
    silent: bool = False            # accept connections, never reply

    def options(self):
        """Return the command-line options that set these faults, such as ``--busy-every 10``."""
        options = []
        if self.latency_s:
            options.append(f"--latency {self.latency_s:g}")
        if self.latency_requests:
            first, last = self.latency_requests
            options.append(f"--latency-requests {first}-{last}")
        if self.quiet_after_accept_s:
            options.append(f"--quiet-after-accept {self.quiet_after_accept_s:g}")
        for entry in self.exceptions:
            addresses = f"{entry.first}" if entry.first == entry.last else (
                f"{entry.first}-{entry.last}")
            options.append(f"--exception {addresses}={entry.code}")
        if self.busy_every:
            options.append(f"--busy-every {self.busy_every}")
        if self.disconnect_every:
            options.append(f"--disconnect-every {self.disconnect_every}")
        for first, last in self.disconnect_at:
            options.append(f"--disconnect-at {first}" if first == last else (
                f"--disconnect-at {first}-{last}"))
        if self.silent:
            options.append("--silent")
        return options

    def latency_for(self, request_number):
        """Return the delay before the reply to request ``request_number``."""
        if self.latency_requests:
            first, last = self.latency_requests
            if not first <= request_number <= last:
                return 0.0
        return self.latency_s

    def closes_at(self, address, count):
        """Return True when a read of ``count`` registers at ``address`` closes the connection."""
        return any(address <= last and address + count - 1 >= first
                   for first, last in self.disconnect_at)

    def exception_for(self, address, count):
        """Return the injected exception code of a read, or None."""
        for entry in self.exceptions:
            if entry.touches(address, count):
                return entry.code
        return None
