"""The scan loop: one thread, cycles on a fixed grid of the monotonic clock.

Cycle ``k`` starts at ``start + k * period``, so the work done in a cycle never shifts
the later ones. A cycle that ends after the next grid point has overrun: the loop
skips to the first grid point still ahead, counts the overrun and logs it at a limited
rate. Each cycle tells the pollers how many grid periods passed since the previous one,
so that stale alarms measure time on the grid rather than cycles run. Between cycles
the health server serves requests until the next deadline.

Each cycle polls the devices in their configured order, appends one record per device
to the spool, updates the GatewayState, pets the systemd watchdog and sets STATUS.
SIGTERM and SIGINT only set a flag: the cycle in progress finishes, and ``run``
returns so that the caller can flush and close the spool.
"""

import logging
import math
import os
import signal
import time

from bessai_edge import state as gateway_state
from bessai_edge.clock import WallClockWatch
from bessai_edge.i18n import _
from bessai_edge.ratelimit import RateLimitedLog
from bessai_edge.service import notify as service_notify

logger = logging.getLogger(__name__)

SUMMARY_INTERVAL_S = 60.0
# A cycle starts a little after its grid point (the wake-up), so the summary that is due
# a minute after the last one may start a hair less than a minute later.
SUMMARY_SLACK_S = 0.05
WAIT_SLICE_S = 0.25   # without a health server: how long a stop request may go unseen
# Fields shown in the cycle summary line when the device's plan has them.
SUMMARY_FIELDS = ("soc_pct", "battery_power_kw", "battery_temp_c", "pv_power_kw",
                  "grid_power_kw")
_UNIT_SUFFIXES = (("_pct", "%"), ("_kwh", "kWh"), ("_kw", "kW"), ("_c", "C"), ("_hz", "Hz"),
                  ("_v", "V"), ("_a", "A"))


class ScanLoop:
    """Runs cycles until stopped; see the module docstring for the timing rules."""

    def __init__(self, *, period_s, pollers, factories, spool, state, notifier, health=None,
                 stop_budget_s=0.0, close_allowance_s=0.0, clock=time.monotonic,
                 wall_clock_ns=time.time_ns, clock_watch=None):
        self.period_s = period_s
        self.pollers = pollers        # DevicePoller, in poll order
        self.factories = factories    # RecordFactory per poller
        self.spool = spool
        self.state = state
        self.notifier = notifier
        self.health = health
        self.stop_budget_s = stop_budget_s  # what finishing a cycle and closing can take
        self.close_allowance_s = close_allowance_s  # of that, what closing takes
        self.clock = clock
        self.wall_clock_ns = wall_clock_ns
        self.clock_watch = clock_watch or WallClockWatch()
        self.stop_requested = False
        self.stop_signal = None
        self._grid_start = None  # set by run(); run_cycle alone counts periods from its argument
        self.limited = RateLimitedLog(logger)
        self._summary = CycleSummary(len(pollers) > 1)
        self.cycle_started = None  # monotonic start of the last cycle (the one in progress)
        self._poll_ends_s = []  # seconds from the cycle start to the end of each device's poll
        # With the watchdog on, a wait longer than this is cut into slices, each followed
        # by WATCHDOG=1 when due, so a long SCAN_INTERVAL_S does not get the loop killed.
        self._watchdog_slice_s = notifier.watchdog_interval_s / 4 if notifier else 0.0
        self._pet_between_devices = self._watchdog_slice_s > 0 and len(pollers) > 1
        state.devices = [poller.state for poller in pollers]
        state.spool_source = spool

    # -- stopping --------------------------------------------------------------------

    def install_signal_handlers(self):
        """Make SIGTERM, SIGINT and SIGHUP request a stop at the end of the current cycle.

        SIGHUP arrives when the terminal of a foreground run closes; the gateway has no
        configuration to reload, so it stops cleanly as for SIGTERM.
        """
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_stop)

    def request_stop(self, signum=None, frame=None):
        """Ask the loop to stop after this cycle; a second SIGINT interrupts at once."""
        del frame
        if self.stop_requested and signum == signal.SIGINT:
            _write_stderr(_("bessai: second Ctrl-C: stopping now; the record of the cycle "
                            "in progress is not written\n"))
            raise KeyboardInterrupt
        if not self.stop_requested:
            budget_s = self.current_stop_budget_s()
            self.notifier.stop_requested(budget_s)
            if signum == signal.SIGINT:
                _write_stderr(_("bessai: stopping after the cycle in progress (up to {seconds:.0f} "
                                "s while a device does not reply); press Ctrl-C again to stop "
                                "at once without its record\n").format(seconds=budget_s))
        self.stop_requested = True
        self.stop_signal = signum
        if self.health is not None:
            self.health.wake()  # end the wait between cycles now

    def current_stop_budget_s(self):
        """Return how long finishing the cycle in progress and closing may take.

        ``stop_budget_s`` covers devices that went silent, whose poll ends at the first
        timeout. A slow device that still replies costs every request of its plan, which
        the last cycle's duration shows: half again that, plus the close allowance.
        """
        slow_s = self.state.last_cycle_duration_s * 1.5 + self.close_allowance_s
        return max(self.stop_budget_s, slow_s)

    # -- running ---------------------------------------------------------------------

    def run(self, max_cycles=None):
        """Run cycles until a stop request or ``max_cycles``; return the cycles run."""
        start = self.clock()
        self._grid_start = start
        index = 0
        previous_index = -1
        while not self.stop_requested:
            deadline = start + index * self.period_s
            self._wait_until(deadline)
            if self.stop_requested:
                break
            self.run_cycle(self.state.cycles + 1, self.clock(), periods=index - previous_index)
            if max_cycles is not None and self.state.cycles >= max_cycles:
                break
            previous_index = index
            index = self._next_index(start, index + 1)
        if self.stop_signal is not None:
            # Logged here rather than in the handler, which may interrupt a log call.
            logger.info("received %s: stopped after cycle %d",
                        signal.Signals(self.stop_signal).name, self.state.cycles)
        return self.state.cycles

    def _next_index(self, start, index):
        """Return ``index``, or the first later grid index still ahead after an overrun."""
        now = self.clock()
        next_index, skipped = next_start_index(start, self.period_s, index, now)
        if skipped:
            self.state.overruns += 1
            self.limited.log("overrun", logging.WARNING,
                             "cycle %d overran the %.3f s period by %.3f s%s: skipped %d start "
                             "%s, %d %s since start",
                             self.state.cycles, self.period_s,
                             now - (start + index * self.period_s), self._slowest_device(),
                             skipped, "time" if skipped == 1 else "times",
                             self.state.overruns,
                             "overrun" if self.state.overruns == 1 else "overruns",
                             extra={"BESSAI_EVENT": "overrun", "BESSAI_CYCLE": self.state.cycles})
        return next_index

    def _slowest_device(self):
        """Return ", longest poll: NAME S s" for the last cycle of several devices, or ""."""
        ends = self._poll_ends_s
        if len(ends) < 2:
            return ""
        durations = [end - begin for begin, end in zip([0.0, *ends], ends)]
        slowest = max(range(len(durations)), key=durations.__getitem__)
        return f", longest poll: {self.pollers[slowest].device.name} {durations[slowest]:.3f} s"

    def _wait_until(self, deadline):
        while not self.stop_requested:
            now = self.clock()
            if now >= deadline:
                return
            until = deadline
            if self._watchdog_slice_s and deadline - now > self._watchdog_slice_s:
                until = now + self._watchdog_slice_s
            if self.health is not None:
                # Ends on time with a single wake-up, or early when woken by a stop request.
                self.health.serve_until(until)
            else:
                time.sleep(min(until - now, WAIT_SLICE_S))
            if until < deadline:
                self.notifier.watchdog()

    def _grid_index(self):
        """Return the index of the last scan-grid point the clock has passed."""
        return math.floor((self.clock() - self._grid_start) / self.period_s)

    def run_cycle(self, number, cycle_start, periods=1):
        """Poll every device once, write their records and update the state.

        ``periods`` is the number of grid periods since the previous cycle's start.
        """
        self.cycle_started = cycle_start  # read by the links' keepalive in a long poll
        wall_ms = self.wall_clock_ns() // 1_000_000
        clock_synced = self.clock_watch.observe(number, wall_ms, cycle_start)
        grid_index = self._grid_index if self._grid_start is not None else None
        results = []
        poll_ends_s = self._poll_ends_s
        poll_ends_s.clear()
        for poller, factory in zip(self.pollers, self.factories):
            result = poller.poll(cycle_start, periods, grid_index=grid_index)
            poll_end_s = self.clock() - cycle_start
            poll_ends_s.append(poll_end_s)
            record = factory.build(
                cycle=number, wall_ms=wall_ms, monotonic_s=cycle_start,
                clock_synced=clock_synced, cycle_ms=poll_end_s * 1000.0,
                state=result.state, error=result.error, values=result.values, quality=result.quality,
                alarms=result.alarms, alarm_changes=result.alarm_changes)
            self._append(record)
            self._log_alarm_changes(poller.device.name, number, result.alarm_changes)
            results.append(result)
            if self._pet_between_devices:
                self.notifier.watchdog()  # each silent device may take its full timeout
        self._update_state(number, wall_ms, cycle_start, results)
        if self._summary.due(cycle_start, self.state,
                             [poller.state_log.logged_state for poller in self.pollers]):
            logger.info("%s", self._summary.line(number, self.pollers, results,
                                                 self.state.spool_dropping),
                        extra={"BESSAI_EVENT": "cycle", "BESSAI_CYCLE": number})
        if self.notifier.enabled:
            self.notifier.cycle_done(service_notify.status_text(self.state))

    def _append(self, record):
        try:
            sequence = self.spool.append(record)
        except (OSError, ValueError, TypeError) as error:
            # NOTE: the record of this cycle is lost; the loop must go on regardless.
            self.limited.log("spool", logging.ERROR, "cannot append %s's record of cycle %d "
                             "to the spool: %s", record["device"], record["cycle"], error,
                             extra={"BESSAI_EVENT": "spool", "BESSAI_DEVICE": record["device"]})
            return
        if sequence is None:
            self.state.spool_dropping = True
            self.limited.log("spool-drop", logging.WARNING, "spool dropped %s's record of "
                             "cycle %d: the spool's disk is full or failing", record["device"],
                             record["cycle"], extra={"BESSAI_EVENT": "spool"})

    def _log_alarm_changes(self, device, number, changes):
        for name, raised in changes:
            full_name = f"{device}:{name}"
            level = logging.WARNING if raised else logging.INFO
            logger.log(level, "alarm %s %s", full_name, "raised" if raised else "cleared",
                       extra={"BESSAI_EVENT": "alarm", "BESSAI_ALARM": full_name,
                              "BESSAI_ALARM_STATE": "raised" if raised else "cleared",
                              "BESSAI_DEVICE": device, "BESSAI_CYCLE": number})

    def _update_state(self, number, wall_ms, cycle_start, results):
        state = self.state
        state.cycles = number
        state.last_cycle_wall_ms = wall_ms
        state.last_cycle_monotonic = cycle_start
        state.last_cycle_duration_s = self.clock() - cycle_start
        state.clock_synced = self.clock_watch.synced
        if state.spool_dropping and not self.spool.dropping:
            state.spool_dropping = False  # writing works again
        state.active_alarms = [f"{poller.device.name}:{name}"
                               for poller, result in zip(self.pollers, results)
                               for name in result.alarms]


def _write_stderr(text):
    """Write ``text`` to stderr with one system call: safe in a signal handler.

    The handler may have interrupted a log call, so it does not log.
    """
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass  # no stderr: nothing to tell


def next_start_index(start, period_s, index, now):
    """Return ``(next index, skipped start times)`` for the grid ``start + k * period_s``.

    ``index`` is the grid point due next. When ``now`` is already past it, the cycle
    overran: the next start is the first grid point after ``now``.
    """
    if now <= start + index * period_s:
        return index, 0
    late_index = math.floor((now - start) / period_s) + 1
    return late_index, late_index - index


class CycleSummary:
    """Decides when the cycle summary is logged and formats it.

    The summary goes to INFO on the first cycle, whenever a device's logged state
    (``DeviceStateLog.logged_state``), the set of active alarms or the spool's dropping
    changes, and otherwise once per SUMMARY_INTERVAL_S of cycle start times, so on the
    scan grid the lines come a minute apart (cycles 1, 61, 121 at a 1 s period). While
    the spool drops records (a full or failing disk), the line ends with
    ``spool=dropping``. A device that keeps changing state therefore gets no summary per
    change, as it gets no state line per change.
    """

    def __init__(self, name_devices):
        self.name_devices = name_devices
        self._last_time = None
        self._last_key = None

    def due(self, now, state, shown_states):
        key = (tuple(shown_states), tuple(state.active_alarms), state.spool_dropping)
        if self._last_time is not None and key == self._last_key and (
                now - self._last_time < SUMMARY_INTERVAL_S - SUMMARY_SLACK_S):
            return False
        self._last_time, self._last_key = now, key
        return True

    def line(self, number, pollers, results, spool_dropping=False):
        parts = []
        alarm_names = []
        for poller, result in zip(pollers, results):
            text = _device_summary(result)
            parts.append(f"{poller.device.name}: {text}" if self.name_devices else text)
            prefix = f"{poller.device.name}:" if self.name_devices else ""
            alarm_names.extend(prefix + name for name in result.alarms)
        alarms_text = ",".join(alarm_names) or "none"
        spool_text = " spool=dropping" if spool_dropping else ""
        return f"cycle {number}: {'; '.join(parts)} alarms={alarms_text}{spool_text}"


def _device_summary(result):
    if result.state == gateway_state.DEVICE_DOWN:
        return f"device down ({result.error or 'no answer'})"
    items = [_format_field(field, result.values[field])
             for field in SUMMARY_FIELDS if field in result.values]
    if result.state == gateway_state.DEVICE_DEGRADED:
        items.append(f"degraded ({result.error})")
    return " ".join(items) or "no summary fields"


def _format_field(field, value):
    name, unit = field, ""
    for suffix, symbol in _UNIT_SUFFIXES:
        if field.endswith(suffix):
            name, unit = field[:-len(suffix)], symbol
            break
    if value is None:
        return f"{name}=n/a"
    text = f"{value:.1f}"
    if text == "-0.0":
        text = "0.0"  # a small negative value rounds to -0.0, which reads like a sign error
    return f"{name}={text}{unit}"
