"""Find the unit id that serves the registers of a role that gave no data.

``bessai check`` uses this when a multi-unit profile's roles gave no data. A unit id
that rejected every request of its own roles with exception 2 is a live part of the
device, and may be the part that another role's registers belong to. A Victron
battery monitor's unit id given as ``MODBUS_SLAVE_ID`` is such a case: it rejects the
system registers and serves the battery's, while the battery role's own unit id gets
exception 11.
"""

import logging

from bessai_edge.errors import DeviceException, LinkError
from bessai_edge.poller import NO_DATA_WORD

log = logging.getLogger(__name__)


def probe_role_units(read, requests, outcomes, units_with_data, unit_roles):
    """Return host unit id -> the unit ids of other roles whose registers it serves.

    ``requests`` and ``outcomes`` are the first read pass, ``units_with_data`` the unit
    ids that returned registers in any pass, and ``unit_roles`` maps each role's unit id
    to its role names. The hosts are the role unit ids that rejected every request
    with exception 2. The requests of the other role unit ids that gave no data are
    sent to them.
    """
    kinds = {}
    for request, outcome in zip(requests, outcomes):
        kinds.setdefault(request.unit_id, set()).add(outcome)
    without_data = [unit for unit in sorted(kinds)
                    if unit in unit_roles and unit not in units_with_data]
    hosts = [unit for unit in without_data if kinds[unit] == {"exception_2"}]
    if not hosts or len(without_data) < 2:
        return {}
    return find_serving_units(read, requests, hosts, without_data)


def find_serving_units(read, requests, hosts, without_data):
    """Send the requests of each unit id in ``without_data`` to each unit id in ``hosts``.

    ``read(unit_id, function, address, count)`` is the link's read. A host serves the
    registers of a unit id without data when one of its requests returns registers
    that are not all 0xFFFF. Returns host -> the unit ids it serves, each found at one
    host only. Stops at the first failure that is not a Modbus exception, such as a
    timeout, so that a link in trouble costs one failed request at most.
    """
    serving = {}
    found = set()
    for host in hosts:
        for unit in without_data:
            if unit == host or unit in found:
                continue
            unit_requests = [request for request in requests if request.unit_id == unit]
            try:
                served = _serves(read, host, unit_requests)
            except LinkError as error:
                log.info("probe of unit id %d's registers at unit id %d stopped: %s", unit,
                         host, error)
                return _as_tuples(serving)
            log.info("probe: unit id %d %s the registers of unit id %d", host,
                     "serves" if served else "does not serve", unit)
            if served:
                serving.setdefault(host, []).append(unit)
                found.add(unit)
    return _as_tuples(serving)


def _serves(read, host, requests):
    """Return True when one of ``requests``, sent to unit id ``host``, returns data."""
    for request in requests:
        try:
            words = read(host, request.function, request.address, request.count)
        except DeviceException:
            continue
        if any(word != NO_DATA_WORD for word in words):
            return True
    return False


def _as_tuples(serving):
    return {host: tuple(units) for host, units in serving.items()}
