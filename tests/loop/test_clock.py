"""The wall clock's trust: the kernel's NTP status and clock steps, in records and logs.

The status is read from the real kernel and compared with a C program built against
<sys/timex.h>. Changing it, or stepping the wall clock, would change them for the whole
machine, so those cases inject the status and the clock readings into ``WallClockWatch``
instead.
"""

import ctypes
import errno
import logging
import subprocess

from bessai_edge import clock
from bessai_edge.clock import WallClockWatch, kernel_clock_synchronized
from tests.conftest import require_commands
from tests.loop.conftest import gateway_env, run_gateway

ADJTIMEX_PROGRAM = """
#include <stdio.h>
#include <sys/timex.h>
int main(void) {
    struct timex buf = {0};
    printf("%d\\n", adjtimex(&buf));
    return 0;
}
"""


def kernel_state_from_c(tmp_path):
    """Return adjtimex()'s return value, as a C program compiled here reads it."""
    require_commands("gcc")
    source = tmp_path / "adjtimex.c"
    source.write_text(ADJTIMEX_PROGRAM)
    program = tmp_path / "adjtimex"
    subprocess.run(["gcc", "-o", str(program), str(source)], check=True)
    return int(subprocess.run([str(program)], capture_output=True, text=True,
                              check=True).stdout)


def test_kernel_status_agrees_with_c(tmp_path):
    state = kernel_state_from_c(tmp_path)
    assert kernel_clock_synchronized() is (state != 5)  # 5 is TIME_ERROR


class Status:
    """An injected kernel status, changed by the test."""

    def __init__(self, value):
        self.value = value
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.value


def test_status_read_every_interval_and_changes_logged(caplog):
    caplog.set_level(logging.INFO, logger="bessai_edge.clock")
    status = Status(False)
    watch = WallClockWatch(status)
    assert watch.observe(1, 1_000_000, 100.0) is False
    assert "system clock not synchronized by NTP" in caplog.text
    status.value = True
    assert watch.observe(2, 1_001_000, 101.0) is False, "asked again only after the interval"
    assert status.calls == 1
    mono_s = 100.0 + clock.SYNC_CHECK_INTERVAL_S
    assert watch.observe(3, 1_000_000 + mono_s * 1000 - 100_000, mono_s) is True
    assert "system clock synchronized by NTP" in caplog.text
    assert caplog.text.count("synchronized by NTP") == 2, "no line while nothing changes"


def test_synchronized_at_start_logs_nothing(caplog):
    caplog.set_level(logging.INFO, logger="bessai_edge.clock")
    assert WallClockWatch(Status(True)).observe(1, 5_000, 5.0) is True
    assert caplog.text == ""


def test_unreadable_status_is_null_with_a_warning(caplog):
    caplog.set_level(logging.INFO, logger="bessai_edge.clock")
    assert WallClockWatch(Status(None)).observe(1, 5_000, 5.0) is None
    assert "cannot read the kernel's clock status" in caplog.text


def test_step_logged_and_counted(caplog):
    caplog.set_level(logging.INFO, logger="bessai_edge.clock")
    watch = WallClockWatch(Status(True))
    watch.observe(1, 10_000, 10.0)
    watch.observe(2, 11_000, 11.0)
    assert watch.steps == 0
    watch.observe(3, 12_000 + 3_600_000, 12.0)  # NTP set the clock an hour ahead
    assert watch.steps == 1
    assert "wall clock stepped by +3600.000 s against the monotonic clock before cycle 3" \
        in caplog.text
    watch.observe(4, 13_000 + 3_600_000, 13.0)
    assert watch.steps == 1, "the new offset is the reference from then on"


def test_slow_slew_not_a_step():
    watch = WallClockWatch(Status(True))
    watch.observe(1, 0, 0.0)
    # NTP's fastest slew, 500 ppm, over an hour: 1.8 s
    watch.observe(2, 3_600_000 + 1_800, 3600.0)
    assert watch.steps == 0
    watch.observe(3, 3_601_000 + 1_800 - 1_500, 3601.0)  # 1.5 s back within 1 s
    assert watch.steps == 1


def test_records_carry_the_kernel_status(tmp_path):
    environ = gateway_env(tmp_path / "spool", BESSAI_MODE="simulator",
                          DRIVER_PROFILE_PATH="huawei_sun2000")
    run = run_gateway(environ, 2)
    assert run.returncode == 0, run.stderr
    expected = kernel_clock_synchronized()
    assert [record["clock_synced"] for record in run.records] == [expected, expected]
    assert ("system clock not synchronized by NTP" in run.stderr) is (expected is False)




def test_failed_adjtimex_gives_reason(monkeypatch, caplog):
    # A mock of libc's adjtimex: making the real call fail needs a seccomp filter, such
    # as a container's, which the test cannot install around one call.
    def failing_adjtimex(_buffer):
        ctypes.set_errno(errno.EPERM)
        return -1

    monkeypatch.setattr(clock, "_adjtimex", failing_adjtimex)
    assert clock.kernel_clock_synchronized() is None
    caplog.set_level(logging.INFO, logger="bessai_edge.clock")
    WallClockWatch(clock.kernel_clock_synchronized).observe(1, 5_000, 5.0)
    assert ("cannot read the kernel's clock status (adjtimex: Operation not permitted)"
            in caplog.text)
