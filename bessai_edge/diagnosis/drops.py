"""The finding for a device that closes the connection at some requests and serves the rest.

Some devices hang up at a request for registers they cannot serve instead of replying
with an exception. ``bessai check`` then reconnects and reads the other requests, and
``bessai run`` reads such a request last in each cycle.
"""

from bessai_edge.diagnosis.model import ERROR, WARNING, Finding
from bessai_edge.i18n import _, ngettext


def dropped_requests_finding(observation):
    """Return the finding that names the requests at which the device closed the connection."""
    dropped = observation.dropped_requests
    requests = ", ".join(
        _("{first}..{last} (unit id {unit}, function {function})").format(
            first=address, last=address + count - 1, unit=unit, function=function)
        for unit, function, address, count in dropped)
    lost = observation.main_fields_failed
    if lost:
        # Leaving those points out would lose the values the gateway is there for.
        return Finding(ERROR, "connection_dropped_at_request", ngettext(
            "The device closes the connection instead of replying to the request for "
            "registers {requests}, which carries the main values {fields}; the other "
            "requests were read. Check that DRIVER_PROFILE_PATH fits this model and the "
            "device's firmware and Modbus settings; compare the addresses with the "
            "manufacturer's register list.",
            "The device closes the connection instead of replying to the requests for "
            "registers {requests}, which carry the main values {fields}; the other requests "
            "were read. Check that DRIVER_PROFILE_PATH fits this model and the device's "
            "firmware and Modbus settings; compare the addresses with the manufacturer's "
            "register list.", len(dropped)
        ).format(requests=requests, fields=", ".join(lost)))
    return Finding(WARNING, "connection_dropped_at_request", ngettext(
        "The device closes the connection instead of replying to the request for registers "
        "{requests}; the other requests were read. Check that the device serves those "
        "registers, or leave their points out of a copy of the profile (copy it to "
        "/etc/bessai/profiles/ and point DRIVER_PROFILE_PATH at the copy).",
        "The device closes the connection instead of replying to the requests for registers "
        "{requests}; the other requests were read. Check that the device serves those "
        "registers, or leave their points out of a copy of the profile (copy it to "
        "/etc/bessai/profiles/ and point DRIVER_PROFILE_PATH at the copy).", len(dropped)
    ).format(requests=requests))


def without_dropped(kinds, observation):
    """Return the failure ``kinds`` without one ``disconnected`` per dropped request."""
    kinds = list(kinds)
    for _request in observation.dropped_requests:
        if "disconnected" in kinds:
            kinds.remove("disconnected")
    return kinds
