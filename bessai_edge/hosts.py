"""Validation of host settings (INVERTER_IP, DEVICE_<NAME>_IP, MQTT_BROKER_HOST).

A technician often copies an address from a browser or a manual, with ``http://``, a
path, a port or IPv6 brackets around it. ``host_problem`` names the part to remove and
shows the address to write instead.
"""

import ipaddress
import re
import typing

from bessai_edge.i18n import _

_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class WrittenHost(typing.NamedTuple):
    """The parts of a host setting written as a URL or as an endpoint."""

    scheme: str      # "http://", or empty
    host: str        # without brackets
    bracketed: bool  # the host was written inside [ ]
    port: str        # the text after the host's ':', or empty
    path: str        # "/..." after the host and port, or empty


def is_valid_host(host):
    """Return True for an IPv4 or IPv6 address or a DNS host name (RFC 1123 labels)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()


def split_url(text):
    """Return ``(scheme, rest, path)`` of ``text``: ``http://`` and ``/...`` split off.

    ``split_url("http://10.0.0.1:8000/health")`` returns
    ``("http://", "10.0.0.1:8000", "/health")``. Missing parts are empty strings.
    """
    match = _SCHEME.match(text)
    scheme = match.group() if match else ""
    rest, slash, path = text[len(scheme):].partition("/")
    return scheme, rest, slash + path


def parse_written_host(text):
    """Return the ``WrittenHost`` parts of ``text``, which need not be a valid host."""
    scheme, authority, path = split_url(text)
    if authority.startswith("[") and "]" in authority:
        host, _bracket, after = authority[1:].partition("]")
        port = after[1:] if after.startswith(":") else ""
        return WrittenHost(scheme, host, True, port, path)
    if authority.count(":") == 1:
        host, _colon, port = authority.partition(":")
        return WrittenHost(scheme, host, False, port, path)
    return WrittenHost(scheme, authority, False, "", path)


def host_problem(text, port_name):
    """Return the problem of a host setting set to ``text``, or None when ``text`` is valid.

    The text is what follows "is invalid:" in the settings error. ``port_name`` is the
    setting of the port (INVERTER_PORT, MQTT_PORT), named when ``text`` contains a port.
    """
    if is_valid_host(text):
        return None
    expected = _("expected an IPv4 or IPv6 address or a host name")
    written = parse_written_host(text)
    fix = _removal_hint(written)
    if fix is None:
        if written.port and not written.bracketed:
            return _("expected an IPv4 or IPv6 address or a host name, without a port (set "
                     "the port in {port_name})").format(port_name=port_name)
        return expected
    if written.port and is_valid_host(written.host):
        fix += _(", and set the port in {port_name}").format(port_name=port_name)
    return f"{expected}; {fix}"


def _removal_hint(written):
    """Return the hint for a URL, a path or brackets, or None when ``written`` has none."""
    valid = is_valid_host(written.host)
    if written.scheme and not valid:
        return _("write the address without {part}").format(part=written.scheme)
    if not valid:
        return None
    if written.scheme or written.path:
        return address_fix_text(written.scheme or written.path, written.host)
    if written.bracketed:
        return _("write the address without brackets, as {host}").format(host=written.host)
    return None


def address_fix_text(part, address):
    """Return the hint to write ``address`` without ``part`` (a scheme or a path)."""
    return _("write the address without {part}, as {address}").format(
        part=part, address=address)
