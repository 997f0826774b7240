"""The link's outage log lines over real loopback TCP: "is down" once when an outage
starts, "restored" only at the first reply after it, with the count of failed attempts,
and outages that repeat within a minute counted in one line.

A listener that accepts TCP but never replies, and a simulator stopped with SIGSTOP,
both accept new connections (the kernel completes the handshake), so a successful
connect must not end the outage.
"""

import contextlib
import logging
import os
import re
import signal
import socket
import time

import pytest

from bessai_edge.errors import ConnectionLost, ConnectionRefused, LinkError, LinkTimeout
from bessai_edge.link_outages import LinkOutageLog
from tests.conftest import free_tcp_port
from tests.link.test_link import LUNA, SOC_WORDS, UNIT, make_link, wait_for_next_attempt
from tests.simulator.helpers import simulator  # noqa: F401 (fixture)

TIMEOUT_S = 0.2


@contextlib.contextmanager
def _stopped(device):
    """Stop the simulator process with SIGSTOP for the block: it accepts, never replies."""
    os.kill(device.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(device.process.pid, signal.SIGCONT)


def _messages(caplog, level):
    return [r.getMessage() for r in caplog.records
            if r.name == "bessai_edge.link" and r.levelno == level]


def test_link_silent_listener_never_logs_restored(caplog):
    caplog.set_level(logging.DEBUG, logger="bessai_edge.link")
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:  # never accept()ed
        port = listener.getsockname()[1]
        # One timeout per attempt, so that each read below is a new connection.
        link = make_link(port, request_timeout_s=TIMEOUT_S, silent_timeouts_before_reconnect=1)
        for _ in range(4):
            wait_for_next_attempt(link)
            with pytest.raises(LinkTimeout):
                link.read(UNIT, "holding", 37760, 2)
        link.close()
    assert link.sessions == 4, "each attempt connected, then timed out"
    assert not any("restored" in m for m in _messages(caplog, logging.INFO))
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "is down: no reply before the request timeout" in warnings[0]


def test_link_stopped_simulator_restored_only_after_reply(simulator, caplog):
    device = simulator("--capture", LUNA)
    caplog.set_level(logging.DEBUG, logger="bessai_edge.link")
    link = make_link(device.port, request_timeout_s=TIMEOUT_S, timeouts_before_reconnect=2,
                     silent_timeouts_before_reconnect=1)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    with _stopped(device):
        # Two timeouts drop the answered connection (the outage starts, no failed
        # attempt yet); then three reconnects each connect and get no reply.
        for _ in range(2 + 3):
            wait_for_next_attempt(link)
            with pytest.raises(LinkError):
                link.read(UNIT, "holding", 37760, 2)
        assert not any("restored" in m for m in _messages(caplog, logging.INFO))
    wait_for_next_attempt(link)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    link.close()

    assert link.sessions == 5  # the first, three silent ones, the one that replied
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "is down" in warnings[0]
    restored = [m for m in _messages(caplog, logging.INFO) if "restored" in m]
    assert len(restored) == 1, restored
    assert "and 3 failed attempts" in restored[0]


def test_link_outage_counts_from_first_failure(simulator, caplog):
    """The outage starts when the first failed request is sent, not at the drop.

    With three timeouts allowed on an answered connection, the link declares the device
    down only at the third. The "is down" and "restored after" durations must still
    count the time since the first of them was sent.
    """
    device = simulator("--capture", LUNA)
    caplog.set_level(logging.DEBUG, logger="bessai_edge.link")
    link = make_link(device.port, request_timeout_s=TIMEOUT_S, timeouts_before_reconnect=3)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    with _stopped(device):
        first_failure_started = time.monotonic()
        for _ in range(3):
            with pytest.raises(LinkTimeout):
                link.read(UNIT, "holding", 37760, 2)
        dropped = time.monotonic()
        assert not link.connected
    wait_for_next_attempt(link)
    before_reply = time.monotonic()
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    link.close()

    down = [m for m in _messages(caplog, logging.WARNING) if "is down" in m]
    assert len(down) == 1, down
    failing_s = float(re.search(r"failing for ([\d.]+) s", down[0]).group(1))
    # Dated from the moment the first failed request was sent, not from its timeout.
    assert failing_s >= round(dropped - first_failure_started, 1) - 0.1, down
    restored = [m for m in _messages(caplog, logging.INFO) if "restored after" in m]
    assert len(restored) == 1, restored
    restored_s = float(re.search(r"restored after ([\d.]+) s", restored[0]).group(1))
    assert restored_s >= round(before_reply - first_failure_started, 1) - 0.1, (
        restored, before_reply - first_failure_started)


def _brief_outage_cycles(link, count):
    """Read twice per cycle from a simulator that closes the connection at every second
    request: the first read reconnects and gets a reply, the second one is dropped."""
    for _ in range(count):
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        with pytest.raises(ConnectionLost):
            link.read(UNIT, "holding", 37760, 2)


def test_link_repeated_brief_outages_counted(simulator, caplog):
    # A connection dropped every cycle used to log "is down" and "restored" every cycle.
    device = simulator("--capture", LUNA, "--disconnect-every", "2")
    caplog.set_level(logging.DEBUG, logger="bessai_edge.link")
    link = make_link(device.port, outage_log_interval_s=3600)
    _brief_outage_cycles(link, 5)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    assert link.connects == 6
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "is down: the device closed the connection" in warnings[0]
    restored = [m for m in _messages(caplog, logging.INFO) if "restored" in m]
    assert len(restored) == 1, restored

    link.close()  # reports the brief outages counted since the first one ended
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert re.fullmatch(
        rf"connection to 127\.0\.0\.1:{device.port} \(unit id {UNIT}\) lost and restored 4 "
        r"times in the last \d+ s; last cause: the device closed the connection",
        warnings[1]), warnings[1]


def test_link_repeated_outage_logged_at_failed_attempt(simulator, caplog):
    """A repeated outage in which a connection attempt fails is logged as down and as
    restored, after the brief outages counted before it."""
    port = free_tcp_port()
    device = simulator("--capture", LUNA, "--disconnect-every", "2", port=port)
    caplog.set_level(logging.DEBUG, logger="bessai_edge.link")
    link = make_link(port, outage_log_interval_s=3600)
    # The first outage is logged, the second is counted as brief, the third has not ended.
    _brief_outage_cycles(link, 3)
    device.stop()
    wait_for_next_attempt(link)
    with pytest.raises(ConnectionRefused):
        link.read(UNIT, "holding", 37760, 2)
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 3, warnings
    assert "lost and restored 1 time in the last" in warnings[1], warnings[1]
    # "failing for" appears once the outage is 0.05 s old, which depends on the backoff.
    assert re.search(r"is down: connection to \S+ refused; (failing for [\d.]+ s, )?next attempt",
                     warnings[2]), warnings[2]

    simulator("--capture", LUNA, port=port)
    wait_for_next_attempt(link)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    link.close()
    restored = [m for m in _messages(caplog, logging.INFO) if "restored after" in m]
    assert len(restored) == 2, restored
    assert restored[1].endswith("and 1 failed attempt"), restored[1]
    assert len(_messages(caplog, logging.WARNING)) == 3  # nothing left to report at close


def test_link_reports_brief_outages_when_due(simulator, caplog):
    """Counted brief outages are reported once the interval has passed, at the next
    request, even when no outage follows. They used to wait for the next outage or
    for the link's close."""
    port = free_tcp_port()
    device = simulator("--capture", LUNA, "--disconnect-every", "2", port=port)
    caplog.set_level(logging.DEBUG, logger="bessai_edge.link")
    link = make_link(port, outage_log_interval_s=1.0)
    _brief_outage_cycles(link, 2)     # the first outage is logged, the second is not over
    device.stop()
    simulator("--capture", LUNA, port=port)  # the same device, now without drops
    wait_for_next_attempt(link)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS  # the brief outage ends
    assert len(_messages(caplog, logging.WARNING)) == 1

    time.sleep(1.0)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert "lost and restored 1 time in the last" in warnings[1], warnings[1]
    link.close()
    assert len(_messages(caplog, logging.WARNING)) == 2  # nothing left to report at close


def test_outage_log_report_due_at(caplog):
    outage = LinkOutageLog("192.0.2.10:502", 1, interval_s=60.0)
    error = ConnectionLost("the device closed the connection")
    assert outage.report_due_at == float("inf")
    outage.failed(0.0, 0.0, error, failed_attempt=False, retry_delay_s=0.0)
    outage.restored(2.0)
    assert outage.report_due_at == float("inf"), "a logged outage leaves nothing to report"
    outage.failed(10.0, 10.0, error, False, 0.0)
    outage.restored(11.0)
    assert outage.report_due_at == 62.0
    outage.report_brief_outages(62.0)
    assert outage.report_due_at == float("inf")


def test_outage_log_reports_brief_outages_once_per_interval(caplog):
    # Times are given, so the interval can pass without waiting for it.
    caplog.set_level(logging.DEBUG, logger="bessai_edge.link")
    outage = LinkOutageLog("192.0.2.10:502", 1, interval_s=60.0)
    error = ConnectionLost("the device closed the connection")
    outage.failed(0.0, 0.0, error, failed_attempt=False, retry_delay_s=0.0)
    outage.restored(2.0)
    for start in range(10, 61, 10):   # six brief outages, the last ending at 61 s
        outage.failed(float(start), float(start), error, False, 0.0)
        outage.restored(start + 1.0)
    assert len(_messages(caplog, logging.WARNING)) == 1, "59 s since the first one ended"

    outage.failed(70.0, 70.0, error, False, 0.0)
    outage.restored(71.0)
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert warnings[1] == ("connection to 192.0.2.10:502 (unit id 1) lost and restored 7 times "
                           "in the last 69 s; last cause: the device closed the connection")

    # An outage that starts a full interval after the previous one ended is logged.
    outage.failed(131.0, 131.0, error, False, 0.0)
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 3, warnings
    # Neither "failing for 0.0 s" nor "next attempt in 0.0 s" at the outage's first failure.
    assert warnings[2] == ("192.0.2.10:502 (unit id 1) is down: the device closed the "
                           "connection; next attempt at once")
    outage.restored(132.0)
    # The first reconnect worked: no "and 0 failed attempts".
    assert _messages(caplog, logging.INFO)[-1] == (
        "connection to 192.0.2.10:502 (unit id 1) restored after 1.0 s")


def test_link_lines_carry_device_fields(simulator, caplog):
    # journalctl BESSAI_DEVICE=... must find the outage lines of that device too.
    device = simulator("--capture", LUNA)
    caplog.set_level(logging.INFO, logger="bessai_edge.link")
    link = make_link(device.port, request_timeout_s=TIMEOUT_S, timeouts_before_reconnect=1)
    link.set_log_fields({"BESSAI_DEVICE": "battery", "BESSAI_PROFILE": "huawei_sun2000"})
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    with _stopped(device):
        with pytest.raises(LinkTimeout):
            link.read(UNIT, "holding", 37760, 2)
    wait_for_next_attempt(link)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    link.close()
    records = [record for record in caplog.records if record.name == "bessai_edge.link"]
    messages = [record.getMessage() for record in records]
    assert any("is down" in message for message in messages), messages
    assert any("restored after" in message for message in messages), messages
    for record in records:
        assert record.BESSAI_DEVICE == "battery"
        assert record.BESSAI_EVENT == "link"
