"""Runtime state of the gateway, written by the scan loop and read by the service layer.

The scan loop owns these objects and updates them once per cycle. The health server,
the metrics page and the systemd STATUS line only read them, from the same thread.
"""

import collections
import dataclasses
import time

DEVICE_OK = "ok"
DEVICE_DEGRADED = "degraded"  # replies, but some requests fail
DEVICE_DOWN = "down"          # no data this cycle: no reply, or exceptions to every request
DEVICE_STARTING = "starting"  # no cycle completed yet


@dataclasses.dataclass
class DeviceState:
    """Counters and last values of one polled device."""

    name: str
    profile: str
    endpoint: str
    unit_id: int
    state: str = DEVICE_STARTING
    last_error: str = ""
    reconnects: int = 0
    request_errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    requests: int = 0
    quality_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    values: dict = dataclasses.field(default_factory=dict)  # canonical field -> float or None


@dataclasses.dataclass
class GatewayState:
    """Counters and the last cycle of the whole gateway."""

    site: str
    version: str
    started_monotonic: float = dataclasses.field(default_factory=time.monotonic)
    cycles: int = 0
    overruns: int = 0
    last_cycle_wall_ms: int = 0
    last_cycle_monotonic: float = 0.0
    last_cycle_duration_s: float = 0.0
    devices: list = dataclasses.field(default_factory=list)          # DeviceState, poll order
    active_alarms: list = dataclasses.field(default_factory=list)    # "device:field:level" strings
    spool: dict = dataclasses.field(default_factory=dict)   # spool figures when there is no source
    spool_source: object = None  # the open Spool, whose stats() are read only when asked
    spool_dropping: bool = False  # the spool drops records (set by the scan loop)
    clock_synced: bool | None = None  # the kernel's NTP status at the last check

    def spool_stats(self):
        """Return the spool's figures now: ``spool_source.stats()``, else ``spool``.

        The figures are read on request (health page, metrics, tests), not every
        cycle.
        """
        if self.spool_source is not None:
            return self.spool_source.stats()
        return self.spool

    def overall_status(self, spool=None):
        """Return ``ok``, ``degraded`` or ``down`` for the health endpoint.

        A spool that is dropping records (full or failing disk) makes an otherwise
        healthy gateway ``degraded``: telemetry is being lost. ``spool`` is the spool's
        figures when the caller has read them already.
        """
        if not self.devices or all(d.state == DEVICE_DOWN for d in self.devices):
            return DEVICE_DOWN
        if self.active_alarms or any(d.state != DEVICE_OK for d in self.devices):
            return DEVICE_DEGRADED
        if spool is None:
            spool = self.spool_stats() or {}
        if spool.get("dropping"):
            return DEVICE_DEGRADED
        return DEVICE_OK
