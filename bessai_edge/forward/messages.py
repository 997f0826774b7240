"""MQTT messages for one spool record: telemetry always, alarms when they changed.

A record (layout in ``bessai_edge.records``) becomes:

* ``<prefix>/<site>/<device>/telemetry``: the spool line itself, byte for byte, so
  receivers get every field including ``seq``, which numbers records without gaps as
  long as none was lost (a jump shows records evicted or dropped before forwarding);
* ``<prefix>/<site>/<device>/alarms``, only when the record has ``alarm_changes``:
  the device's active alarms after that cycle and the changes, published with the
  retain flag so that a receiver that subscribes later gets the current alarm state.

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


def messages_for(record, line, topics):
    """Return the messages that publish ``record``, whose spool line is ``line``."""
    base = topics.base(record.get("site"), record.get("device"))
    telemetry = Message(base + "/telemetry", bytes(line))
    changes = record.get("alarm_changes")
    if not changes:
        return (telemetry,)
    alarm_state = orjson.dumps({
        "v": ALARM_MESSAGE_VERSION,
        "site": record.get("site"),
        "device": record.get("device"),
        "seq": record["seq"],
        "time_ms": record.get("time_ms"),
        "active": record.get("alarms") or [],
        "changes": changes,
    })
    return (telemetry, Message(base + "/alarms", alarm_state, retain=True))
