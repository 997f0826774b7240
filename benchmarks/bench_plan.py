"""Requests per cycle of each bundled profile's read plan, against two baselines.

The baselines, computed in the same run from the same resolved points:

- one request per point, what a gateway without read planning sends;
- the lower bound. Per unit id and function, the points split into clusters that no
  request may join (a gap wider than ``max_gap`` or a hole lies between them). Each
  cluster needs at least its useful registers divided by ``max_registers``, rounded up.

SunSpec profiles are planned over an example model map (models laid out one after the
other, MPPT model 160 with four modules), since their real map comes from discovery.
Run with ``python -m benchmarks plan``.
"""

import json
import sys

from bessai_edge.profile import bundled_profiles, load_profile, planner, sunspec

COMMAND = "python -m benchmarks plan"
EXAMPLE_MODELS = (1, 103, 160, 124, 203)


def plan_for(profile):
    """Return the plan of a profile; SunSpec profiles get an example model map."""
    maps = {unit: sunspec.example_map(EXAMPLE_MODELS, unit, repeats={160: 4})
            for unit in profile.sunspec_units()}
    return profile.plan(model_map=maps or None)


def figures(profile):
    """Return the figures of one profile as a dict."""
    plan = plan_for(profile)
    readable = [point for point in plan.points if point.readable]
    groups = {}
    for point in readable:
        groups.setdefault((point.unit_id, point.function), []).append(
            (point.address, point.address + point.length))
    bound = 0
    for (unit, function), spans in groups.items():
        holes = plan.holes_for(unit, function)
        bound += planner.lower_bound(spans, profile.max_registers, profile.max_gap, holes)
    per_point = len({(point.unit_id, point.function, point.address, point.length)
                     for point in readable})
    summary = plan.summary()
    return {
        "benchmark": "plan",
        "profile": profile.name,
        "points": len(readable),
        "requests_plan": summary["requests"],
        "requests_one_per_point": per_point,
        "requests_lower_bound": bound,
        "ratio_plan_to_one_per_point": round(summary["requests"] / per_point, 3),
        "ratio_plan_to_lower_bound": round(summary["requests"] / bound, 3) if bound else None,
        "registers_read": summary["registers"],
        "registers_unused": summary["unused_registers"],
        "example_model_map": profile.sunspec,
        "command": COMMAND,
    }


def main(argv):
    for name in bundled_profiles():
        print(json.dumps(figures(load_profile(name))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
