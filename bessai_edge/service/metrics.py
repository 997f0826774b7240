"""Prometheus metrics of a GatewayState, rendered by prometheus_client.

``GatewayCollector`` turns the state into metric families on every scrape, so nothing
is counted twice: the scan loop keeps its counters in ``GatewayState`` and
``DeviceState``, and this module only reads them. The collector sits in a private
``CollectorRegistry``, which keeps the library's process and platform collectors
(and any other module's metrics) off the page.
"""

import math
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from bessai_edge import state as gateway_state

HEALTH_STATES = (gateway_state.DEVICE_OK, gateway_state.DEVICE_DEGRADED, gateway_state.DEVICE_DOWN)
DEVICE_STATES = HEALTH_STATES + (gateway_state.DEVICE_STARTING,)

# Spool.stats() key -> (metric name, kind, help). Keys the spool does not report are skipped.
SPOOL_METRICS = {
    "bytes": ("bessai_spool_bytes", "gauge",
              "Bytes in the spool's segments: the backlog the forwarder has not deleted yet."),
    "segments": ("bessai_spool_segments", "gauge", "Segment files in the spool directory."),
    "dropping": ("bessai_spool_dropping", "gauge",
                 "1 while records are being dropped because the spool cannot store them."),
    "records_appended": ("bessai_spool_records", "counter", "Records appended to the spool."),
    "records_dropped": ("bessai_spool_dropped_records", "counter",
                        "Records dropped because the spool could not store them (full disk, "
                        "I/O error)."),
    "drop_episodes": ("bessai_spool_drop_episodes", "counter",
                      "Times the spool started dropping records."),
    "records_evicted": ("bessai_spool_evicted_records", "counter",
                        "Records deleted, oldest first, to stay under SPOOL_MAX_TOTAL_BYTES."),
    "segments_evicted": ("bessai_spool_evicted_segments", "counter",
                         "Segments deleted, oldest first, to stay under SPOOL_MAX_TOTAL_BYTES."),
    "fsyncs": ("bessai_spool_fsyncs", "counter", "fdatasync calls on spool segments."),
    "fsync_errors": ("bessai_spool_fsync_errors", "counter", "Failed fdatasync calls."),
    "bytes_cut": ("bessai_spool_recovered_bytes_cut", "counter",
                  "Bytes of torn records cut from the segment tail when the spool was opened."),
    "segments_set_aside": ("bessai_spool_segments_set_aside", "counter",
                           "Unreadable segments renamed to .corrupt when the spool was opened."),
}


class GatewayCollector:
    """prometheus_client collector that reads one GatewayState on each scrape."""

    def __init__(self, state, clock=time.monotonic):
        self.state = state
        self._clock = clock

    def collect(self):
        yield from self._gateway_metrics()
        yield from self._device_metrics()
        yield from self._alarm_metrics()
        yield from self._spool_metrics()

    def _gateway_metrics(self):
        state = self.state
        now = self._clock()
        info = GaugeMetricFamily("bessai_info", "Site and version of this gateway.",
                                 labels=["site", "version"])
        info.add_metric([state.site, state.version], 1)
        yield info
        yield GaugeMetricFamily("bessai_uptime_seconds", "Seconds since the gateway started.",
                                value=max(0.0, now - state.started_monotonic))
        status = GaugeMetricFamily("bessai_status",
                                   "Overall status as on /health: 1 for the current one.",
                                   labels=["status"])
        current = state.overall_status()
        for name in HEALTH_STATES:
            status.add_metric([name], 1 if name == current else 0)
        yield status
        yield CounterMetricFamily("bessai_cycles", "Completed scan cycles.", value=state.cycles)
        yield CounterMetricFamily("bessai_cycle_overruns",
                                  "Cycles that did not finish before the next one was due.",
                                  value=state.overruns)
        if state.clock_synced is not None:
            yield GaugeMetricFamily("bessai_clock_synchronized",
                                    "1 while the kernel considers the wall clock synchronized "
                                    "by NTP, 0 while the records' time may be wrong.",
                                    value=1 if state.clock_synced else 0)
        if state.cycles:
            yield GaugeMetricFamily("bessai_last_cycle_duration_seconds",
                                    "Duration of the last completed cycle.",
                                    value=state.last_cycle_duration_s)
            yield GaugeMetricFamily("bessai_last_cycle_timestamp_seconds",
                                    "UTC time of the last cycle start, seconds since the epoch.",
                                    value=state.last_cycle_wall_ms / 1000.0)
            yield GaugeMetricFamily("bessai_last_cycle_age_seconds",
                                    "Seconds since the last cycle completed.",
                                    value=max(0.0, now - state.last_cycle_monotonic))

    def _device_metrics(self):
        device_state = GaugeMetricFamily("bessai_device_state",
                                         "Device state: 1 for the current one.",
                                         labels=["device", "state"])
        requests = CounterMetricFamily("bessai_device_requests", "Modbus requests sent.",
                                       labels=["device"])
        errors = CounterMetricFamily("bessai_device_request_errors",
                                     "Failed Modbus requests by kind of failure.",
                                     labels=["device", "kind"])
        reconnects = CounterMetricFamily("bessai_device_reconnects",
                                         "Connections opened again after a failure.",
                                         labels=["device"])
        quality = CounterMetricFamily("bessai_device_values",
                                      "Decoded values by quality: ok, not_available, "
                                      "comm_error, invalid.",
                                      labels=["device", "quality"])
        values = GaugeMetricFamily("bessai_value",
                                   "Last value of each canonical field; absent while not ok.",
                                   labels=["device", "field"])
        for device in self.state.devices:
            for name in DEVICE_STATES:
                device_state.add_metric([device.name, name], 1 if device.state == name else 0)
            requests.add_metric([device.name], device.requests)
            reconnects.add_metric([device.name], device.reconnects)
            for kind, count in sorted(device.request_errors.items()):
                errors.add_metric([device.name, str(kind)], count)
            for name, count in sorted(device.quality_counts.items()):
                quality.add_metric([device.name, str(name)], count)
            for field, value in sorted(device.values.items()):
                if isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and math.isfinite(value):
                    values.add_metric([device.name, field], value)
        yield from (device_state, requests, errors, reconnects, quality, values)

    def _alarm_metrics(self):
        alarms = list(self.state.active_alarms)
        yield GaugeMetricFamily("bessai_alarms_active", "Alarms active now.", value=len(alarms))
        active = GaugeMetricFamily("bessai_alarm_active",
                                   "1 for each active alarm, named device:field:level.",
                                   labels=["alarm"])
        for alarm in alarms:
            active.add_metric([str(alarm)], 1)
        yield active

    def _spool_metrics(self):
        stats = self.state.spool_stats() or {}
        for key, (name, kind, help_text) in SPOOL_METRICS.items():
            value = stats.get(key)
            if not isinstance(value, (int, float)):  # bool counts as 0 or 1
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, help_text, value=value)


def make_registry(state, clock=time.monotonic):
    """Return a private CollectorRegistry with a GatewayCollector on ``state``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(state, clock))
    return registry


def render(registry, accept_header=""):
    """Return ``(body, content_type)`` in the format the Accept header requests.

    The format is Prometheus text by default, and OpenMetrics when the scraper requests it.
    """
    encoder, content_type = choose_encoder(accept_header)
    return encoder(registry), content_type
