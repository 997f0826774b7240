"""The running gateway: spool, health server, one poller per device and the scan loop.

``Gateway(settings, profiles, endpoints)`` only stores its inputs; ``open()`` builds and
opens everything, ``run(cycles)`` sends READY=1 and runs the scan loop, ``close()``
sends STOPPING=1, flushes and closes the spool and closes the connections. The
``bessai run`` command owns the order; benchmarks and tests can use the class directly.
``open_spool()`` opens the spool alone, so that ``bessai run`` reports a spool problem
before it starts simulator children. ``simulators`` (device name -> started
SimulatorProcess) are checked before each poll of their device and restarted when dead.
"""

import logging
import os
import time

from bessai_edge import alarms, package_version
from bessai_edge.alarm_restore import previous_alarms
from bessai_edge.link import DeviceLink, format_endpoint
from bessai_edge.poller import DevicePoller, profile_field_names
from bessai_edge.records import RecordFactory, read_boot_id
from bessai_edge.scanloop import ScanLoop
from bessai_edge.service.health import HealthServer
from bessai_edge.service.notify import Notifier, status_text
from bessai_edge.spool import Spool
from bessai_edge.state import GatewayState
from bessai_edge.watchdog_fit import fit_timeouts

logger = logging.getLogger(__name__)

# Time allowed after the last cycle for closing: the spool's final fdatasync and the
# simulator children's exit. Added to the stop time that systemd is asked to wait.
CLOSE_ALLOWANCE_S = 10.0
# Half the unit's TimeoutStartSec=60: when connecting to every device before READY=1
# can take longer, the gateway sends EXTEND_TIMEOUT_USEC first.
START_EXTEND_AFTER_S = 30.0


class Gateway:
    """Everything ``bessai run`` runs, built from validated settings and loaded profiles."""

    def __init__(self, settings, profiles, endpoints, notifier=None, simulators=None):
        self.settings = settings
        self.profiles = profiles      # device name -> Profile
        self.endpoints = endpoints    # device name -> (host, port), read by open()
        self.simulators = simulators if simulators is not None else {}  # name -> SimulatorProcess
        self.notifier = notifier if notifier is not None else Notifier.from_environment()
        self.state = GatewayState(site=settings.site_id, version=package_version)
        self.spool = None
        self.health = None
        self.pollers = []
        self.loop = None

    def open_spool(self):
        """Open the spool unless it is open; raises SpoolError."""
        if self.spool is not None:
            return
        spool_settings = self.settings.spool
        spool = Spool(spool_settings.directory,
                      segment_max_bytes=spool_settings.segment_max_bytes,
                      segment_max_age_s=spool_settings.segment_max_age_s,
                      fsync_interval_s=spool_settings.fsync_interval_s,
                      max_total_bytes=spool_settings.max_total_bytes)
        spool.open()
        self.spool = spool
        _warn_if_cap_exceeds_disk(spool_settings, spool.stats()["bytes"])

    def open(self):
        """Open the spool and the health server, build the pollers and log the start line."""
        settings = self.settings
        self._log_start()
        _warn_of_unmapped_limits(settings.limits, self.profiles.values())
        self.open_spool()
        self.health = HealthServer(settings.health_listen, self.state)
        boot_id = read_boot_id()
        previous = previous_alarms(settings.spool.directory, settings.site_id,
                                   {device.name: self.profiles[device.name].name
                                    for device in settings.devices})
        factories = []
        for device in settings.devices:
            poller = self._build_poller(device)
            if device.name in previous:
                poller.restore_alarms(previous[device.name])
            self.pollers.append(poller)
            factories.append(RecordFactory(settings.site_id, device.name, poller.profile.name,
                                           boot_id))
        self.loop = ScanLoop(period_s=settings.scan_interval_s, pollers=self.pollers,
                             factories=factories, spool=self.spool, state=self.state,
                             notifier=self.notifier, health=self.health,
                             stop_budget_s=self.silent_cycle_s() + CLOSE_ALLOWANCE_S,
                             close_allowance_s=CLOSE_ALLOWANCE_S)

    def _log_start(self):
        settings = self.settings
        devices = []
        for device in settings.devices:
            profile = self.profiles[device.name]
            unit_id = profile.unit_id if device.unit_id is None else device.unit_id
            devices.append(f"{device.name}: profile {profile.name} at "
                           f"{format_endpoint(*self.endpoints[device.name])} unit id {unit_id}")
        logger.info("bessai-edge %s starting: site %s, mode %s, period %g s, spool %s; %s",
                    package_version, settings.site_id, settings.mode, settings.scan_interval_s,
                    settings.spool.directory, "; ".join(devices),
                    extra={"BESSAI_EVENT": "startup"})

    def _build_poller(self, device):
        settings = self.settings
        profile = self.profiles[device.name]
        host, port = self.endpoints[device.name]
        options = {"connect_timeout_s": settings.connect_timeout_s,
                   "wait_until": self._serve_until}
        if settings.request_timeout_s is not None:
            options["request_timeout_s"] = settings.request_timeout_s
        link = DeviceLink.for_profile(profile, host, port=port, unit_id=device.unit_id,
                                      **options)
        self._fit_timeouts_to_watchdog(device.name, link)
        if self.notifier.watchdog_interval_s > 0:
            link.set_keepalive(self._keep_alive_in_long_cycle,
                               self.notifier.watchdog_interval_s / 4)
        simulator = self.simulators.get(device.name)
        if simulator is not None:
            return _SimulatedDevicePoller(simulator, device, profile, link, settings.limits,
                                          format_endpoint(host, port))
        return DevicePoller(device, profile, link, settings.limits, format_endpoint(host, port))

    def _fit_timeouts_to_watchdog(self, name, link):
        """Shorten the link's timeouts to fit half the watchdog interval, with a warning.

        ``watchdog_fit`` explains why a longer timeout would get the gateway restarted.
        """
        interval_s = self.notifier.watchdog_interval_s
        fitted = fit_timeouts(interval_s, link.connect_timeout_s, link.request_timeout_s,
                              link.quiet_after_connect_s)
        if not fitted.shortened:
            return
        too_long = []
        if fitted.connect_shortened:
            too_long.append(f"connect timeout {link.connect_timeout_s:g} s")
        if fitted.request_shortened:
            too_long.append(f"request timeout {link.request_timeout_s:g} s")
            if link.quiet_after_connect_s:
                too_long.append(f"after the profile's quiet time of "
                                f"{link.quiet_after_connect_s:g} s")
        link.connect_timeout_s = fitted.connect_s
        link.request_timeout_s = fitted.request_s
        logger.warning(
            "%s: with timeouts this long (%s) a silent device would get the gateway "
            "restarted by systemd's %g s watchdog: using a connect timeout of %g s and a "
            "request timeout of %g s; to keep the settings (CONNECT_TIMEOUT_S, "
            "REQUEST_TIMEOUT_S or the profile's request_timeout_s), raise WatchdogSec "
            "(systemctl edit bessai)", name, ", ".join(too_long), interval_s,
            link.connect_timeout_s, link.request_timeout_s,
            extra={"BESSAI_EVENT": "startup", "BESSAI_DEVICE": name})

    def _keep_alive_in_long_cycle(self):
        """Send WATCHDOG=1 from a cycle that has run a quarter interval or more.

        Shorter cycles leave it to the end of the cycle, where it goes out with the
        cycle's STATUS, so that in the normal case WATCHDOG=1 still means a completed
        cycle.
        """
        started = self.loop.cycle_started if self.loop is not None else None
        if started is not None and (
                time.monotonic() - started >= self.notifier.watchdog_interval_s / 4):
            self.notifier.watchdog()

    def _serve_until(self, deadline):
        """Wait for the link (quiet time, request spacing) while serving /health.

        A stop request wakes the health server early; the link must still wait its full
        time, so the wait resumes until the deadline.
        """
        while time.monotonic() < deadline:
            self.health.serve_until(deadline)

    def run(self, max_cycles=None):
        """Send READY=1 and run the scan loop until stopped; return the cycles run."""
        self.loop.install_signal_handlers()
        start_s = sum(max(poller.link.connect_timeout_s, poller.link.quiet_after_connect_s)
                      for poller in self.pollers)
        if start_s > START_EXTEND_AFTER_S:
            # Every device down at boot: each connect waits out its timeout before READY=1.
            self.notifier.extend_timeout(start_s + CLOSE_ALLOWANCE_S)
        for poller in self.pollers:
            poller.prepare()
        if not self.loop.stop_requested:  # a stop during start-up already sent STOPPING=1
            self.notifier.ready(status_text(self.state))
        return self.loop.run(max_cycles)

    def silent_cycle_s(self):
        """Return how long one cycle can take when every device stays silent.

        A device that accepts TCP and never replies costs its quiet time after connect
        plus one request timeout (its poll ends at the first failed request), and one
        that does not accept costs a connect timeout.
        """
        return sum(max(link.connect_timeout_s, link.quiet_after_connect_s + link.request_timeout_s)
                   for link in (poller.link for poller in self.pollers))

    def close(self):
        """Send STOPPING=1, then flush and close the spool and every connection."""
        self.notifier.stopping()
        for poller in self.pollers:
            poller.close()
        if self.spool is not None:
            stats = self.spool.stats()
            self.spool.close()  # flushes first
            appended = stats.get("records_appended")
            overruns = self.state.overruns
            # The overrun line is rate-limited, so the total is given here once more.
            overrun_text = f", {overruns} {'overrun' if overruns == 1 else 'overruns'}"
            logger.info("stopped after %d %s: %s %s appended, %s dropped%s",
                        self.state.cycles, "cycle" if self.state.cycles == 1 else "cycles",
                        appended, "record" if appended == 1 else "records",
                        stats.get("records_dropped"), overrun_text if overruns else "",
                        extra={"BESSAI_EVENT": "shutdown"})
        if self.health is not None:
            self.health.close()


def _warn_of_unmapped_limits(limit_settings, profiles):
    """Warn of each limit changed in the settings whose field no device's profile maps."""
    fields = {field for profile in profiles for field in profile_field_names(profile)}
    for field, variables in alarms.unmapped_limits(limit_settings, fields):
        logger.warning("%s set, but no device's profile maps %s, so the limit is never "
                       "checked: add a point with \"field\": \"%s\" to the profile, or "
                       "remove the %s", ", ".join(variables), field, field,
                       "setting" if len(variables) == 1 else "settings",
                       extra={"BESSAI_EVENT": "startup"})


def _warn_if_cap_exceeds_disk(spool_settings, spool_bytes):
    """Warn when the spool's size cap is more than its file system can hold.

    The spool evicts its oldest records only to stay under the cap. On a full disk it
    drops new records instead, so a cap above the space it can get keeps old
    telemetry and loses the current.
    """
    try:
        usage = os.statvfs(spool_settings.directory)
    except OSError:
        return  # the spool opened, so the next write reports a real problem
    free = usage.f_bavail * usage.f_frsize
    room = free + spool_bytes
    if spool_settings.max_total_bytes <= room:
        return
    file_system_bytes = usage.f_blocks * usage.f_frsize
    if spool_settings.max_total_bytes <= file_system_bytes:
        # The cap fits the file system, so other files take the room. A lower cap would
        # evict undelivered records and leave the disk as full as before.
        logger.warning("SPOOL_MAX_TOTAL_BYTES=%d is more than the spool can get on its file "
                       "system (%d bytes: %d free and %d in the spool), because other files "
                       "take most of its %d bytes: when the disk fills, new records are "
                       "dropped while the oldest stay; free space there (df -h %s shows it)",
                       spool_settings.max_total_bytes, room, free, spool_bytes,
                       file_system_bytes, spool_settings.directory,
                       extra={"BESSAI_EVENT": "spool"})
        return
    cap_k = room * 9 // 10 // 1024  # a tenth left for the rest of the system
    changes = [f"SPOOL_MAX_TOTAL_BYTES to at most {cap_k}K"]
    if spool_settings.segment_max_bytes > cap_k * 1024 // 2:
        # The cap must hold two segments, so a small disk needs smaller segments too.
        changes.insert(0, f"SPOOL_SEGMENT_MAX_BYTES to at most {cap_k // 2}K")
    fix = "set " + " and ".join(changes)
    logger.warning("SPOOL_MAX_TOTAL_BYTES=%d is more than the spool can get on its file system "
                   "(%d bytes: %d free and %d in the spool): when the disk fills, new records "
                   "are dropped while the oldest stay; %s", spool_settings.max_total_bytes,
                   room, room - spool_bytes, spool_bytes, fix, extra={"BESSAI_EVENT": "spool"})


class _SimulatedDevicePoller(DevicePoller):
    """A poller whose device is a simulator child: the child is checked before each poll.

    ``check()`` costs one waitpid(WNOHANG) while the child runs. A dead child is logged,
    reaped and restarted on the same port, and the link reconnects on its own schedule.
    """

    def __init__(self, simulator, *args):
        super().__init__(*args)
        self.simulator = simulator

    def poll(self, *args, **kwargs):
        self.simulator.check()
        return super().poll(*args, **kwargs)
