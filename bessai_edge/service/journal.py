"""Logging set-up: journald with structured fields under systemd, plain lines otherwise.

systemd sets ``JOURNAL_STREAM=DEVICE:INODE`` to the stream it connected stdout and
stderr to. When stderr is still that stream, records go through systemd-python's
``JournalHandler`` with their priority and the ``BESSAI_*`` fields that callers pass as
``extra={...}``, so ``journalctl -u bessai BESSAI_DEVICE=inverter`` filters on them.
Otherwise (a terminal, a pipe, a file) each record is one plain line on stderr, the
fields appended as ``KEY=value``.
"""

import faulthandler
import logging
import os
import re
import sys

from bessai_edge.errors import ConfigError
from bessai_edge.i18n import _

SYSLOG_IDENTIFIER = "bessai"

# Structured fields a technician filters on with `journalctl -u bessai FIELD=value`.
# Callers pass them as extra={FIELD_DEVICE: name, ...}; systemd/README.md lists the queries.
FIELD_SITE = "BESSAI_SITE"              # SITE_ID, on every record
FIELD_DEVICE = "BESSAI_DEVICE"          # device name as configured
FIELD_ENDPOINT = "BESSAI_ENDPOINT"      # host:port of the device
FIELD_PROFILE = "BESSAI_PROFILE"        # profile name, e.g. huawei_sun2000
FIELD_CYCLE = "BESSAI_CYCLE"            # cycle number since start
FIELD_EVENT = "BESSAI_EVENT"            # kind of record, one of the EVENT_* values
FIELD_ALARM = "BESSAI_ALARM"            # alarm name, "device:field:level"
FIELD_ALARM_STATE = "BESSAI_ALARM_STATE"  # "raised" or "cleared"
FIELD_DEVICE_STATE = "BESSAI_DEVICE_STATE"  # ok, degraded, down
FIELD_ERROR_KIND = "BESSAI_ERROR_KIND"  # LinkError.kind: timeout, refused, exception_2, ...
FIELD_SPOOL_SEQ = "BESSAI_SPOOL_SEQ"    # sequence number of a spool record (forwarder)

EVENT_STARTUP = "startup"
EVENT_SHUTDOWN = "shutdown"
EVENT_CYCLE = "cycle"
EVENT_OVERRUN = "overrun"
EVENT_DEVICE_STATE = "device_state"
EVENT_ALARM = "alarm"
EVENT_SPOOL = "spool"
EVENT_LINK = "link"
EVENT_IMPLAUSIBLE_VALUE = "implausible_value"  # a reading that cannot be right

# journald accepts upper-case ASCII letters, digits and underscores, not starting with
# an underscore (those are trusted fields set by journald itself) or a digit.
_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}\Z")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_site_filter = None
_SPOOL_LOGGER = "bessai_edge.spool."


def stderr_is_journal(stream=None, environ=None):
    """Return True when JOURNAL_STREAM names the device and inode of ``stream`` (stderr)."""
    environ = os.environ if environ is None else environ
    device, sep, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not sep:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        status = os.fstat(stream.fileno())
        return (int(device), int(inode)) == (status.st_dev, status.st_ino)
    except (AttributeError, OSError, ValueError):
        return False


def print_warnings(warnings, stream=None):
    """Print each warning on stderr as ``bessai: warning: ...``.

    journald stores plain stderr lines at info priority, so when stderr is the journal
    each line gets the ``<4>`` prefix (syslog "warning"), which ``journalctl -p warning``
    finds.
    """
    stream = sys.stderr if stream is None else stream
    prefix = "<4>" if stderr_is_journal(stream) else ""
    for warning in warnings:
        print(prefix + _("bessai: warning: {warning}").format(warning=warning), file=stream)


def parse_level(level):
    """Return the logging level for ``level``: a logging constant or a name like ``info``."""
    if isinstance(level, int):
        return level
    name = str(level).strip().upper()
    if name not in LEVELS:
        raise ConfigError(_("LOG_LEVEL={value!r} is invalid: expected one of {choices}").format(
            value=level, choices=", ".join(LEVELS)))
    return getattr(logging, name)


def quiet_pymodbus():
    """Keep pymodbus's own debug lines (frame dumps) out of the log at every level.

    At debug level the link logs one line per request with the unit id, address and
    result. pymodbus's lines would add two more per request, a byte dump and a reply
    text without the request's address.
    """
    logging.getLogger("pymodbus").setLevel(logging.INFO)


def setup_logging(level="INFO", site=None, stream=None):
    """Send every log record to journald or to stderr and return the handler.

    Replaces the root logger's handlers, so calling it again is safe. ``site`` fills
    BESSAI_SITE; ``set_site`` sets it once the settings are read. Also enables
    ``faulthandler`` on stderr, so a process that the watchdog aborts with SIGABRT
    leaves the Python traceback of where it hung in the journal.
    """
    global _site_filter
    stream = sys.stderr if stream is None else stream
    if stderr_is_journal(stream):
        handler = _journal_handler()
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(PlainFormatter())
    _site_filter = _DefaultFieldsFilter({FIELD_SITE: site or ""})
    handler.addFilter(_site_filter)

    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    quiet_pymodbus()
    try:
        faulthandler.enable(file=stream)
    except (AttributeError, OSError, ValueError):
        pass  # a stream without a file descriptor, as under pytest's capture
    return handler


def set_site(site):
    """Set BESSAI_SITE for every later record."""
    if _site_filter is not None:
        _site_filter.fields[FIELD_SITE] = site or ""


def _journal_handler():
    from systemd import journal

    def send_valid_fields(text, /, **fields):
        # JournalHandler passes every attribute of the LogRecord (msg, args, message,
        # ...), hence the positional-only parameter. Only journal field names are sent,
        # without empty values and without EXCEPTION_INFO, the repr of the exc_info
        # tuple (EXCEPTION_TEXT has the traceback).
        valid = {name: value for name, value in fields.items()
                 if _FIELD_NAME.match(name) and name != "EXCEPTION_INFO"
                 and value is not None and value != ""}
        journal.send(text, **valid)

    return journal.JournalHandler(sender_function=send_valid_fields,
                                  SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)


class _DefaultFieldsFilter(logging.Filter):
    """Adds fields to records that do not carry them, such as BESSAI_SITE.

    Every line of the spool's modules gets BESSAI_EVENT=spool, so that
    ``journalctl BESSAI_EVENT=spool`` finds the lines about dropped and evicted records.
    """

    def __init__(self, fields):
        super().__init__()
        self.fields = fields

    def filter(self, record):
        for name, value in self.fields.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if record.name.startswith(_SPOOL_LOGGER) and not hasattr(record, FIELD_EVENT):
            setattr(record, FIELD_EVENT, EVENT_SPOOL)
        return True


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger: message KEY=value ...`` with the BESSAI_* fields of the record."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record):
        line = super().format(record)
        fields = [f"{name}={value}" for name, value in sorted(vars(record).items())
                  if name.startswith("BESSAI_") and name != FIELD_SITE
                  and value is not None and value != ""]
        if not fields:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return head + " " + " ".join(fields) + newline + rest

