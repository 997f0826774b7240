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


def test_messages_telemetry_only_without_alarm_changes():
    line = record_line(alarms=["soc_pct:low_warn"])  # active, but no change this cycle
    messages = messages_for(parse_record(line), line, TopicBuilder("bessai"))
    assert len(messages) == 1
    telemetry, = messages
    assert telemetry.topic == "bessai/SITE-ATACAMA-001/inverter/telemetry"
    assert telemetry.payload == line
    assert not telemetry.retain


def test_messages_alarm_change_retained_with_active_state():
    line = record_line(alarms=["battery_temp_c:high_warn"],
                       changes=[("battery_temp_c:high_warn", True), ("soc_pct:low_warn", False)])
    telemetry, alarm = messages_for(parse_record(line), line, TopicBuilder("acme/bessai"))
    assert telemetry.topic == "acme/bessai/SITE-ATACAMA-001/inverter/telemetry"
    assert alarm.topic == "acme/bessai/SITE-ATACAMA-001/inverter/alarms"
    assert alarm.retain
    body = orjson.loads(alarm.payload)
    assert body["seq"] == 42
    assert body["active"] == ["battery_temp_c:high_warn"]
    assert body["changes"] == [{"alarm": "battery_temp_c:high_warn", "raised": True},
                               {"alarm": "soc_pct:low_warn", "raised": False}]
    assert body["time_ms"] == 1_700_000_000_000


@pytest.mark.parametrize("site, device, expected", [
    ("SITE-1", "bat/1", "bessai/SITE-1/bat_1/telemetry"),
    ("SITE+1", "bat#1", "bessai/SITE_1/bat_1/telemetry"),
    ("", None, "bessai/unknown/unknown/telemetry"),
])
def test_messages_topic_levels_sanitised(site, device, expected):
    line = record_line(site=site, device=device)
    telemetry, = messages_for(parse_record(line), line, TopicBuilder("bessai"))
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
