"""The active alarms a previous run left in the spool, to start a new run with them.

A new ``bessai run`` starts its limits cleared, and the debounce delays a raise by
``LIMIT_DEBOUNCE_CYCLES`` cycles. Without the previous state, a restart during an alarm
would write records with no alarms for those first cycles, and the forwarder would
publish a retained "no alarms" message, then the raise again. So at start-up the gateway
takes each device's alarms from its newest record in the spool and marks them active
(``core.LimitTable.restore``). The new readings then clear them the normal way, after
the debounce and past the hysteresis.
"""

import dataclasses
import logging

from bessai_edge.errors import SpoolError
from bessai_edge.spool import SpoolReader
from bessai_edge.spool.segments import json_object

logger = logging.getLogger(__name__)

# How far back from the end of the spool to look. A record is 1 to 3 KiB, so this covers
# the newest record of each device for some tens of devices.
TAIL_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True)
class PreviousAlarms:
    """A device's active alarms in its newest spool record, and that record's identity."""

    alarms: tuple    # "field:level" names
    seq: int
    time_ms: int


def previous_alarms(directory, site, devices, tail_bytes=TAIL_BYTES):
    """Return ``{device name: PreviousAlarms}`` from the newest records in the spool.

    ``devices`` maps device names to profile names. Only each device's newest record
    counts, and only when its site and profile match, so a renamed site or a device
    given another profile starts cleared. Lines that are not records are skipped. A
    spool that cannot be read gives an empty result with a warning: losing the previous
    state must not stop the start.
    """
    try:
        lines = SpoolReader(directory).newest_lines(tail_bytes)
    except (OSError, SpoolError) as error:
        logger.warning("cannot read the newest records of spool %s to restore the active "
                       "alarms, so every limit starts cleared: %s", directory, error,
                       extra={"BESSAI_EVENT": "startup"})
        return {}
    found = {}
    seen = set()
    for line in lines:
        record = _parse(line)
        if record is None:
            continue
        device = record["device"]
        if device in seen or device not in devices:
            continue
        seen.add(device)
        if record["site"] == site and record["profile"] == devices[device]:
            found[device] = PreviousAlarms(tuple(record["alarms"]), record["seq"],
                                           record["time_ms"])
        if len(seen) == len(devices):
            break
    missing = [device for device in devices if device not in seen]
    if lines and missing:
        logger.info("no record of %s in the last %d KiB of spool %s, so %s limits start "
                    "cleared", ", ".join(missing), tail_bytes // 1024, directory,
                    "its" if len(missing) == 1 else "their", extra={"BESSAI_EVENT": "startup"})
    return found


def _parse(line):
    """Return a record dict with the keys this module reads, or None for another line."""
    record = json_object(line)
    if record is None:
        return None
    alarms = record.get("alarms")
    if not (isinstance(record.get("site"), str) and isinstance(record.get("device"), str)
            and isinstance(record.get("profile"), str) and isinstance(record.get("seq"), int)
            and isinstance(record.get("time_ms"), int) and isinstance(alarms, list)
            and all(isinstance(name, str) for name in alarms)):
        return None
    return record
