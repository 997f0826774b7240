"""Read planning as pure functions, tested with tables of cases."""

import pytest

from bessai_edge.profile import planner


def _atoms(*ranges):
    return [(start, end, (number,)) for number, (start, end) in enumerate(ranges)]


# (case id, atom ranges, max registers, max gap, holes, barriers, expected request ranges)
GROUP_CASES = [
    ("adjacent_points_one_request", [(0, 2), (2, 3), (3, 5)], 125, 0, (), (), [(0, 5)]),
    ("gap_within_limit_bridged", [(0, 2), (6, 8)], 125, 4, (), (), [(0, 8)]),
    ("gap_above_limit_split", [(0, 2), (7, 8)], 125, 4, (), (), [(0, 2), (7, 8)]),
    ("zero_gap_limit_splits_any_gap", [(0, 1), (2, 3)], 125, 0, (), (), [(0, 1), (2, 3)]),
    ("max_registers_respected", [(0, 60), (60, 120), (120, 130)], 125, 0, (), (),
     [(0, 120), (120, 130)]),
    ("huawei_limit_64", [(0, 40), (40, 64), (64, 70)], 64, 0, (), (), [(0, 64), (64, 70)]),
    ("exactly_max_fits", [(0, 100), (100, 125)], 125, 0, (), (), [(0, 125)]),
    ("hole_in_gap_never_read", [(0, 2), (4, 6)], 125, 10, [(2, 3)], (), [(0, 2), (4, 6)]),
    ("hole_elsewhere_ignored", [(0, 2), (4, 6)], 125, 10, [(50, 60)], (), [(0, 6)]),
    ("barrier_splits_touching_atoms", [(0, 2), (2, 4)], 125, 10, (), [2], [(0, 2), (2, 4)]),
    ("overlapping_atoms_share", [(0, 10), (5, 8), (9, 12)], 125, 0, (), (), [(0, 12)]),
    ("unsorted_input", [(10, 12), (0, 2)], 125, 10, (), (), [(0, 12)]),
    ("single_atom", [(40000, 40002)], 125, 0, (), (), [(40000, 40002)]),
    ("no_atoms", [], 125, 0, (), (), []),
]


@pytest.mark.parametrize("case_id,ranges,max_registers,max_gap,holes,barriers,expected",
                         GROUP_CASES, ids=[case[0] for case in GROUP_CASES])
def test_group_atoms(case_id, ranges, max_registers, max_gap, holes, barriers, expected):
    requests = planner.group_atoms(_atoms(*ranges), max_registers, max_gap, holes, barriers)
    assert [(start, end) for start, end, _ in requests] == expected
    covered = sorted(index for _, _, members in requests for index in members)
    assert covered == list(range(len(ranges)))
    for start, end, _ in requests:
        assert end - start <= max_registers


# (case id, spans, scale-factor links (value, sf), max registers, atoms, values apart)
ATOM_CASES = [
    ("independent_points", [(0, 1), (5, 7)], [], 125, [(0, 1, (0,)), (5, 7, (1,))], []),
    ("value_joins_its_scale_factor", [(0, 1), (1, 2), (9, 10)], [(0, 1)], 125,
     [(0, 2, (0, 1)), (9, 10, (2,))], []),
    ("shared_scale_factor_one_atom", [(0, 1), (1, 2), (2, 3), (3, 4)], [(0, 3), (1, 3), (2, 3)],
     125, [(0, 4, (0, 1, 2, 3))], []),
    ("scale_factor_after_values", [(10, 11), (30, 31)], [(0, 1)], 125, [(10, 31, (0, 1))], []),
    ("overlapping_stars_merge", [(0, 1), (1, 2), (5, 6), (9, 10)], [(2, 0), (3, 1)], 125,
     [(0, 10, (0, 1, 2, 3))], []),
    ("value_out_of_reach_read_apart", [(0, 1), (10, 11), (200, 201)], [(1, 0), (2, 0)], 125,
     [(0, 11, (0, 1)), (200, 201, (2,))], [2]),
]


@pytest.mark.parametrize("case_id,spans,links,max_registers,atoms,apart", ATOM_CASES,
                         ids=[case[0] for case in ATOM_CASES])
def test_build_atoms(case_id, spans, links, max_registers, atoms, apart):
    built, values_apart = planner.build_atoms(spans, links, max_registers)
    assert built == atoms
    assert values_apart == apart


# (case id, spans, max registers, max gap, holes, lower bound)
BOUND_CASES = [
    ("one_cluster_fits", [(0, 10), (12, 20)], 125, 5, (), 1),
    ("gap_too_wide_two_clusters", [(0, 10), (30, 40)], 125, 5, (), 2),
    ("hole_separates", [(0, 10), (12, 20)], 125, 5, [(10, 11)], 2),
    ("useful_registers_need_two", [(0, 100), (100, 200)], 125, 0, (), 2),
    ("overlap_counted_once", [(0, 100), (50, 125)], 125, 0, (), 1),
    ("nothing_to_read", [], 125, 0, (), 0),
]


@pytest.mark.parametrize("case_id,spans,max_registers,max_gap,holes,expected", BOUND_CASES,
                         ids=[case[0] for case in BOUND_CASES])
def test_lower_bound(case_id, spans, max_registers, max_gap, holes, expected):
    assert planner.lower_bound(spans, max_registers, max_gap, holes) == expected


@pytest.mark.parametrize("case_id,spans,max_registers,max_gap,holes,expected", BOUND_CASES,
                         ids=[case[0] for case in BOUND_CASES])
def test_grouping_meets_lower_bound(case_id, spans, max_registers, max_gap, holes, expected):
    atoms = _atoms(*spans)
    assert len(planner.group_atoms(atoms, max_registers, max_gap, holes)) >= expected


SPLIT_CASES = [
    ("two_atoms_with_gap", [(0, 2), (5, 6)], [(0, 2)], [(5, 6)], (2, 5)),
    ("touching_atoms_no_gap", [(0, 2), (2, 4)], [(0, 2)], [(2, 4)], None),
    ("odd_count_right_heavier", [(0, 1), (3, 4), (6, 7)], [(0, 1)], [(3, 4), (6, 7)], (1, 3)),
    ("overlapping_atoms", [(0, 10), (5, 12)], [(0, 10)], [(5, 12)], None),
]


@pytest.mark.parametrize("case_id,ranges,left,right,gap", SPLIT_CASES,
                         ids=[case[0] for case in SPLIT_CASES])
def test_split_atoms(case_id, ranges, left, right, gap):
    assert planner.split_atoms(ranges) == (left, right, gap)


def test_split_atoms_needs_two():
    with pytest.raises(ValueError):
        planner.split_atoms([(0, 1)])


MERGE_CASES = [
    ("disjoint_kept", [(5, 6), (0, 2)], [(0, 2), (5, 6)]),
    ("touching_joined", [(0, 2), (2, 4)], [(0, 4)]),
    ("nested_absorbed", [(0, 10), (2, 3)], [(0, 10)]),
]


@pytest.mark.parametrize("case_id,ranges,expected", MERGE_CASES,
                         ids=[case[0] for case in MERGE_CASES])
def test_merge_ranges(case_id, ranges, expected):
    assert planner.merge_ranges(ranges) == expected


@pytest.mark.parametrize("case_id,ranges,expected", [
    ("gaps_listed", [(0, 2), (5, 6), (6, 8), (10, 11)], [(2, 5), (8, 10)]),
    ("no_gaps", [(0, 2), (2, 4)], []),
], ids=["gaps_listed", "no_gaps"])
def test_gaps_between(case_id, ranges, expected):
    assert planner.gaps_between(ranges) == expected
