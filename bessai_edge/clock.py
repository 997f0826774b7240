"""Whether the records' wall-clock time can be trusted.

A gateway without a battery-backed clock, such as a Raspberry Pi, boots with a time
restored from disk, at best that of its last shutdown, and keeps it until an NTP client
reaches a server. At a site whose uplink is down that can last hours, and every record's
``time_ms`` is wrong by the same amount. Records also carry ``mono_s`` and ``boot_id``,
so a receiver can correct them afterwards: within one boot, ``time_ms - mono_s * 1000``
of a record written after the synchronization gives the offset to apply. This module
supplies the two facts such a correction needs:

* ``clock_synced`` in each record: whether the kernel considered the clock
  synchronized by NTP (``adjtimex(2)`` with no change requested returns TIME_ERROR
  while it does not). None when the status cannot be read.
* a WARNING line when the wall clock jumps against the monotonic clock between two
  cycles: set by NTP or by hand, or the machine was suspended.
"""

import ctypes
import logging
import math
import os

from bessai_edge.ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)

SYNC_CHECK_INTERVAL_S = 10.0  # seconds between two reads of the kernel's status
# A change of time_ms - mono_s between two cycles beyond this is reported as a step. The
# NTP frequency correction is limited to 500 ppm (adjtimex(2): ADJ_FREQUENCY is clamped
# to 32768000, in units of 2^-16 ppm), and the allowance per second of monotonic time is
# twice that. A faster correction, such as a changed tick length (ADJ_TICK), or a step
# is reported.
STEP_MIN_MS = 1000.0
STEP_ALLOWANCE_MS_PER_S = 1.0
_TIME_ERROR = 5  # adjtimex's return value while the clock is not synchronized
# struct timex is 208 bytes on 64-bit Linux, so the buffer has room to spare. modes = 0
# (its first field) reads the status without changing anything and needs no privilege.
_TIMEX_BUFFER_SIZE = 512


def kernel_clock_synchronized():
    """Return True or False from the kernel's NTP status, or None when it cannot be read."""
    global _adjtimex
    if _adjtimex is None:
        try:
            _adjtimex = ctypes.CDLL(None, use_errno=True).adjtimex
        except (OSError, AttributeError):
            return None
    state = _adjtimex(ctypes.create_string_buffer(_TIMEX_BUFFER_SIZE))
    if state < 0:
        global last_error
        last_error = os.strerror(ctypes.get_errno())
        return None
    return state != _TIME_ERROR


_adjtimex = None  # libc's adjtimex, looked up at the first call
last_error = "adjtimex not found in libc"  # why the last read failed, for the log line


class WallClockWatch:
    """The wall clock's NTP synchronization and its steps, observed once per cycle.

    ``observe`` costs a few arithmetic operations and comparisons per cycle, and reads
    the kernel's status every ``SYNC_CHECK_INTERVAL_S``. ``status`` is injectable for
    tests, because the kernel's status can be changed only for the whole machine.
    """

    def __init__(self, status=kernel_clock_synchronized):
        self._status = status
        self.synced = None        # the last status read; None before the first, or unknown
        self.steps = 0
        self._checked = False
        self._check_at = -math.inf
        self._offset_ms = None    # time_ms - mono_s * 1000 of the previous cycle
        self._previous_mono_s = 0.0
        self._limited = RateLimitedLog(logger)

    def observe(self, cycle, wall_ms, monotonic_s):
        """Take a cycle's two clock readings; return ``clock_synced`` for its records."""
        offset_ms = wall_ms - monotonic_s * 1000.0
        if self._offset_ms is not None:
            jump_ms = offset_ms - self._offset_ms
            if abs(jump_ms) > STEP_MIN_MS + (monotonic_s - self._previous_mono_s) * (
                    STEP_ALLOWANCE_MS_PER_S):
                self._stepped(cycle, jump_ms)
        self._offset_ms = offset_ms
        self._previous_mono_s = monotonic_s
        if monotonic_s >= self._check_at:
            self._check_at = monotonic_s + SYNC_CHECK_INTERVAL_S
            self._check()
        return self.synced

    def _stepped(self, cycle, jump_ms):
        self.steps += 1
        self._limited.log("step", logging.WARNING,
                          "wall clock stepped by %+.3f s against the monotonic clock before "
                          "cycle %d (set by NTP or by hand, or the machine was suspended): "
                          "time_ms of the records before and after differ by that much more "
                          "than mono_s does", jump_ms / 1000.0, cycle,
                          extra={"BESSAI_EVENT": "clock_step", "BESSAI_CYCLE": cycle})

    def _check(self):
        synced = self._status()
        if self._checked and synced == self.synced:
            return
        was_checked, self._checked = self._checked, True
        self.synced = synced
        if synced is None:
            logger.warning("cannot read the kernel's clock status (adjtimex: %s): records "
                           "carry clock_synced=null", last_error, extra={"BESSAI_EVENT": "clock"})
        elif not synced:
            logger.warning("system clock not synchronized by NTP: the records' time_ms may "
                           "be wrong and they carry clock_synced=false until it is; enable "
                           "an NTP client (systemd-timesyncd or chrony) and check that it "
                           "reaches a server", extra={"BESSAI_EVENT": "clock"})
        elif was_checked:
            logger.info("system clock synchronized by NTP: records carry clock_synced=true",
                        extra={"BESSAI_EVENT": "clock"})
