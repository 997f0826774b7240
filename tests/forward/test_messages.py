"""Record lines to MQTT messages: topics, the unchanged telemetry payload, alarm state."""

import orjson
import pytest

from bessai_edge.forward.messages import BadRecord, TopicBuilder, messages_for, parse_record
from bessai_edge.records import RecordFactory


def record_line(alarms=(), changes=(), site="SITE-ATACAMA-001", device="inverter", seq=42):
    record = RecordFactory(site, device, "huawei_sun2000", "boot").build(
        cycle=7, wall_ms=1_700_000_000_000, monotonic_s=12.5, cycle_ms=3.0, state="ok",
        error=None, values={"soc_pct": 71.0}, quality={"soc_pct": "ok"},
        alarms=list(alarms), alarm_changes=list(changes))
    record["seq"] = seq
    return orjson.dumps(record)


def published(alarms_by_topic):
    """The ``published_alarms`` function of ``messages_for`` for these topics."""
    return lambda topic: alarms_by_topic.get(topic)


INVERTER_ALARMS = "bessai/SITE-ATACAMA-001/inverter/alarms"
NOTHING_PUBLISHED = published({})


def test_messages_telemetry_only_when_alarms_unchanged():
    line = record_line(alarms=["soc_pct:low_warn"])  # active, but no change this cycle
    already = published({INVERTER_ALARMS: ("soc_pct:low_warn",)})
    messages = messages_for(parse_record(line), line, TopicBuilder("bessai"), already)
    assert len(messages) == 1
    telemetry, = messages
    assert telemetry.topic == "bessai/SITE-ATACAMA-001/inverter/telemetry"
    assert telemetry.payload == line
    assert not telemetry.retain


def test_messages_alarm_change_retained_with_active_state():
    line = record_line(alarms=["battery_temp_c:high_warn"],
                       changes=[("battery_temp_c:high_warn", True), ("soc_pct:low_warn", False)])
    telemetry, alarm = messages_for(parse_record(line), line, TopicBuilder("acme/bessai"),
                                    NOTHING_PUBLISHED)
    assert telemetry.topic == "acme/bessai/SITE-ATACAMA-001/inverter/telemetry"
    assert alarm.topic == "acme/bessai/SITE-ATACAMA-001/inverter/alarms"
    assert alarm.retain
    body = orjson.loads(alarm.payload)
    assert body["seq"] == 42
    assert body["active"] == ["battery_temp_c:high_warn"]
    assert body["changes"] == [{"alarm": "battery_temp_c:high_warn", "raised": True},
                               {"alarm": "soc_pct:low_warn", "raised": False}]
    assert body["time_ms"] == 1_700_000_000_000
    assert alarm.active == ("battery_temp_c:high_warn",)


# (alarms of the record, active alarms of the newest published message or None)
ALARM_STATE_CASES = [
    pytest.param([], ("battery_temp_c:high_trip", "battery_temp_c:high_warn"),
                 id="gateway-restarted-without-alarms"),
    pytest.param(["soc_pct:low_warn"], (), id="gateway-restarted-with-alarm"),
    pytest.param(["soc_pct:low_warn"], None, id="nothing-published-yet"),
    pytest.param([], None, id="nothing-published-no-alarms"),
]


@pytest.mark.parametrize("alarms, published_active", ALARM_STATE_CASES)
def test_messages_alarm_state_differs_without_changes(alarms, published_active):
    line = record_line(alarms=alarms)   # no alarm_changes in this record
    already = published({INVERTER_ALARMS: published_active})
    telemetry, alarm = messages_for(parse_record(line), line, TopicBuilder("bessai"), already)
    assert alarm.topic == INVERTER_ALARMS
    assert alarm.retain
    assert alarm.active == tuple(alarms)
    body = orjson.loads(alarm.payload)
    assert body["seq"] == 42
    assert body["active"] == alarms
    assert body["changes"] == []


def test_messages_alarm_changes_published_even_if_same_state():
    # A restarted gateway raises the alarm it had before: the list is the same, but the
    # change is still published.
    line = record_line(alarms=["soc_pct:low_warn"], changes=[("soc_pct:low_warn", True)])
    already = published({INVERTER_ALARMS: ("soc_pct:low_warn",)})
    messages = messages_for(parse_record(line), line, TopicBuilder("bessai"), already)
    assert [message.topic for message in messages] == [
        "bessai/SITE-ATACAMA-001/inverter/telemetry", INVERTER_ALARMS]


@pytest.mark.parametrize("site, device, expected", [
    ("SITE-1", "bat/1", "bessai/SITE-1/bat_1/telemetry"),
    ("SITE+1", "bat#1", "bessai/SITE_1/bat_1/telemetry"),
    ("", None, "bessai/unknown/unknown/telemetry"),
])
def test_messages_topic_levels_sanitised(site, device, expected):
    line = record_line(site=site, device=device)
    telemetry, *_ = messages_for(parse_record(line), line, TopicBuilder("bessai"),
                                 NOTHING_PUBLISHED)
    assert telemetry.topic == expected


@pytest.mark.parametrize("line, reason", [
    (b"not json", "not JSON"),
    (b"[1,2]", "not a JSON object"),
    (b'{"site":"a"}', "seq is None"),
    (b'{"seq":0}', "seq is 0"),
    (b'{"seq":"5"}', "seq is '5'"),
])
def test_parse_record_rejects(line, reason):
    with pytest.raises(BadRecord, match=reason):
        parse_record(line)
