"""``bessai forward``: ship the spool to the MQTT broker, at least once, in order.

Start-up order: settings, logging, checkpoint directory, spool directory, the
forwarder's lock on the spool; then READY=1 before the first connection attempt,
because an unreachable broker is an outage to ride out, not a failed start. A spool
that another ``bessai forward`` has locked ends the start with status 78, like an
invalid setting, so systemd does not restart the unit (``RestartPreventExitStatus=78``).
SIGTERM, SIGINT and SIGHUP stop the loop: records in flight get a short time for their
acknowledgements, the checkpoint is saved, and the exit status is 0.

With ``MQTT_ENABLED`` false the command logs that forwarding is off, tells systemd it
is ready and exits 69 (``EX_UNAVAILABLE``). The unit counts that status as success and
does not restart on it, although it restarts after any other exit (``Restart=always``).
"""

import logging
import signal

from bessai_edge.i18n import _

HELP = "forward the spool's records to the MQTT broker (QoS 1, at least once)"

logger = logging.getLogger(__name__)


def add_arguments(parser):
    parser.epilog = _("Exit status: 0 after SIGTERM or Ctrl-C, 69 when MQTT_ENABLED is not "
                      "true (forwarding is off), 78 for invalid settings, a checkpoint or "
                      "spool directory that cannot be used, a spool segment this user cannot "
                      "read, or a spool that another bessai forward has locked. systemd does "
                      "not restart the bessai-forward unit after 69 or 78.")
    parser.add_argument(
        "--env-file", metavar=_("FILE"),
        help=_("read settings from FILE (systemd EnvironmentFile syntax); variables set in "
               "the environment override it"))


def main(args):
    from bessai_edge.errors import EX_UNAVAILABLE
    from bessai_edge.forward.checkpoint import CheckpointFile
    from bessai_edge.forward.forwarder import Forwarder
    from bessai_edge.forward.lock import SpoolLock
    from bessai_edge.forward.settings import (load_settings, read_environment,
                                              require_usable_state_dir)
    from bessai_edge.forward.state_lock import StateDirLock
    from bessai_edge.service import journal
    from bessai_edge.service.notify import Notifier
    from bessai_edge.service.privileges import log_switch, switch_to_spool_owner
    from bessai_edge.settings import DEFAULT_SPOOL_DIR
    from bessai_edge.spool.reader import SpoolReader

    environ = read_environment(args.env_file)
    journal.print_warnings(environ.warnings)
    # Before the settings, whose password file must be readable by the service's user.
    spool_dir = environ.get("SPOOL_DIR") or DEFAULT_SPOOL_DIR
    switched_to = switch_to_spool_owner(spool_dir)
    settings = load_settings(environ)
    journal.setup_logging(settings.log_level, site=environ.get("SITE_ID"))
    log_switch(switched_to, spool_dir)
    notifier = Notifier.from_environment()
    if not settings.enabled:
        where = _settings_place(args.env_file)
        logger.info("MQTT forwarding is off (MQTT_ENABLED is not true): nothing to do, "
                    "exiting; to forward the spool, set MQTT_ENABLED=true and "
                    "MQTT_BROKER_HOST %s, and start bessai forward again", where)
        notifier.ready(f"MQTT forwarding is off: set MQTT_ENABLED=true and MQTT_BROKER_HOST "
                       f"{where}, and restart")
        return EX_UNAVAILABLE

    require_usable_state_dir(settings)
    reader = SpoolReader(settings.spool_dir)
    reader.segments()  # a missing or unreadable spool directory raises SpoolError (exit 78)
    lock = SpoolLock(settings.spool_dir)
    lock.acquire()     # so does a spool that another forwarder has locked
    # A state directory that the forwarder of another spool uses raises ConfigError.
    state_lock = StateDirLock(settings.state_dir, settings.spool_dir)
    state_lock.acquire()
    forwarder = Forwarder(settings, reader, CheckpointFile(settings.state_dir), notifier,
                          lock=lock)

    def stop(signum, frame):
        forwarder.request_stop(f"received {signal.Signals(signum).name}")

    # SIGHUP arrives when the terminal of a foreground run closes. The forwarder has no
    # settings to reload on it, so it stops cleanly as for SIGTERM, like `bessai run`.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)
    try:
        return forwarder.run()
    finally:
        state_lock.release()   # after run() saved the checkpoint at its stop


def _settings_place(env_file):
    """Return where the settings should go: the file read, else the environment."""
    from bessai_edge.cli import INSTALLED_ENV_FILE

    if env_file:
        return f"in {env_file}"
    return (f"in the environment, or in a settings file given with --env-file "
            f"({INSTALLED_ENV_FILE} when installed)")
