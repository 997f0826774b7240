"""The telemetry record: one dict per device per cycle, written to the spool as an orjson line.

Layout (``RECORD_VERSION`` 1; a new key keeps the version, a changed or removed one
raises it)::

    v            1
    site         SITE_ID
    device       device name from the settings ("inverter" for a single device)
    profile      profile name, e.g. huawei_sun2000
    seq          sequence number, set by Spool.append
    time_ms      UTC wall-clock time of the cycle start, milliseconds since the epoch
    mono_s       time.monotonic() of the cycle start, seconds (meaningful within one boot)
    boot_id      /proc/sys/kernel/random/boot_id, which separates the boots that mono_s counts in
    cycle        cycle number since the gateway started, from 1
    cycle_ms     milliseconds from the cycle start until this record was built
    state        device state: ok, degraded (some requests failed) or down
    error        the last request error of this cycle as "kind: message", or null
    values       canonical field -> number, or null when its quality is not ok
    quality      canonical field -> ok, not_available, comm_error or invalid
    alarms       active alarms after this cycle, "field:level", sorted
    alarm_changes  this cycle's transitions: [{"alarm": "field:level", "raised": bool}]
"""

import logging
import uuid

logger = logging.getLogger(__name__)

RECORD_VERSION = 1
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def read_boot_id(path=BOOT_ID_PATH):
    """Return the kernel's boot id, or a random id for this process when it is unreadable."""
    try:
        with open(path, encoding="ascii") as stream:
            return stream.read().strip()
    except OSError as error:
        boot_id = str(uuid.uuid4())
        logger.warning("cannot read %s (%s): using %s as boot id for this run",
                       path, error, boot_id)
        return boot_id


class RecordFactory:
    """Builds the records of one device; the fields that never change are set once."""

    def __init__(self, site, device, profile, boot_id):
        self.site = site
        self.device = device
        self.profile = profile
        self.boot_id = boot_id

    def build(self, *, cycle, wall_ms, monotonic_s, cycle_ms, state, error, values, quality,
              alarms, alarm_changes):
        """Return one record dict in the layout of ``RECORD_VERSION``."""
        return {
            "v": RECORD_VERSION,
            "site": self.site,
            "device": self.device,
            "profile": self.profile,
            "seq": None,
            "time_ms": wall_ms,
            "mono_s": round(monotonic_s, 6),
            "boot_id": self.boot_id,
            "cycle": cycle,
            "cycle_ms": round(cycle_ms, 3),
            "state": state,
            "error": error,
            "values": values,
            "quality": quality,
            "alarms": alarms,
            "alarm_changes": [{"alarm": name, "raised": raised} for name, raised in alarm_changes],
        }
