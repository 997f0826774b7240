"""Findings about the unit ids of a multi-unit profile's roles (main, vebus, battery...).

A Victron GX serves each part of the system (the system values, the VE.Bus
inverter/charger, the battery monitor) on a unit id of its own, which the settings
give per role: ``MODBUS_SLAVE_ID`` for the main role, ``MODBUS_UNIT_<ROLE>`` for the
others.
"""

from bessai_edge.diagnosis.model import ERROR, Finding, unit_id_hint
from bessai_edge.i18n import _, ngettext
from bessai_edge.profile.fields import MAIN_ROLE


def role_variable(role):
    """Return the single-device variable that sets the unit id of ``role``."""
    return "MODBUS_SLAVE_ID" if role == MAIN_ROLE else f"MODBUS_UNIT_{role.upper()}"


def role_labels_text(observation, roles):
    """Return the profile's names of ``roles`` (see Profile.role_label), comma-separated."""
    return ", ".join(observation.role_labels.get(role, role) for role in roles)


def role_units_text(observation, units):
    """Return the unit ids with their roles, and the variables that set them, as text."""
    labels = []
    variables = []
    for unit in units:
        roles = observation.unit_roles.get(unit, ())
        if not roles:
            labels.append(str(unit))
            continue
        labels.append(_("{unit} (role {roles})").format(
            unit=unit, roles=role_labels_text(observation, roles)))
        variables += [role_variable(role) for role in roles]
    return ", ".join(labels), ", ".join(variables) or "MODBUS_UNIT_<ROLE>"


def role_off_text(observation, units):
    """Return the advice to switch off the roles of ``units`` that a site may lack.

    The main role cannot be switched off, so it gets no advice. Returns "" when no
    other role is read from ``units``.
    """
    roles = [role for unit in units for role in observation.unit_roles.get(unit, ())
             if role != MAIN_ROLE]
    if not roles:
        return ""
    settings = ", ".join(f"{role_variable(role)}=off" for role in roles)
    return " " + ngettext(
        "If the site has no {roles} part, set {settings} instead, so that its points are "
        "not read.",
        "For each of the parts {roles} that the site does not have, set its variable to "
        "off instead, so that its points are not read: {settings}.", len(roles)
    ).format(roles=role_labels_text(observation, roles), settings=settings)


def units_not_found_elsewhere(observation, units):
    """Return ``units`` without those whose registers another unit id served when probed.

    The ``unit_serves_other_role`` finding names the fix for those.
    """
    found = {unit for others in observation.serving_units.values() for unit in others}
    return tuple(unit for unit in units if unit not in found)


def unit_exception_11_finding(observation, units):
    """Return the finding for role unit ids whose every reply was exception 11."""
    labels, variables = role_units_text(observation, units)
    return Finding(ERROR, "unit_exception_11", ngettext(
        "Unit id {units} answered every request with exception 11 (gateway target device "
        "failed to respond): no device answers to it at {endpoint}, while the other unit "
        "ids give data, so its points show a communication error; set {variables} to the "
        "unit id the device lists. Typical unit ids: {hint}.",
        "Unit ids {units} answered every request with exception 11 (gateway target device "
        "failed to respond): no device answers to them at {endpoint}, while the other unit "
        "ids give data, so their points show a communication error; set {variables} to the "
        "unit ids the devices list. Typical unit ids: {hint}.",
        len(units)
    ).format(units=labels, endpoint=observation.endpoint, variables=variables,
             hint=unit_id_hint(observation.profile)) + role_off_text(observation, units))


def silent_unit_finding(observation, units):
    """Return the finding for role unit ids that got no reply while the others gave data."""
    labels, variables = role_units_text(observation, units)
    return Finding(ERROR, "unit_timeout", ngettext(
        "Unit id {units} answered no request within {timeout:g} s, while the other unit ids "
        "give data: a Modbus TCP gateway may stay silent for a unit id that nothing serves, "
        "and every cycle then waits out the timeout. Set {variables} to the unit id the "
        "device lists. Typical unit ids: {hint}.",
        "Unit ids {units} answered no request within {timeout:g} s, while the other unit "
        "ids give data: a Modbus TCP gateway may stay silent for a unit id that nothing "
        "serves, and every cycle then waits out the timeouts. Set {variables} to the unit "
        "ids the devices list. Typical unit ids: {hint}.",
        len(units)
    ).format(units=labels, timeout=observation.request_timeout_s or 0, variables=variables,
             hint=unit_id_hint(observation.profile)) + role_off_text(observation, units))


def serving_unit_findings(observation, nothing_read):
    """Return one finding per unit id that serves another role's registers, not its own.

    A unit id copied from one part of the device, such as a Victron battery monitor's
    247, given as ``MODBUS_SLAVE_ID`` rejects the main registers with exception 2,
    while the battery role's own unit id gets exception 11 or no reply. With
    ``nothing_read`` the findings are marked ``no_data``, as the device gave no value.
    """
    findings = []
    for unit, others in sorted(observation.serving_units.items()):
        roles = [role for other in others for role in observation.unit_roles.get(other, ())]
        own_roles = observation.unit_roles.get(unit, ())
        message = _(
            "Unit id {unit} rejects the registers of role {own_roles} (exception 2) but "
            "serves those of role {roles}, which gave no value at unit id {others}: it is "
            "the unit id of the device's {roles} part. Set {settings}."
        ).format(unit=unit, own_roles=role_labels_text(observation, own_roles),
                 roles=role_labels_text(observation, roles),
                 others=", ".join(map(str, others)),
                 settings=", ".join(f"{role_variable(role)}={unit}" for role in roles))
        for role in own_roles:
            message += " " + _own_role_advice(observation, unit, role)
        findings.append(Finding(ERROR, "unit_serves_other_role", message,
                                no_data=nothing_read))
    return findings


def _own_role_advice(observation, unit, role):
    """Return what to set the unit id of ``role`` to, now that ``unit`` is another role's."""
    default = observation.profile_units.get(role)
    if default is not None and default != unit:
        return _(
            "Leave {variable} empty, so that role {role} uses the profile's unit id "
            "{default}, or set it to the unit id the device lists for that role."
        ).format(variable=role_variable(role), role=role_labels_text(observation, [role]),
                 default=default)
    return _("Set {variable} to the unit id the device lists for role {role}.").format(
        variable=role_variable(role), role=role_labels_text(observation, [role]))
