"""Exception tree of bessai-edge.

Each class also inherits the built-in exception that fits it, so callers that know
nothing of bessai-edge can still catch ``ValueError`` or ``OSError``.
"""

EX_CONFIG = 78  # sysexits.h: configuration error; systemd does not restart on it
# sysexits.h EX_UNAVAILABLE, for a service switched off in its settings: `bessai forward`
# with MQTT_ENABLED false. Its unit counts it as success and does not restart on it.
EX_UNAVAILABLE = 69


class BessaiError(Exception):
    """Base class of every error raised by bessai-edge."""


class ConfigError(BessaiError, ValueError):
    """Invalid settings. ``problems`` contains one line per invalid variable."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ProfileError(BessaiError, ValueError):
    """Invalid device profile: the message names file, point, field, value and the fix."""


class CoreError(BessaiError, RuntimeError):
    """The compiled core rejected a table or a call."""


class SpoolError(BessaiError, OSError):
    """The spool directory cannot be used."""


class LinkError(BessaiError, OSError):
    """A Modbus request failed. ``kind`` is the counter name of the failure.

    ``dropped_after_request`` is True when the device closed or reset the connection
    while the gateway waited for the reply to a request it had sent.
    """

    kind = "link"
    dropped_after_request = False


class ConnectionRefused(LinkError):
    kind = "refused"


class HostUnreachable(LinkError):
    """The host name does not resolve or no route leads to it."""

    kind = "unreachable"


class LinkTimeout(LinkError):
    kind = "timeout"
    partial = False  # True when part of a reply had arrived


class ConnectionLost(LinkError):
    kind = "disconnected"


class ShortReply(LinkError):
    kind = "short_reply"


class MismatchedReply(LinkError):
    kind = "mismatched_reply"


class DeviceException(LinkError):
    """The device replied with a Modbus exception response."""

    def __init__(self, code, message=""):
        self.code = code
        self.kind = f"exception_{code}"
        super().__init__(message or f"device returned Modbus exception code {code}")
