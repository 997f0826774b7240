"""The forwarder's status line for each state, from real settings, checkpoints and segments."""

import pathlib

import pytest

from bessai_edge.forward.checkpoint import Checkpoint
from bessai_edge.forward.rejection import Rejection
from bessai_edge.forward.settings import load_settings
from bessai_edge.forward.status import backlog_bytes, status_text
from bessai_edge.spool.segments import Segment

SEGMENTS = [Segment(1, pathlib.Path("00000000000000000001.jsonl"), 4096, True),
            Segment(40, pathlib.Path("00000000000000000040.jsonl"), 2048, False)]
ACKNOWLEDGED = Checkpoint(segment=1, offset=1024, seq=12)


@pytest.fixture
def settings():
    return load_settings({"MQTT_ENABLED": "true", "MQTT_BROKER_HOST": "10.0.0.5",
                          "MQTT_USERNAME": "gateway", "MQTT_PASSWORD": "secret"})


def line(settings, **state):
    values = dict(delivered=12, acknowledged=ACKNOWLEDGED, rejection=None, connected=False,
                  outage=False, failure_kind=None, retry_in=4.2, segments=SEGMENTS)
    values.update(state)
    return status_text(settings, **values)


def test_backlog_counts_after_the_acknowledged_position():
    assert backlog_bytes(SEGMENTS, ACKNOWLEDGED) == 3072 + 2048
    assert backlog_bytes(SEGMENTS, None) == 4096 + 2048
    assert backlog_bytes(None, ACKNOWLEDGED) is None


@pytest.mark.parametrize("state, expected", [
    ({"connected": True},
     "connected to 10.0.0.5:1883; 12 records delivered, last seq 12; backlog 5 KiB"),
    ({"outage": True, "failure_kind": "credentials"},
     "broker 10.0.0.5:1883 rejected the credentials of user 'gateway'; next attempt in 4 s; "
     "12 records delivered, last seq 12; backlog 5 KiB"),
    ({"outage": True, "failure_kind": "no_such_kind"},
     "broker 10.0.0.5:1883 not connected; next attempt in 4 s; 12 records delivered, last "
     "seq 12; backlog 5 KiB"),
    ({"acknowledged": None, "segments": None, "delivered": 0},
     "connecting to 10.0.0.5:1883; 0 records delivered, last seq -; backlog unknown"),
])
def test_status_line_for_each_state(settings, state, expected):
    assert line(settings, **state) == expected


def test_status_line_names_rejection_or_packet_limit(settings):
    denied = Rejection(seq=13, position=(1, 1100), topic="t", size=900, code=135,
                       reason="Not authorized")
    too_large = Rejection(seq=13, position=(1, 1100), topic="t", size=2002, code=149,
                          reason="Packet too large", limit=1400)

    assert line(settings, connected=True, rejection=denied).startswith(
        "broker 10.0.0.5:1883 rejects record 13 (135 Not authorized), see the journal; ")
    assert line(settings, rejection=too_large).startswith(
        "broker 10.0.0.5:1883 rejects record 13 (over its maximum packet size of 1400 "
        "bytes), see the journal; ")
