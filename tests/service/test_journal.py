"""Logging set-up: plain stderr lines, JOURNAL_STREAM detection, fields in a real journald."""

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from bessai_edge.errors import ConfigError
from bessai_edge.service import journal
from tests.conftest import REPO, require_commands, skip_unless_ci

JOURNALD = "/lib/systemd/systemd-journald"


@pytest.fixture
def root_logger():
    """Give the test the root logger and put its handlers and level back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_stderr_is_journal_matches_device_and_inode(tmp_path):
    with open(tmp_path / "stream", "w") as stream:
        status = os.fstat(stream.fileno())
        environ = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}

        assert journal.stderr_is_journal(stream, environ) is True


@pytest.mark.parametrize("value", ["", "garbage", "1:", ":2", "0:0", "12:abc"])
def test_stderr_is_journal_rejects_other_values(value, tmp_path):
    with open(tmp_path / "stream", "w") as stream:
        assert journal.stderr_is_journal(stream, {"JOURNAL_STREAM": value}) is False


def test_stderr_is_journal_false_for_stream_without_fd():
    status = os.fstat(sys.__stderr__.fileno())
    environ = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}

    assert journal.stderr_is_journal(io.StringIO(), environ) is False


@pytest.mark.parametrize("text, expected", [
    ("debug", logging.DEBUG), ("INFO", logging.INFO), (" warning ", logging.WARNING),
    ("error", logging.ERROR), (logging.ERROR, logging.ERROR),
])
def test_parse_level_accepts_names(text, expected):
    assert journal.parse_level(text) == expected


def test_parse_level_rejects_unknown_name():
    with pytest.raises(ConfigError) as caught:
        journal.parse_level("verbose")

    assert "LOG_LEVEL='verbose'" in str(caught.value)
    assert "DEBUG, INFO" in str(caught.value)


def test_plain_line_carries_fields(root_logger, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    journal.setup_logging("info", site="cl-stgo-01", stream=stream)

    logging.getLogger("bessai_edge.test").warning(
        "device %s timed out", "inverter",
        extra={journal.FIELD_DEVICE: "inverter", journal.FIELD_ERROR_KIND: "timeout",
               journal.FIELD_CYCLE: 12})
    logging.getLogger("bessai_edge.test").debug("not shown at INFO")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING bessai_edge.test: device inverter timed out "
                             "BESSAI_CYCLE=12 BESSAI_DEVICE=inverter BESSAI_ERROR_KIND=timeout")


def test_spool_lines_carry_spool_event(root_logger, monkeypatch):
    # journalctl BESSAI_EVENT=spool must find the lines about dropped and evicted records.
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    journal.setup_logging("info", stream=stream)

    logging.getLogger("bessai_edge.spool.writer").warning("cannot write to spool")
    logging.getLogger("bessai_edge.spool.recovery").warning("cut torn tail",
                                                            extra={"BESSAI_CYCLE": 4})
    logging.getLogger("bessai_edge.gateway").info(
        "stopped", extra={journal.FIELD_EVENT: journal.EVENT_SHUTDOWN})
    logging.getLogger("bessai_edge.spoolish").info("not the spool")

    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("bessai_edge.spool.writer: cannot write to spool "
                             "BESSAI_EVENT=spool")
    assert lines[1].endswith("cut torn tail BESSAI_CYCLE=4 BESSAI_EVENT=spool")
    assert lines[2].endswith("stopped BESSAI_EVENT=shutdown")
    assert lines[3].endswith("bessai_edge.spoolish: not the spool")


def test_plain_traceback_below_fields(root_logger, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    journal.setup_logging("debug", stream=stream)

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("bessai_edge.test").exception(
            "cycle failed", extra={journal.FIELD_CYCLE: 3})

    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("cycle failed BESSAI_CYCLE=3")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: boom"


def test_setup_logging_twice_keeps_one_handler(root_logger, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    first = io.StringIO()
    second = io.StringIO()
    journal.setup_logging("info", stream=first)
    journal.setup_logging("info", stream=second)

    logging.getLogger("bessai_edge.test").info("once")

    assert root_logger.handlers == [root_logger.handlers[0]]
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


# Runs inside the private journald's mount namespace. It connects stderr to journald's
# stdout-stream socket and sets JOURNAL_STREAM the way systemd does for a service.
CHILD = textwrap.dedent("""
    import logging, os, sys
    from systemd import journal as systemd_journal
    from bessai_edge.service import journal

    fd = systemd_journal.stream_fd("bessai-test-stream", 6, False)
    os.dup2(fd, 2)
    status = os.fstat(2)
    os.environ["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
    handler = journal.setup_logging("info", site="cl-test-01")
    print(type(handler).__name__)
    journal.set_site("cl-test-02")
    log = logging.getLogger("bessai_edge.scanloop")
    log.warning("alarm %s raised", "inverter:soc_pct:low_trip", extra={
        journal.FIELD_ALARM: "inverter:soc_pct:low_trip", journal.FIELD_ALARM_STATE: "raised",
        journal.FIELD_DEVICE: "inverter", journal.FIELD_CYCLE: 42,
        journal.FIELD_EVENT: journal.EVENT_ALARM})
    log.error("request failed", extra={journal.FIELD_ERROR_KIND: "timeout",
                                       journal.FIELD_DEVICE: "inverter"})
    log.debug("below the level")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("cycle failed")
""")

NAMESPACE_SCRIPT = textwrap.dedent("""
    set -e
    mount -t tmpfs tmpfs /run
    mkdir -p /run/systemd/journal /run/log/journal
    if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
    "$JOURNALD" &
    journald_pid=$!
    trap 'kill $journald_pid' EXIT
    for _ in $(seq 100); do
        [ -S /run/systemd/journal/stdout ] && [ -S /run/systemd/journal/socket ] && break
        sleep 0.05
    done
    "$PYTHON" -c "$CHILD" > "$OUT/handler"
    journalctl --directory=/run/log/journal --sync >/dev/null 2>&1 || true
    for _ in $(seq 100); do
        journalctl --directory=/run/log/journal -o json SYSLOG_IDENTIFIER=bessai > "$OUT/entries"
        [ "$(wc -l < "$OUT/entries")" -ge 3 ] && break
        sleep 0.05
    done
""")


def test_journal_handler_fields_in_real_journald(root_logger, tmp_path):
    if os.geteuid() != 0:
        skip_unless_ci("needs root to run a private journald in its own mount namespace")
    require_commands("unshare", "journalctl")
    if not os.access(JOURNALD, os.X_OK):
        skip_unless_ci(f"{JOURNALD} is missing (install the systemd package)")

    # The private journald must not send READY=1 to a systemd that runs these tests.
    env = {name: value for name, value in os.environ.items()
           if name not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")}
    env.update(JOURNALD=JOURNALD, PYTHON=sys.executable, CHILD=CHILD, OUT=str(tmp_path),
               PYTHONPATH=str(REPO))
    subprocess.run([shutil.which("unshare"), "--mount", "--propagation", "private",
                    "sh", "-c", NAMESPACE_SCRIPT], env=env, check=True, timeout=60,
                   capture_output=True)

    entries = [json.loads(line) for line in (tmp_path / "entries").read_text().splitlines()]
    assert (tmp_path / "handler").read_text().strip() == "JournalHandler"
    assert [entry["MESSAGE"].split("\n")[0] for entry in entries] == [
        "alarm inverter:soc_pct:low_trip raised", "request failed", "cycle failed"]
    alarm, error, crash = entries
    assert alarm["PRIORITY"] == "4"
    assert alarm["BESSAI_ALARM"] == "inverter:soc_pct:low_trip"
    assert alarm["BESSAI_ALARM_STATE"] == "raised"
    assert alarm["BESSAI_DEVICE"] == "inverter"
    assert alarm["BESSAI_CYCLE"] == "42"
    assert alarm["BESSAI_EVENT"] == "alarm"
    assert alarm["BESSAI_SITE"] == "cl-test-02"
    assert alarm["LOGGER"] == "bessai_edge.scanloop"
    assert alarm["_TRANSPORT"] == "journal"
    assert error["PRIORITY"] == "3"
    assert error["BESSAI_ERROR_KIND"] == "timeout"
    assert "BESSAI_ALARM" not in error
    assert not [name for name in alarm if name.lower() == name]  # no LogRecord attributes
    assert crash["EXCEPTION_TEXT"].endswith("RuntimeError: boom")
    assert crash["MESSAGE"].endswith("RuntimeError: boom")  # journalctl shows the traceback
    assert "EXCEPTION_INFO" not in crash
