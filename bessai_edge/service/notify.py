"""sd_notify messages to systemd: READY, WATCHDOG, STATUS and STOPPING.

systemd passes the notification socket in ``NOTIFY_SOCKET`` (a path, or ``@name`` for an
abstract socket) and the watchdog interval in ``WATCHDOG_USEC``, meant for the process
whose PID is in ``WATCHDOG_PID`` when that is set. Messages go through systemd-python's
``systemd.daemon.notify`` (libsystemd's ``sd_notify``) when it can be imported, and
through the pure-Python ``sdnotify`` package otherwise. Both read ``NOTIFY_SOCKET`` from
the process environment, so it stays there; child processes get
``child_environment()`` instead.
"""

import logging
import os
import time

logger = logging.getLogger(__name__)

# watchdog() sends at most this many times per WATCHDOG_USEC. With a loop period of at
# most a quarter of the interval, the gap between two sends stays below half of it.
WATCHDOG_SENDS_PER_INTERVAL = 4

# Variables that address this process only. A child that inherited NOTIFY_SOCKET could
# send READY=1 or WATCHDOG=1 on our behalf (systemd drops them with the default
# NotifyAccess=main, but logs a warning for each), and LISTEN_* describe our sockets.
PROCESS_ONLY_VARIABLES = (
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
    "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
)

MAX_STATUS_ALARMS = 3
STATUS_REFRESH_S = 10.0  # without a watchdog: how old the cycle count in STATUS= may get
SEND_TIMEOUT_S = 1.0  # sdnotify back end only: libsystemd's sd_notify has no timeout


def child_environment(environ=None):
    """Return a copy of the environment without the variables meant for this process only."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if name not in PROCESS_ONLY_VARIABLES}


def watchdog_usec_from_environment(environ=None, pid=None):
    """Return the watchdog interval meant for this process in microseconds, or 0 when off.

    Mirrors ``sd_watchdog_enabled``: WATCHDOG_USEC must be a positive integer, and when
    WATCHDOG_PID is set it must be this process's PID.
    """
    environ = os.environ if environ is None else environ
    raw_usec = environ.get("WATCHDOG_USEC", "").strip()
    if not raw_usec:
        return 0
    try:
        usec = int(raw_usec)
    except ValueError:
        usec = 0
    if usec <= 0:
        logger.warning("watchdog disabled: WATCHDOG_USEC=%r is not a positive integer", raw_usec)
        return 0
    raw_pid = environ.get("WATCHDOG_PID", "").strip()
    if raw_pid:
        pid = os.getpid() if pid is None else pid
        if raw_pid != str(pid):
            logger.info("watchdog disabled: WATCHDOG_PID=%s is not this process (%d)", raw_pid, pid)
            return 0
    return usec


def _systemd_sender():
    """Return a sender on libsystemd's sd_notify, or None without systemd-python."""
    try:
        from systemd import daemon
    except ImportError:
        return None

    def send(message):
        daemon.notify(message)

    return send


class _SdnotifySender:
    """Sender on the ``sdnotify`` package; reconnects after a failed send."""

    def __init__(self):
        import sdnotify  # imported here so that systemd-python hosts never need it

        self._module = sdnotify
        self._notifier = None

    def __call__(self, message):
        if self._notifier is None:
            # debug=True: sdnotify raises instead of swallowing errors, so they get logged.
            self._notifier = self._module.SystemdNotifier(debug=True)
            # A full receive queue would block the scan loop; time out instead.
            self._notifier.socket.settimeout(SEND_TIMEOUT_S)
        # sdnotify encodes with Latin-1, while systemd reads UTF-8. Handing it the UTF-8
        # bytes spelled as Latin-1 characters puts the UTF-8 bytes on the wire.
        try:
            self._notifier.notify(message.encode("utf-8").decode("latin-1"))
        except OSError:
            self._notifier = None
            raise


def _make_sender(backend):
    if backend in (None, "systemd"):
        send = _systemd_sender()
        if send is not None:
            return send, "systemd"
        if backend == "systemd":
            raise ImportError("systemd-python is not installed")
    return _SdnotifySender(), "sdnotify"


class Notifier:
    """Sends sd_notify messages; every method does nothing when not started by systemd.

    ``send`` takes one message string (newline-separated ``KEY=VALUE`` assignments), or
    is None outside systemd. ``watchdog_usec`` is the interval systemd expects
    WATCHDOG=1 in, 0 when the watchdog is off.
    """

    def __init__(self, send=None, watchdog_usec=0, backend="", clock=time.monotonic):
        self._send = send
        self._clock = clock
        self.backend = backend if send is not None else ""
        self.watchdog_interval_s = watchdog_usec / 1e6 if send is not None else 0.0
        self._watchdog_gap_s = self.watchdog_interval_s / WATCHDOG_SENDS_PER_INTERVAL
        self._last_watchdog = None
        self._last_status = None           # when cycle_done last sent STATUS=
        self._last_status_detail = None    # that STATUS= text after the cycle count
        self._failed_sends = 0
        self._stopping_sent = False

    @classmethod
    def from_environment(cls, backend=None, clock=time.monotonic):
        """Build a Notifier from NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.

        ``backend`` forces ``"systemd"`` or ``"sdnotify"``; by default systemd-python is
        used when it can be imported.
        """
        if not os.environ.get("NOTIFY_SOCKET"):
            return cls(clock=clock)
        send, name = _make_sender(backend)
        notifier = cls(send, watchdog_usec_from_environment(), backend=name, clock=clock)
        logger.debug("sd_notify through %s, watchdog interval %.1f s",
                     name, notifier.watchdog_interval_s)
        return notifier

    @property
    def enabled(self):
        """True when messages go to systemd."""
        return self._send is not None

    def ready(self, status=None):
        """Tell systemd that start-up is complete (READY=1), with an optional STATUS."""
        self._notify(_with_status("READY=1", status))

    def watchdog(self):
        """Send WATCHDOG=1 when due; return True when it was sent.

        The forwarder calls this at every turn of its loop (the scan loop uses
        ``cycle_done``, which applies the same rule). It sends on the first call
        and then once a quarter of the watchdog interval has passed since the last send.
        A loop whose period is at most a quarter of the interval therefore reaches
        systemd at least twice per interval.
        """
        now = self._clock()
        if not self._watchdog_due(now):
            return False
        self._last_watchdog = now
        return self._notify("WATCHDOG=1")

    def _watchdog_due(self, now):
        """Return True when the watchdog is on and WATCHDOG=1 is due at ``now``."""
        if self.watchdog_interval_s <= 0:
            return False
        return self._last_watchdog is None or now - self._last_watchdog >= self._watchdog_gap_s

    def cycle_done(self, status):
        """Send WATCHDOG=1 when due and STATUS= when it changed, in one message.

        The scan loop calls this after every cycle with its ``status_text``. A change
        after the cycle count (a device state, an alarm) goes out at once. The count
        alone is refreshed with each WATCHDOG=1, or every STATUS_REFRESH_S without a
        watchdog, so systemd does not get a message every cycle. Returns True when
        a message was sent.
        """
        if self._send is None:
            return False
        now = self._clock()
        watchdog_due = self._watchdog_due(now)
        detail = status.partition("; ")[2]
        if not watchdog_due and detail == self._last_status_detail and (
                now - self._last_status < STATUS_REFRESH_S):
            return False
        if watchdog_due:
            self._last_watchdog = now
        self._last_status = now
        self._last_status_detail = detail
        return self._notify(_with_status("WATCHDOG=1" if watchdog_due else "", status))

    def status(self, text):
        """Set the one-line status that ``systemctl status`` shows (STATUS=)."""
        self._notify(_with_status("", text))

    def stopping(self, status=None):
        """Tell systemd that shutdown has begun (STOPPING=1), unless ``stop_requested`` sent it."""
        if not self._stopping_sent:
            self._stopping_sent = self._notify(_with_status("STOPPING=1", status))

    def extend_timeout(self, extend_s):
        """Ask systemd to wait ``extend_s`` more for the current step (EXTEND_TIMEOUT_USEC).

        During start-up this extends ``TimeoutStartSec``: systemd then expects READY=1
        or another message within ``extend_s``.
        """
        self._notify(f"EXTEND_TIMEOUT_USEC={round(extend_s * 1e6)}")

    def stop_requested(self, extend_s):
        """Send STOPPING=1 and ask systemd to wait ``extend_s`` more for the stop.

        Called from a signal handler while a request may be in flight: the cycle in
        progress finishes before the gateway exits, which can outlast the unit's
        ``TimeoutStopSec``. EXTEND_TIMEOUT_USEC moves the stop deadline to at least
        ``extend_s`` from now. A failed send is only counted, because the handler may
        have interrupted a log call.
        """
        if self._send is None or self._stopping_sent:
            return
        try:
            self._send(f"STOPPING=1\nEXTEND_TIMEOUT_USEC={round(extend_s * 1e6)}")
        except OSError:
            self._failed_sends += 1
            return
        self._stopping_sent = True

    def _notify(self, message):
        if self._send is None or not message:
            return False
        try:
            self._send(message)
        except OSError as error:
            self._failed_sends += 1
            if self._failed_sends == 1:
                logger.warning("sd_notify to NOTIFY_SOCKET=%s failed: %s",
                               os.environ.get("NOTIFY_SOCKET", ""), error)
            return False
        if self._failed_sends:
            logger.info("sd_notify works again after %d failed messages", self._failed_sends)
            self._failed_sends = 0
        return True


def _with_status(first, status):
    lines = [first] if first else []
    if status:
        # A newline would start a new assignment in the notify protocol.
        lines.append("STATUS=" + " ".join(str(status).split("\n")))
    return "\n".join(lines)


def status_text(state):
    """Return the STATUS= line for a GatewayState: cycle, device states, alarms, spool drops."""
    devices = ", ".join(f"{device.name} {device.state}" for device in state.devices) or "no devices"
    alarms = list(state.active_alarms)
    if not alarms:
        alarm_text = "no alarms"
    else:
        alarm_text = "alarms: " + ", ".join(alarms[:MAX_STATUS_ALARMS])
        if len(alarms) > MAX_STATUS_ALARMS:
            alarm_text += f" (+{len(alarms) - MAX_STATUS_ALARMS} more)"
    spool_text = "; spool dropping records (disk full or failing)" if state.spool_dropping else ""
    return f"cycle {state.cycles}; {devices}; {alarm_text}{spool_text}"
