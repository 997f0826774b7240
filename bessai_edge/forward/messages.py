"""MQTT messages for one spool record: telemetry always, alarm state when it is new.

A record (layout in ``bessai_edge.records``) becomes:

* ``<prefix>/<site>/<device>/telemetry``: the spool line itself, byte for byte, so
  receivers get every field including ``seq``, which numbers records without gaps as
  long as none was lost (a jump shows records evicted or dropped before forwarding);
* ``<prefix>/<site>/<device>/alarms``: the device's active alarms after that cycle
  and the changes, published with the retain flag so that a receiver that subscribes
  later gets the current alarm state. It is sent for a record with
  ``alarm_changes``, and for a record whose ``alarms`` differ from those of the
  newest alarm message published on the topic. The second case covers a restarted
  forwarder, which has published nothing yet, and a restarted ``bessai run`` that found
  no record of its previous run to restore the active alarms from, so it starts with
  none and reports no change for the ones it forgot.

Both at QoS 1. Topic levels come from the record's ``site`` and ``device``; the
characters MQTT reserves in topics (``/``, ``+``, ``#``, NUL) are replaced by ``_``.
"""

import dataclasses
import re

import orjson

ALARM_MESSAGE_VERSION = 1
_RESERVED = re.compile(r"[/+#\x00]")


@dataclasses.dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False
    active: tuple | None = None   # the active alarms that an alarm message publishes


class BadRecord(ValueError):
    """A spool line that is not a record the forwarder can route."""


def parse_record(line):
    """Return the record dict of one spool line; raise BadRecord when it is not one."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise BadRecord(f"not JSON: {error}") from error
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    seq = record.get("seq")
    if type(seq) is not int or seq < 1:
        raise BadRecord(f"seq is {seq!r}, expected an integer of at least 1")
    return record


class TopicBuilder:
    """Builds topics under one prefix, caching the prefix of each (site, device) pair."""

    def __init__(self, prefix):
        self.prefix = prefix
        self._bases = {}

    def base(self, site, device):
        """Return ``<prefix>/<site>/<device>`` with reserved characters replaced."""
        key = (site, device)
        base = self._bases.get(key)
        if base is None:
            base = f"{self.prefix}/{_level(site)}/{_level(device)}"
            self._bases[key] = base
        return base


def _level(value):
    text = str(value) if value not in (None, "") else "unknown"
    return _RESERVED.sub("_", text)


def messages_for(record, line, topics, published_alarms):
    """Return the messages that publish ``record``, whose spool line is ``line``.

    ``published_alarms(topic)`` returns the active alarms (a tuple) of the newest alarm
    message published on ``topic``, or None when there is none. The alarm message is
    left out only when the record has no ``alarm_changes`` and its ``alarms`` equal
    that tuple.
    """
    base = topics.base(record.get("site"), record.get("device"))
    telemetry = Message(base + "/telemetry", bytes(line))
    alarm_topic = base + "/alarms"
    changes = record.get("alarm_changes") or []
    active = tuple(record.get("alarms") or ())
    if not changes and published_alarms(alarm_topic) == active:
        return (telemetry,)
    alarm_state = orjson.dumps({
        "v": ALARM_MESSAGE_VERSION,
        "site": record.get("site"),
        "device": record.get("device"),
        "seq": record["seq"],
        "time_ms": record.get("time_ms"),
        "active": list(active),
        "changes": changes,
    })
    return (telemetry, Message(alarm_topic, alarm_state, retain=True, active=active))
