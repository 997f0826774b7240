"""``bessai profiles``: list the bundled device profiles; ``show NAME`` prints a read plan."""

import argparse
import json
import sys

from bessai_edge.i18n import _, ngettext
from bessai_edge.profile.fields import MAX_UNIT_ID

HELP = "list the bundled device profiles, or show one profile's read plan (profiles show NAME)"


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar=_("ACTION"))
    actions.add_parser("list", help=_("list the bundled profiles (the default)"))
    show = actions.add_parser("show", help=_("show a profile's device settings and read plan"))
    show.add_argument("name", metavar=_("NAME"),
                      help=_("bundled profile name (huawei_sun2000) or path of a profile file"))
    show.add_argument("--unit-id", type=_unit_id, default=None, metavar="ID",
                      help=_("main unit id instead of the profile's (like MODBUS_SLAVE_ID)"))
    show.add_argument("--unit", action="append", default=[], metavar=_("ROLE=ID"),
                      help=_("unit id of a unit role, e.g. vebus=246 (like MODBUS_UNIT_VEBUS)"))
    show.add_argument("--json", action="store_true",
                      help=_("print the plan as one JSON object"))


def main(args):
    from bessai_edge.profile import bundled_profiles, load_profile

    if getattr(args, "action", None) != "show":
        return _list(bundled_profiles, load_profile)
    unit_ids = _parse_units(args.unit)
    if unit_ids is None:
        return 2
    profile = load_profile(args.name)
    plan, example = _plan(profile, args.unit_id, unit_ids)
    if args.json:
        print(json.dumps(_plan_json(profile, plan, example), indent=2))
    else:
        _print_plan(profile, plan, example)
    return 0


def _list(bundled_profiles, load_profile):
    names = bundled_profiles()
    if not names:
        print(_("no bundled profiles found"), file=sys.stderr)
        return 1
    rows = []
    for name in names:
        profile = load_profile(name)
        plan, _example = _plan(profile, None, None)  # SunSpec models expand as in show
        rows.append((name, str(profile.unit_id), str(len(plan.points)), profile.title))
    header = (_("NAME"), _("UNIT ID"), _("POINTS"), _("DEVICE"))
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(3)]
    for row in [header] + rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}")
    return 0


def _unit_id(text):
    """argparse type of --unit-id: a unit id the settings accept."""
    value = int(text) if text.strip().isdigit() else -1
    if not 0 <= value <= MAX_UNIT_ID:
        raise argparse.ArgumentTypeError(_("expected a unit id from 0 to {maximum}, got "
                                           "{value!r}").format(maximum=MAX_UNIT_ID, value=text))
    return value


def _parse_units(texts):
    unit_ids = {}
    for text in texts:
        role, sep, value = text.partition("=")
        if (not sep or not value.strip().isdigit() or not role.strip()
                or int(value) > MAX_UNIT_ID):
            print(_("bessai profiles show: --unit {text!r} is invalid: expected ROLE=ID, "
                    "e.g. vebus=246").format(text=text), file=sys.stderr)
            return None
        unit_ids[role.strip().lower()] = int(value)
    return unit_ids


def _plan(profile, unit_id, unit_ids):
    """Return (plan, example): SunSpec profiles are planned over an example model map."""
    from bessai_edge.profile import sunspec

    if not profile.sunspec:
        return profile.plan(unit_id=unit_id, unit_ids=unit_ids), False
    maps = {}
    units = profile.resolve_units(unit_id, unit_ids)
    for unit in profile.sunspec_units(unit_id, unit_ids):
        models = [1]
        for point in profile.points:
            if point.is_sunspec and profile.point_unit(point, units) == unit:
                if point.model[0] not in models:
                    models.append(point.model[0])
        maps[unit] = sunspec.example_map(models, unit, repeats={160: 4})
    return profile.plan(unit_id=unit_id, unit_ids=unit_ids, model_map=maps), True


def _print_plan(profile, plan, example):
    print(f"{profile.name}: {profile.title}")
    print(_("file: {path}").format(path=profile.path))
    for document in profile.documents:
        print(_("document: {citation}").format(citation=document.citation()))
    print(_("unit id {unit}, port {port}, at most {registers} registers per request, gaps up "
            "to {gap} registers bridged").format(unit=plan.units["main"], port=profile.port,
                                                 registers=profile.max_registers,
                                                 gap=profile.max_gap))
    print(_("quiet time after connect {quiet} s, {interval} s between requests, timeout "
            "{timeout} s").format(quiet=profile.quiet_after_connect_s,
                                  interval=profile.min_request_interval_s,
                                  timeout=profile.request_timeout_s))
    for role in profile.unit_roles.values():
        print(_("unit role {role}: unit id {unit} ({description})").format(
            role=role.name, unit=plan.units[role.name], description=role.description))

    if example:
        print(_("SunSpec profile: planned over an example model map; the device's own map "
                "comes from discovery"))

    summary = plan.summary()
    print(_("{requests} requests per cycle, {registers} registers, {unused} of them unused, "
            "{points} points").format(requests=summary["requests"],
                                      registers=summary["registers"],
                                      unused=summary["unused_registers"],
                                      points=summary["points"]))
    for request in plan.requests:
        names = [point.name for point in plan.points
                 if point.readable and point.block == request.block]
        print(ngettext("  unit {unit} {function} {first}-{last} ({count} register, {unused} "
                       "unused): {points}",
                       "  unit {unit} {function} {first}-{last} ({count} registers, {unused} "
                       "unused): {points}", request.count).format(unit=request.unit_id,
                                   function=_function_name(request.function),
                                   first=request.address, last=request.address + request.count - 1,
                                   count=request.count, unused=plan.unused_registers(request),
                                   points=", ".join(names)))

    not_read = [point for point in plan.points if not point.readable]
    if not_read:
        print(_("points not read: {points}").format(
            points=", ".join(f"{point.name} ({point.status})" for point in not_read)))


def _plan_json(profile, plan, example):
    summary = plan.summary()
    return {
        "profile": profile.name,
        "example_model_map": example,
        "request_count": summary["requests"],
        "registers": summary["registers"],
        "unused_registers": summary["unused_registers"],
        "requests": [
            {"unit_id": request.unit_id, "function": _function_name(request.function),
             "address": request.address, "count": request.count,
             "unused_registers": plan.unused_registers(request),
             "points": [point.name for point in plan.points
                        if point.readable and point.block == request.block]}
            for request in plan.requests],
        "points": [{**point.as_dict(), "status": point.status} for point in plan.points],
        "fields": sorted(plan.fields),
    }


def _function_name(code):
    from bessai_edge.profile.fields import FUNCTION_NAMES

    return FUNCTION_NAMES.get(code, f"fc{code}")
