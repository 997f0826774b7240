"""Settings of ``bessai forward``, read from the environment with ``envfile.EnvReader``.

``load_settings(environ)`` validates every variable at once and returns a frozen
``ForwardSettings``, or raises one ``ConfigError`` that lists every problem, one line
each. Files named by the settings (password, TLS certificates and key) are read here,
at start, so that a wrong path or a bad certificate stops the service before it runs.

``bessai run`` reads the same settings file. ``read_environment`` splits the check of
its names between the two commands, so that each misspelt name is reported by the
command that reads the setting it resembles:

* a name that starts with ``MQTT_`` or ``FORWARD_`` and is not a forwarder setting is
  reported here, from the file or the process environment;
* another name in the file that resembles a setting the forwarder reads (``MQT_ENABLED``,
  ``SPOOL_DRI``) is reported here too;
* a name that is, or resembles, a setting only ``bessai run`` reads (``SCAN_INTERVL_S``,
  ``DEVICE_...``) is left to ``bessai run``, which refuses to start on it; the
  forwarder does not fail a second time for a setting it does not read;
* a name that resembles no setting belongs to some other program and is left alone.
"""

import dataclasses
import difflib
import os
import re
import socket
import ssl
import stat

from bessai_edge import access, setting_names
from bessai_edge import settings as run_settings
from bessai_edge.envfile import (
    EnvReader,
    is_explicit_path,
    located,
)
from bessai_edge.errors import ConfigError
from bessai_edge.hosts import host_problem
from bessai_edge.i18n import _, os_error_text

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
# The window is counted in records; each record takes up to two MQTT packet ids
# (telemetry and alarms), and MQTT has 65535 of them.
MAX_INFLIGHT = 10000
# Maximum wait for the PUBACK of the oldest message in flight before the connection is
# dropped and the records are sent again. A broker on the site's network acknowledges
# within milliseconds. By estimate, a full default window (100 records of about 1.5 kB)
# takes about 12 s over a 100 kbit/s cellular link.
DEFAULT_ACK_TIMEOUT_S = 60.0
# MQTT_PROTOCOL values. MQTT 3.1.1 is for brokers without MQTT 5: its PUBACK has no
# reason code, so a publish the broker refuses (ACL, size limit) looks delivered.
PROTOCOLS = ("5", "3.1.1")
DEFAULT_PROTOCOL = "5"

# Topic levels without MQTT wildcards, separated by single slashes.
_TOPIC_PREFIX = r"[^/+#\s]+(/[^/+#\s]+)*"
# MQTT's topic limit minus "/SITE_ID/DEVICE/telemetry" at their longest (64 and 32 bytes).
MAX_TOPIC_PREFIX_BYTES = 65535 - len("/" + "s" * 64 + "/" + "d" * 32 + "/telemetry")
# Printable ASCII without spaces: every broker accepts it, and it shows up readably in logs.
_CLIENT_ID = r"[!-~]{1,128}"

# Every variable this module reads. Other names with these prefixes are reported, so
# that a misspelt MQTT_ENABLED does not leave forwarding off without a word.
KNOWN_NAMES = frozenset({
    "MQTT_ENABLED", "MQTT_BROKER_HOST", "MQTT_PORT", "MQTT_CLIENT_ID", "MQTT_USERNAME",
    "MQTT_PASSWORD", "MQTT_PASSWORD_FILE", "MQTT_TLS_CA", "MQTT_TLS_CERT", "MQTT_TLS_KEY",
    "MQTT_TOPIC_PREFIX", "MQTT_KEEPALIVE", "MQTT_INFLIGHT", "MQTT_RECONNECT_MIN_S",
    "MQTT_RECONNECT_MAX_S", "MQTT_ACK_TIMEOUT_S", "MQTT_PROTOCOL", "FORWARD_STATE_DIR",
    "FORWARD_CHECKPOINT_INTERVAL_S",
})
OWN_PREFIXES = ("MQTT_", "FORWARD_")
# Every name the forwarder reads: its own and those it shares with ``bessai run``.
READ_NAMES = KNOWN_NAMES | {"SITE_ID", "SPOOL_DIR", "LOG_LEVEL"}
_CUTOFF = 0.8  # difflib ratio above which a name counts as a misspelling of another


@dataclasses.dataclass(frozen=True)
class ForwardSettings:
    """Every setting of ``bessai forward``, validated."""

    enabled: bool
    broker_host: str
    port: int
    client_id: str
    username: str | None
    password: str | None = dataclasses.field(repr=False)
    password_source: str                # "MQTT_PASSWORD", "MQTT_PASSWORD_FILE" or ""
    tls_context: ssl.SSLContext | None  # None: plain TCP
    topic_prefix: str
    keepalive_s: int
    inflight: int
    reconnect_min_s: float
    reconnect_max_s: float
    ack_timeout_s: float
    protocol: str                       # "5" or "3.1.1", one of PROTOCOLS
    spool_dir: str
    state_dir: str
    checkpoint_interval_s: float
    log_level: str

    @property
    def broker(self):
        """``host:port`` of the broker, for log lines and messages."""
        host = f"[{self.broker_host}]" if ":" in self.broker_host else self.broker_host
        return f"{host}:{self.port}"


def read_environment(env_file=None, environ=None):
    """Return the settings environment: ``env_file``'s variables, overridden by ``environ``.

    Like ``settings.read_environment``, but the names in the file are checked for the
    forwarder (see the module's docstring); ``load_settings`` reports the problems.
    """
    return run_settings.read_environment(env_file, environ,
                                         misspelt_name_problem=_misspelt_file_name)


def _misspelt_file_name(where, name):
    """Return a problem line when ``name``, set at ``where`` (FILE:LINE), resembles a
    setting the forwarder reads.
    """
    every_name = READ_NAMES | run_settings.KNOWN_NAMES
    if name in every_name or name.startswith(setting_names.CHECKED_PREFIXES):
        return None   # a setting, or a name _check_names or ``bessai run`` checks
    close = difflib.get_close_matches(name, sorted(every_name), n=1, cutoff=_CUTOFF)
    if not close or close[0] not in READ_NAMES:
        return None   # another program's variable, or a near miss ``bessai run`` reports
    return _("{path}: {name} is not a bessai setting: did you mean {known}?").format(
        path=where, name=name, known=close[0])


def load_settings(environ):
    """Validate the forwarder's settings in ``environ``; raise ConfigError listing every problem.

    The problems include ``environ.name_problems`` when ``environ`` comes from
    ``read_environment``. With ``MQTT_ENABLED`` false, only that variable and
    ``LOG_LEVEL`` are read: the other MQTT settings may then be absent or incomplete.
    An invalid ``MQTT_ENABLED`` is reported with the other MQTT settings' problems.
    """
    reader = EnvReader(environ)
    reader.problems.extend(getattr(environ, "name_problems", ()))
    _check_names(reader)
    problems_before = len(reader.problems)
    enabled = reader.boolean("MQTT_ENABLED", False)
    switch_invalid = len(reader.problems) > problems_before
    log_level = reader.choice("LOG_LEVEL", LOG_LEVELS, "info")
    if not enabled and not switch_invalid:
        reader.raise_if_invalid()
        return _disabled_settings(log_level)

    broker_host = _read_broker_host(reader)
    tls_context = _read_tls(reader)
    username, password, password_source = _read_credentials(reader)
    reconnect_min_s = reader.number("MQTT_RECONNECT_MIN_S", 1.0, minimum=0.1, maximum=3600)
    reconnect_max_s = reader.number("MQTT_RECONNECT_MAX_S", 60.0, minimum=0.1, maximum=3600)
    if reconnect_max_s < reconnect_min_s:
        reader.problems.append(_(
            "MQTT_RECONNECT_MAX_S={maximum} is less than MQTT_RECONNECT_MIN_S={minimum}: "
            "the longest wait between connection attempts cannot be shorter than the "
            "first one").format(maximum=reader.raw("MQTT_RECONNECT_MAX_S") or reconnect_max_s,
                                minimum=reader.raw("MQTT_RECONNECT_MIN_S") or reconnect_min_s))
    settings = ForwardSettings(
        enabled=True,
        broker_host=broker_host,
        port=reader.integer("MQTT_PORT", DEFAULT_TLS_PORT if tls_context else DEFAULT_PORT,
                            minimum=1, maximum=65535),
        client_id=_read_client_id(reader),
        username=username,
        password=password,
        password_source=password_source,
        tls_context=tls_context,
        topic_prefix=_read_topic_prefix(reader),
        keepalive_s=reader.integer("MQTT_KEEPALIVE", 60, minimum=5, maximum=65535),
        inflight=reader.integer("MQTT_INFLIGHT", 100, minimum=1, maximum=MAX_INFLIGHT),
        reconnect_min_s=reconnect_min_s,
        reconnect_max_s=reconnect_max_s,
        ack_timeout_s=reader.number("MQTT_ACK_TIMEOUT_S", DEFAULT_ACK_TIMEOUT_S,
                                    minimum=1, maximum=3600),
        protocol=reader.choice("MQTT_PROTOCOL", PROTOCOLS, DEFAULT_PROTOCOL),
        spool_dir=_read_directory(reader, "SPOOL_DIR", "/var/spool/bessai"),
        state_dir=_read_directory(reader, "FORWARD_STATE_DIR", "/var/lib/bessai"),
        checkpoint_interval_s=reader.number(
            "FORWARD_CHECKPOINT_INTERVAL_S", 5.0, minimum=0, maximum=3600),
        log_level=log_level,
    )
    reader.raise_if_invalid()
    return settings


def _check_names(reader):
    for name in sorted(reader.environ):
        if not name.startswith(OWN_PREFIXES) or name in KNOWN_NAMES:
            continue
        close = difflib.get_close_matches(name, sorted(KNOWN_NAMES), n=1, cutoff=_CUTOFF)
        if close:
            problem = _("{name} is not a setting of bessai forward: did you mean "
                        "{known}?").format(name=name, known=close[0])
        else:
            problem = _("{name} is not a setting of bessai forward: remove it "
                        "(docs/forwarder.md lists the MQTT_ and FORWARD_ settings)").format(
                            name=name)
        reader.problems.append(located(reader.environ, name, problem))


def _disabled_settings(log_level):
    return ForwardSettings(
        enabled=False, broker_host="", port=DEFAULT_PORT, client_id="", username=None,
        password=None, password_source="", tls_context=None, topic_prefix="bessai",
        keepalive_s=60, inflight=100, reconnect_min_s=1.0, reconnect_max_s=60.0,
        ack_timeout_s=DEFAULT_ACK_TIMEOUT_S, protocol=DEFAULT_PROTOCOL, spool_dir="", state_dir="",
        checkpoint_interval_s=5.0, log_level=log_level)


def _read_broker_host(reader):
    host = reader.string("MQTT_BROKER_HOST", "", required=True, accepted=_(
        "the IP address or host name of the MQTT broker, e.g. 192.168.1.200"))
    problem = host_problem(host, "MQTT_PORT") if host else None
    if problem:
        reader.invalid("MQTT_BROKER_HOST", host, problem)
    return host



def _read_client_id(reader):
    default = "bessai-forward-" + (reader.raw("SITE_ID") or socket.gethostname())
    return reader.string("MQTT_CLIENT_ID", default[:128], pattern=_CLIENT_ID, accepted=_(
        "expected 1 to 128 printable ASCII characters without spaces, unique on the broker"))


def _read_directory(reader, name, default):
    directory = reader.string(name, default)
    if not is_explicit_path(directory):
        reader.invalid(name, directory, _(
            "expected an absolute path such as {default}, or a path relative to the "
            "working directory that starts with ./ or ../").format(default=default))
    return directory


def _read_topic_prefix(reader):
    prefix = reader.string(
        "MQTT_TOPIC_PREFIX", "bessai", pattern=_TOPIC_PREFIX,
        accepted=_("expected topic levels separated by '/', without '+', '#', "
                   "spaces or empty levels, e.g. bessai or acme/bessai"))
    if prefix is not None and prefix.startswith("$"):
        # MQTT leaves topics that start with '$' (such as $SYS) to the broker. Mosquitto
        # 2.0.11 rejects every publish there with reason code 135, even without an ACL.
        reader.invalid("MQTT_TOPIC_PREFIX", prefix, _(
            "topics that start with '$' are reserved for the broker, which rejects every "
            "publish to them: remove the leading '$', e.g. bessai or acme/bessai"))
    elif prefix is not None and len(prefix.encode()) > MAX_TOPIC_PREFIX_BYTES:
        # paho raises on a longer topic at the first publish, a crash at every restart.
        reader.invalid("MQTT_TOPIC_PREFIX", prefix[:40] + "...", _(
            "expected at most {limit} bytes, so that a topic with the site and device "
            "names fits the 65535 bytes MQTT allows").format(limit=MAX_TOPIC_PREFIX_BYTES))
    return prefix


def _read_credentials(reader):
    """Return (username, password, name of the variable the password came from)."""
    username = reader.string("MQTT_USERNAME")
    password = reader.environ.get("MQTT_PASSWORD", "")  # not stripped: spaces may belong to it
    password_file = reader.string("MQTT_PASSWORD_FILE")
    source = ""
    if password and password_file:
        reader.problems.append(located(reader.environ, "MQTT_PASSWORD", _(
            "MQTT_PASSWORD and MQTT_PASSWORD_FILE are both set: keep only one "
            "(the file is safer, since the settings file is read by more programs)"),
            "MQTT_PASSWORD_FILE"))
        return username, None, source
    if password_file:
        text = read_private_file(reader, "MQTT_PASSWORD_FILE", password_file)
        password, source = _first_line(reader, password_file, text), "MQTT_PASSWORD_FILE"
    elif password:
        source = "MQTT_PASSWORD"
    if password and not username:
        reader.problems.append(located(reader.environ, source, _(
            "{source} is set but MQTT_USERNAME is missing: MQTT sends a password only "
            "with a user name; set MQTT_USERNAME").format(source=source)))
    return username, password or None, source


def read_private_file(reader, name, path):
    """Return the text of a file that only its owner may read, or None (a problem recorded).

    A secret readable by group or others would leak to every local account, so such
    a file is rejected with the commands that fix it.
    """
    try:
        # utf-8-sig drops the byte order mark some Windows editors write, which would
        # otherwise become part of the password.
        with open(path, encoding="utf-8-sig") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            text = stream.read()
    except PermissionError as error:
        reader.invalid(name, path, _(
            "cannot read it ({error}): the forwarder runs as user {user}, which must own "
            "the file: run `chown {user}: {path} && chmod 600 {path}`").format(
                error=os_error_text(error), user=access.SERVICE_USER, path=path))
        return None
    except OSError as error:
        reader.invalid(name, path, _(
            "cannot read it ({error}): the file must exist and be readable by the "
            "service user").format(error=os_error_text(error)))
        return None
    except UnicodeDecodeError:
        reader.invalid(name, path, _("the file is not UTF-8 text"))
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        reader.invalid(name, path, _(
            "the file is readable by other users (mode {mode:o}): run "
            "`chown bessai: {path} && chmod 600 {path}`").format(
                mode=stat.S_IMODE(mode), path=path))
        return None
    return text


def _first_line(reader, path, text):
    if text is None:
        return None
    secret = text.splitlines()[0] if text else ""
    if not secret:
        reader.invalid("MQTT_PASSWORD_FILE", path, _(
            "the file is empty: write the password on its first line"))
        return None
    return secret


def _read_tls(reader):
    """Return an SSLContext for the TLS settings, None for plain TCP."""
    ca = reader.string("MQTT_TLS_CA")
    cert = reader.string("MQTT_TLS_CERT")
    key = reader.string("MQTT_TLS_KEY")
    if not (ca or cert or key):
        return None
    if bool(cert) != bool(key):
        reader.problems.append(located(reader.environ, "MQTT_TLS_CERT", _(
            "MQTT_TLS_CERT and MQTT_TLS_KEY go together: set both for a client "
            "certificate, or neither"), "MQTT_TLS_KEY"))
        return None
    try:
        # With a CA file, only its authorities are trusted: the system's CAs are loaded
        # only when no file is given.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
    except (OSError, ssl.SSLError) as error:
        reader.invalid("MQTT_TLS_CA", ca, _(
            "cannot load CA certificates from it ({error}): expected a readable "
            "PEM file with the certificate of the authority that signed the "
            "broker's certificate").format(error=_error_text(error)))
        return None
    if cert:
        if read_private_file(reader, "MQTT_TLS_KEY", key) is None:
            return None
        try:
            # Without a password callback, OpenSSL prompts for the passphrase of an
            # encrypted key on the terminal, and a run from a shell waits there.
            context.load_cert_chain(certfile=cert, keyfile=key, password=_no_key_passphrase)
        except (OSError, ssl.SSLError) as error:
            reader.invalid("MQTT_TLS_CERT", cert, _(
                "cannot load it with MQTT_TLS_KEY={key} ({error}): expected a readable "
                "PEM certificate and the unencrypted PEM key that belongs to it").format(
                    key=key, error=_error_text(error)))
            return None
    return context


def _no_key_passphrase():
    """Return an empty passphrase, so that loading an encrypted key fails at once."""
    return b""


def _error_text(error):
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)
    return os_error_text(error)


def require_usable_state_dir(settings, check_access=True):
    """Check that the checkpoint directory is a writable directory; raise ConfigError if not.

    With ``check_access`` False, whether this process's user may write to it is not
    checked, for a caller that runs as another user than the forwarder.
    """
    path = settings.state_dir
    _require_directory(path)
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        raise ConfigError(_(
            "FORWARD_STATE_DIR={path!r} is on a read-only file system: choose a directory "
            "on a writable one (the package uses /var/lib/bessai)").format(path=path))
    if check_access and not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(_state_dir_not_writable_text(path, settings.spool_dir))
    from bessai_edge.forward.checkpoint import FILE_NAME

    checkpoint = os.path.join(path, FILE_NAME)
    if os.path.lexists(checkpoint) and not os.path.isfile(checkpoint):
        raise ConfigError(_(
            "the checkpoint {path} is not a file: remove it (the forwarder then starts "
            "from the oldest record in the spool)").format(path=checkpoint))


def _state_dir_not_writable_text(path, spool_dir):
    """Return the message for a FORWARD_STATE_DIR that this process may not write to.

    The bessai user, or the owner of the spool directory that a root run switched to,
    is the user that should own the directory. Another user should run the forwarder
    as the bessai user instead.
    """
    user = access.user_name()
    if access.is_service_user(spool_dir):
        return _("FORWARD_STATE_DIR={path!r} is not writable by user {user}, which runs the "
                 "forwarder: run `chown {user}: {path}`").format(path=path, user=user)
    return _("FORWARD_STATE_DIR={path!r} is not writable by user {user}: give it to the "
             "bessai user (chown bessai: {path}) and run the forwarder as that user "
             "(sudo -u bessai bessai forward ...)").format(path=path, user=user)


def _require_directory(path):
    """Raise ConfigError unless the checkpoint directory ``path`` exists and is a directory."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(_(
            "FORWARD_STATE_DIR={path!r} does not exist: create it, owned by the bessai user "
            "(sudo install -d -m 0750 -o bessai -g bessai {path}), or set FORWARD_STATE_DIR "
            "to a directory that exists (the package uses /var/lib/bessai)").format(
                path=path)) from None
    except OSError as error:
        raise ConfigError(_(
            "FORWARD_STATE_DIR={path!r} cannot be opened ({error}): check the path and the "
            "permissions of its parent directories").format(
                path=path, error=os_error_text(error))) from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(_(
            "FORWARD_STATE_DIR={path!r} is not a directory: set FORWARD_STATE_DIR to a "
            "directory (the package uses /var/lib/bessai)").format(path=path))
