"""DeviceStateLog: each change logged once, repeats counted and reported with the state."""

import logging

from bessai_edge.state_changes import DeviceStateLog

logger = logging.getLogger("tests.state_changes")
EXTRA = {"BESSAI_DEVICE": "inverter"}
ERROR = "disconnected: the device closed the connection"


def state_lines(caplog):
    return [record for record in caplog.records if record.name == logger.name]


def flap(log, start, cycles):
    """Change ok <-> degraded every cycle from ``start`` on; return the state at the end."""
    state = "ok"
    for cycle in range(cycles):
        new = "degraded" if state == "ok" else "ok"
        log.changed(start + cycle, state, new, ERROR if new == "degraded" else None)
        state = new
    return state


def test_each_change_logged_once_then_counted(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)
    log = DeviceStateLog(logger, "inverter", EXTRA, interval_s=60.0)
    log.changed(0.0, "starting", "ok", None)
    flap(log, 1.0, 10)
    lines = [record.getMessage() for record in state_lines(caplog)]
    assert lines == ["inverter: device state starting -> ok",
                     f"inverter: device state ok -> degraded ({ERROR})",
                     "inverter: device state degraded -> ok"]
    assert log.pending
    assert log.logged_state == "ok"  # the state of the last line, not of the last change


def test_counts_reported_each_minute(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)
    log = DeviceStateLog(logger, "inverter", EXTRA, interval_s=60.0)
    log.changed(0.0, "starting", "ok", None)
    final = flap(log, 1.0, 62)          # changes at 1..62 s: the last line was at 2 s
    assert final == "ok"
    assert len(state_lines(caplog)) == 4
    report = state_lines(caplog)[-1]
    assert report.levelno == logging.WARNING
    assert report.getMessage() == (
        "inverter: device state changed 60 more times in the last 60 s "
        f"(degraded -> ok 30, ok -> degraded 30), now ok; last error: {ERROR}")
    assert report.BESSAI_DEVICE_STATE == "ok"
    assert report.BESSAI_EVENT == "device_state"
    assert log.logged_state == "ok"
    assert not log.pending
    flap(log, 63.0, 59)                 # the next minute: counted again, no line yet
    assert len(state_lines(caplog)) == 4


def test_stable_state_reported_by_cycle_done(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)
    log = DeviceStateLog(logger, "inverter", EXTRA, interval_s=60.0)
    log.changed(0.0, "starting", "ok", None)
    flap(log, 1.0, 4)                   # ends in ok; the last line showed degraded -> ok
    log.cycle_done(30.0, "ok", None)
    assert len(state_lines(caplog)) == 3    # not yet: less than a minute since the last line
    log.cycle_done(62.0, "ok", None)
    report = state_lines(caplog)[-1].getMessage()
    assert report.startswith("inverter: device state changed 2 more times in the last 60 s")
    assert report.endswith(f"now ok; last error: {ERROR}")
    assert not log.pending


def test_new_change_logged_after_count(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)
    log = DeviceStateLog(logger, "inverter", EXTRA, interval_s=60.0)
    log.changed(0.0, "starting", "ok", None)
    flap(log, 1.0, 5)                   # ends in degraded, 3 changes counted
    log.changed(7.0, "degraded", "down", "timeout: no reply", "timeout")
    messages = [record.getMessage() for record in state_lines(caplog)]
    assert messages[-2] == ("inverter: device state changed 3 more times in the last 5 s "
                            "(degraded -> ok 1, ok -> degraded 2), now degraded; "
                            "last error: " + ERROR)
    assert messages[-1] == "inverter: device state degraded -> down (timeout: no reply)"
    assert state_lines(caplog)[-1].BESSAI_ERROR_KIND == "timeout"
    assert log.logged_state == "down"


def test_change_logged_again_once_the_interval_has_passed(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)
    log = DeviceStateLog(logger, "inverter", EXTRA, interval_s=60.0)
    log.changed(0.0, "ok", "down", "refused")
    log.changed(10.0, "down", "ok", None)
    log.changed(100.0, "ok", "down", "refused")  # an outage a while later: its own line
    assert [record.getMessage() for record in state_lines(caplog)][-1] == (
        "inverter: device state ok -> down (refused)")
    assert not log.pending


def test_report_pending_at_shutdown(caplog):
    caplog.set_level(logging.INFO, logger=logger.name)
    log = DeviceStateLog(logger, "inverter", EXTRA, interval_s=60.0)
    log.report_pending(1.0, "ok", None)
    assert state_lines(caplog) == []        # nothing counted, nothing to say
    log.changed(0.0, "starting", "ok", None)
    flap(log, 1.0, 3)
    log.report_pending(5.0, "degraded", ERROR)
    assert state_lines(caplog)[-1].getMessage() == (
        "inverter: device state changed 1 more time in the last 3 s (ok -> degraded 1), "
        f"now degraded; last error: {ERROR}")
