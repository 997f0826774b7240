"""Notifier against a real AF_UNIX datagram socket, through both sd_notify back ends."""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from bessai_edge.service import notify
from bessai_edge.state import DeviceState, GatewayState
from tests.service.conftest import assignments

BACKENDS = ["systemd", "sdnotify"]


class FakeClock:
    """A monotonic clock the test moves by hand, so cadence is checked without waiting."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clean_environment(monkeypatch):
    for name in notify.PROCESS_ONLY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("backend", BACKENDS)
def test_notifier_ready_status_stopping_in_order(backend, notify_listener, clean_environment):
    clean_environment.setenv("NOTIFY_SOCKET", notify_listener.address)
    notifier = notify.Notifier.from_environment(backend=backend)

    notifier.ready("set up")
    notifier.status("cycle 1; inverter ok; no alarms")
    notifier.stopping()

    messages = notify_listener.wait_for(lambda m: len(m) >= 3, timeout=5)
    texts = [message.text for message in messages]
    assert notifier.enabled
    assert {message.pid for message in messages} == {os.getpid()}
    assert notifier.backend == backend
    assert [assignments(text) for text in texts] == [
        {"READY": "1", "STATUS": "set up"},
        {"STATUS": "cycle 1; inverter ok; no alarms"},
        {"STOPPING": "1"},
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_notifier_status_utf8_on_the_wire(backend, notify_listener, clean_environment):
    clean_environment.setenv("NOTIFY_SOCKET", notify_listener.address)
    notifier = notify.Notifier.from_environment(backend=backend)

    notifier.status("sitio Peñalolén")

    notify_listener.wait_for(lambda m: len(m) >= 1, timeout=5)
    raw = notify_listener.messages[0][1].encode("utf-8")
    assert raw == "STATUS=sitio Peñalolén".encode("utf-8")


def test_notifier_status_newline_cannot_add_assignment(notify_listener, clean_environment):
    clean_environment.setenv("NOTIFY_SOCKET", notify_listener.address)
    notifier = notify.Notifier.from_environment()

    notifier.status("device x\nREADY=1")

    notify_listener.wait_for(lambda m: len(m) >= 1, timeout=5)
    assert assignments(notify_listener.messages[0][1]) == {"STATUS": "device x READY=1"}


def test_notifier_without_notify_socket_sends_nothing(clean_environment, tmp_path):
    clean_environment.setenv("WATCHDOG_USEC", "1000000")
    notifier = notify.Notifier.from_environment()

    notifier.ready("x")
    notifier.status("y")
    notifier.stopping()

    assert not notifier.enabled
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval_s == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_watchdog_sends_first_call_then_when_due(backend, notify_listener, clean_environment):
    clean_environment.setenv("NOTIFY_SOCKET", notify_listener.address)
    clean_environment.setenv("WATCHDOG_USEC", "10000000")
    clock = FakeClock()
    notifier = notify.Notifier.from_environment(backend=backend, clock=clock)

    sent_at = []
    for second in range(21):  # a loop with a 1 s period calling watchdog() every cycle
        clock.now = 1000.0 + second
        if notifier.watchdog():
            sent_at.append(second)

    assert notifier.watchdog_interval_s == 10.0
    assert sent_at == [0, 3, 6, 9, 12, 15, 18]
    notify_listener.wait_for(lambda m: len(m) >= len(sent_at), timeout=5)
    notify_listener.receive(0.2)
    assert notify_listener.texts() == ["WATCHDOG=1"] * len(sent_at)


@pytest.mark.parametrize("period_s", [0.05, 0.5, 1.0, 2.0, 2.5])
def test_watchdog_gap_within_half_interval(period_s):
    # Only the timing rule is under test here: the messages go to a list (sockets are
    # covered above, and thousands of unread datagrams would fill a socket's queue).
    clock = FakeClock()
    notifier = notify.Notifier([].append, watchdog_usec=10_000_000, backend="list", clock=clock)

    sent_at = []
    for cycle in range(int(60 / period_s)):
        clock.now = 1000.0 + cycle * period_s
        if notifier.watchdog():
            sent_at.append(clock.now)

    gaps = [later - earlier for earlier, later in zip(sent_at, sent_at[1:])]
    assert gaps, "watchdog() sent at most once in a minute of cycles"
    assert max(gaps) <= 5.0 + 1e-9  # at least twice per 10 s interval
    assert min(gaps) >= 2.5 - 1e-9  # at most four times per interval


def test_watchdog_pid_of_another_process_disables(notify_listener, clean_environment):
    clean_environment.setenv("NOTIFY_SOCKET", notify_listener.address)
    clean_environment.setenv("WATCHDOG_USEC", "2000000")
    clean_environment.setenv("WATCHDOG_PID", str(os.getppid()))
    notifier = notify.Notifier.from_environment()

    assert notifier.watchdog() is False
    assert notifier.watchdog_interval_s == 0.0
    assert notify_listener.receive(0.2) == []


def test_watchdog_pid_of_this_process_enables(notify_listener, clean_environment):
    clean_environment.setenv("NOTIFY_SOCKET", notify_listener.address)
    clean_environment.setenv("WATCHDOG_USEC", "2000000")
    clean_environment.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = notify.Notifier.from_environment()

    assert notifier.watchdog() is True
    assert notify_listener.wait_for(lambda m: len(m) >= 1, timeout=5)[0][1] == "WATCHDOG=1"


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
def test_watchdog_usec_invalid_disables(value, caplog):
    with caplog.at_level(logging.WARNING, logger="bessai_edge.service.notify"):
        usec = notify.watchdog_usec_from_environment({"WATCHDOG_USEC": value})

    assert usec == 0
    assert f"WATCHDOG_USEC={value!r}" in caplog.text


@pytest.mark.parametrize("backend", BACKENDS)
def test_notifier_send_failure_logged_once_then_recovers(backend, tmp_path, clean_environment,
                                                         caplog):
    path = str(tmp_path / "late.sock")
    clean_environment.setenv("NOTIFY_SOCKET", path)
    notifier = notify.Notifier.from_environment(backend=backend)

    with caplog.at_level(logging.INFO, logger="bessai_edge.service.notify"):
        for _attempt in range(3):
            notifier.status("nobody listens yet")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(path)
            notifier.status("now someone does")
            listener.settimeout(5)
            received = listener.recv(4096)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert received == b"STATUS=now someone does"
    assert len(warnings) == 1
    assert path in warnings[0].getMessage()
    assert "after 3 failed messages" in caplog.text


def test_child_environment_hides_notify_socket_from_child(clean_environment):
    clean_environment.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    clean_environment.setenv("WATCHDOG_USEC", "30000000")
    clean_environment.setenv("WATCHDOG_PID", str(os.getpid()))
    clean_environment.setenv("BESSAI_TEST_KEPT", "yes")

    child = subprocess.run(
        [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        env=notify.child_environment(), capture_output=True, text=True, check=True)

    seen = json.loads(child.stdout)
    assert "NOTIFY_SOCKET" not in seen
    assert "WATCHDOG_USEC" not in seen
    assert "WATCHDOG_PID" not in seen
    assert seen["BESSAI_TEST_KEPT"] == "yes"
    assert os.environ["NOTIFY_SOCKET"] == "/run/systemd/notify"  # this process keeps it


def _state(devices, alarms, cycles=7):
    state = GatewayState(site="cl-stgo-01", version="0.1.0", cycles=cycles)
    for name, device_state in devices:
        state.devices.append(DeviceState(name=name, profile="p", endpoint="h:502", unit_id=1,
                                         state=device_state))
    state.active_alarms = list(alarms)
    return state


@pytest.mark.parametrize("devices, alarms, expected", [
    ([("inverter", "ok")], [], "cycle 7; inverter ok; no alarms"),
    ([("inverter", "down"), ("battery", "ok")], ["battery:soc_pct:low_warn"],
     "cycle 7; inverter down, battery ok; alarms: battery:soc_pct:low_warn"),
    ([], [], "cycle 7; no devices; no alarms"),
    ([("bess", "degraded")], ["a", "b", "c", "d", "e"],
     "cycle 7; bess degraded; alarms: a, b, c (+2 more)"),
])
def test_status_text_cases(devices, alarms, expected):
    assert notify.status_text(_state(devices, alarms)) == expected


def test_status_text_spool_dropping():
    # While a full disk dropped every record, the status line still read "inverter ok".
    state = _state([("inverter", "ok")], [])
    state.spool_dropping = True
    assert notify.status_text(state) == ("cycle 7; inverter ok; no alarms; spool dropping "
                                         "records (disk full or failing)")


def list_notifier(watchdog_usec):
    """Return (notifier, clock, sent): messages go to the list ``sent``, time is ``clock``."""
    clock = FakeClock()
    sent = []
    return notify.Notifier(sent.append, watchdog_usec, backend="list", clock=clock), clock, sent


def status_at(cycle, detail="inverter ok; no alarms"):
    return f"cycle {cycle}; {detail}"


def test_cycle_done_joins_watchdog_and_status():
    # The status used to go to systemd after every cycle, a message to PID 1 per second.
    notifier, clock, sent = list_notifier(watchdog_usec=10_000_000)

    for second in range(21):
        clock.now = 1000.0 + second
        notifier.cycle_done(status_at(second))

    assert sent == [f"WATCHDOG=1\nSTATUS={status_at(second)}" for second in (0, 3, 6, 9, 12, 15, 18)]


def test_cycle_done_sends_changed_status_at_once():
    notifier, clock, sent = list_notifier(watchdog_usec=10_000_000)

    for second in range(5):
        clock.now = 1000.0 + second
        detail = "inverter down; no alarms" if second >= 1 else "inverter ok; no alarms"
        notifier.cycle_done(status_at(second, detail))

    assert sent == [f"WATCHDOG=1\nSTATUS={status_at(0)}",
                    f"STATUS={status_at(1, 'inverter down; no alarms')}",
                    f"WATCHDOG=1\nSTATUS={status_at(3, 'inverter down; no alarms')}"]


def test_cycle_done_without_watchdog_refreshes_status():
    notifier, clock, sent = list_notifier(watchdog_usec=0)

    for second in range(25):
        clock.now = 1000.0 + second
        notifier.cycle_done(status_at(second))

    assert notify.STATUS_REFRESH_S == 10.0
    assert sent == [f"STATUS={status_at(second)}" for second in (0, 10, 20)]


def test_cycle_done_outside_systemd_sends_nothing():
    notifier = notify.Notifier()
    assert notifier.cycle_done(status_at(1)) is False
