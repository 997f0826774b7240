"""OutageLog: one line when an outage starts, one when it is over, with duration and backlog."""

import logging

import pytest

from bessai_edge.forward.outage import OutageLog
from bessai_edge.forward.session import Failure

REFUSED = Failure("refused", "broker 10.0.0.5:1883 refused the connection")
CREDENTIALS = Failure("credentials", "broker 10.0.0.5:1883 rejected the credentials")
LOST = Failure("lost", "connection to broker 10.0.0.5:1883 lost")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def lines(caplog, level):
    return [record.getMessage() for record in caplog.records if record.levelno == level]


def test_outage_log_start_and_end_lines(clock, caplog):
    outage = OutageLog("10.0.0.5:1883", clock)
    with caplog.at_level(logging.DEBUG, logger="bessai_edge.forward.outage"):
        outage.failed(LOST, 0.0)
        for _ in range(5):
            clock.now += 2
            outage.failed(REFUSED, 2.0)
        clock.now += 3
        outage.connected()
        outage.delivered(600)
        clock.now += 1.5
        outage.delivered(150)
        assert outage.caught_up()
    warnings = lines(caplog, logging.WARNING)
    infos = lines(caplog, logging.INFO)
    assert warnings == ["MQTT outage started: connection to broker 10.0.0.5:1883 lost; the "
                        "spool keeps the records, next attempt in 0.0 s"]
    assert infos == ["MQTT outage over: reconnected to broker 10.0.0.5:1883 after 13.0 s "
                     "(5 failed attempts); delivered the backlog of 750 records in 1.5 s"]
    assert len(lines(caplog, logging.DEBUG)) == 5  # the refusals after the loss
    assert not outage.active
    # The journal field to find them: the outage lines had none.
    events = [getattr(record, "BESSAI_EVENT", None) for record in caplog.records
              if record.levelno >= logging.INFO]
    assert events == ["mqtt_outage", "mqtt_outage"]


def test_outage_log_not_over_before_reconnect(clock):
    outage = OutageLog("b:1883", clock)
    outage.failed(REFUSED, 1.0)
    assert not outage.caught_up()
    assert outage.active


def test_outage_log_loss_while_draining_continues_outage(clock, caplog):
    outage = OutageLog("b:1883", clock)
    with caplog.at_level(logging.INFO, logger="bessai_edge.forward.outage"):
        outage.failed(REFUSED, 1.0)
        clock.now += 10
        outage.connected()
        outage.delivered(100)
        clock.now += 1
        outage.failed(LOST, 0.0)       # lost again before the backlog was delivered
        outage.failed(REFUSED, 1.0)
        clock.now += 4
        outage.connected()
        outage.delivered(300)
        assert outage.caught_up()
    assert outage.outages == 1
    over, = lines(caplog, logging.INFO)
    assert "reconnected to broker b:1883 after 15.0 s (2 failed attempts)" in over
    # The 100 records of the lost connection took time that the line does not count.
    assert "backlog of 300 records" in over


def test_outage_log_backlog_ends_at_catch_up(clock, caplog):
    # Records delivered while the new connection settles were counted into the backlog,
    # whose time ends when it was first delivered.
    outage = OutageLog("b:1883", clock)
    with caplog.at_level(logging.INFO, logger="bessai_edge.forward.outage"):
        outage.failed(REFUSED, 1.0)
        clock.now += 5
        outage.connected()
        clock.now += 2
        outage.delivered(500)
        assert not outage.caught_up(settled=False)
        for _ in range(8):
            clock.now += 1
            outage.delivered(1)   # one new record a second while the connection settles
            assert not outage.caught_up(settled=False)
        clock.now += 1
        assert outage.caught_up(settled=True)
    over, = lines(caplog, logging.INFO)
    assert over.endswith("delivered the backlog of 500 records in 2.0 s")


def test_outage_log_credentials_reason_change_logged(clock, caplog):
    outage = OutageLog("b:1883", clock)
    with caplog.at_level(logging.WARNING, logger="bessai_edge.forward.outage"):
        outage.failed(REFUSED, 1.0)
        outage.failed(CREDENTIALS, 2.0)
        outage.failed(CREDENTIALS, 4.0)
    assert len(caplog.records) == 2
    assert "rejected the credentials" in caplog.records[1].getMessage()


def test_outage_log_caught_up_without_outage(clock):
    outage = OutageLog("b:1883", clock)
    outage.connected()
    assert not outage.caught_up()
    assert outage.outages == 0


DROPPED = Failure("dropped", "connection to broker 10.0.0.5:1883 lost 4.3 s after it was "
                             "accepted: the socket was closed by the broker or the network")
REPEATED = Failure("dropped_repeatedly", "connection to broker 10.0.0.5:1883 lost 0.1 s "
                                         "after it was accepted, 3 times in a row; another "
                                         "client may use MQTT_CLIENT_ID=x")


def test_outage_log_dropped_connections_one_outage(clock, caplog):
    # A broker that kept dropping the client gave a started/over pair per connection.
    outage = OutageLog("10.0.0.5:1883", clock)
    with caplog.at_level(logging.INFO, logger="bessai_edge.forward.outage"):
        outage.failed(LOST, 0.0)
        for _ in range(3):
            clock.now += 1
            outage.connected()
            assert not outage.caught_up(settled=False)
            outage.failed(REPEATED, 2.0)
        clock.now += 2
        outage.connected()
        clock.now += 0.5
        assert not outage.caught_up(settled=False)   # delivered, connection still young
        clock.now += 10
        assert outage.caught_up(settled=True)
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    # A lost connection and a dropped one are the same kind of reason.
    assert warnings[1].startswith("MQTT outage goes on: connection to broker 10.0.0.5:1883 "
                                  "lost 0.1 s after it was accepted")
    assert lines(caplog, logging.INFO) == [
        "MQTT outage over: reconnected to broker 10.0.0.5:1883 after 5.0 s (3 failed "
        "attempts); delivered the backlog of 0 records in 0.5 s"]


def test_outage_log_first_connection_not_called_reconnect(clock, caplog):
    # The broker is down when the forwarder starts: there was nothing to reconnect to.
    outage = OutageLog("10.0.0.5:1883", clock)
    with caplog.at_level(logging.INFO, logger="bessai_edge.forward.outage"):
        outage.failed(REFUSED, 1.0)
        clock.now += 4
        outage.connected()
        assert outage.caught_up()
    assert lines(caplog, logging.INFO) == [
        "MQTT outage over: connected to broker 10.0.0.5:1883 after 4.0 s (1 failed "
        "attempt); delivered the backlog of 0 records in 0.0 s"]


def test_outage_log_rejected_credentials_after_loss(clock, caplog):
    # After "connection lost", a broker that came back with other credentials gave only
    # DEBUG lines: the journal never showed why the forwarder stayed out.
    outage = OutageLog("10.0.0.5:1883", clock)
    with caplog.at_level(logging.DEBUG, logger="bessai_edge.forward.outage"):
        outage.failed(LOST, 0.0)
        clock.now += 1
        outage.failed(CREDENTIALS, 2.0)
        clock.now += 2
        outage.failed(CREDENTIALS, 4.0)
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert warnings[1] == ("MQTT outage goes on, for another reason: broker 10.0.0.5:1883 "
                           "rejected the credentials; next attempt in 2.0 s")
    assert len(lines(caplog, logging.DEBUG)) == 1


def test_outage_log_held_record_drain_time(clock, caplog):
    # A record held back for two minutes made the line read "delivered the backlog of
    # 142 records in 140.9 s", although they went within seconds of its acceptance.
    outage = OutageLog("b:1883", clock)
    with caplog.at_level(logging.INFO, logger="bessai_edge.forward.outage"):
        outage.failed(DROPPED, 1.0)   # the broker's close after its first rejection
        for _ in range(4):
            clock.now += 30
            outage.connected()
            outage.held_back()        # rejected again: the connection is dropped
        clock.now += 30
        outage.connected()
        clock.now += 2
        outage.delivered(142)
        assert not outage.caught_up(settled=False)
        clock.now += 10
        assert outage.caught_up(settled=True)
    over, = lines(caplog, logging.INFO)
    assert over == ("MQTT outage over: reconnected to broker b:1883 after 150.0 s (1 failed "
                    "attempt); delivered the backlog of 142 records in 2.0 s")


def test_outage_log_broker_restarts_stay_debug(clock, caplog):
    # A broker restarted twice, 10 s apart, logged "goes on, for another reason" for
    # the second loss, although both losses were of one kind.
    outage = OutageLog("10.0.0.5:1883", clock)
    with caplog.at_level(logging.DEBUG, logger="bessai_edge.forward.outage"):
        outage.failed(LOST, 0.0)
        clock.now += 0.2
        outage.failed(REFUSED, 0.4)
        clock.now += 1
        outage.connected()
        clock.now += 4.3
        outage.failed(DROPPED, 0.2)
        clock.now += 0.2
        outage.failed(REFUSED, 0.4)
        outage.failed(DROPPED, 0.8)
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("MQTT outage started: connection to broker")
    assert len(lines(caplog, logging.DEBUG)) == 4


def test_outage_log_kind_change_says_another_reason(clock, caplog):
    outage = OutageLog("10.0.0.5:1883", clock)
    with caplog.at_level(logging.WARNING, logger="bessai_edge.forward.outage"):
        outage.failed(REFUSED, 1.0)
        outage.failed(REPEATED, 1.0)
    warnings = lines(caplog, logging.WARNING)
    assert warnings[1].startswith("MQTT outage goes on, for another reason: connection to")
