"""The link's outage log lines over real loopback TCP: "is down" once when an outage
starts, "restored" only at the first reply after it, with the count of failed attempts.

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

from bessai_edge.errors import LinkError, LinkTimeout
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
        link = make_link(port, request_timeout_s=TIMEOUT_S)
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
    link = make_link(device.port, request_timeout_s=TIMEOUT_S, timeouts_before_reconnect=2)
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
