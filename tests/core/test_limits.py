"""LimitTable: hysteresis, debounce, bad quality, stale values and rejections."""

import math
from array import array

import pytest

from bessai_edge.core import (QUALITY_COMM_ERROR, QUALITY_INVALID, QUALITY_NOT_AVAILABLE,
                              QUALITY_OK, LimitSpec, LimitTable)
from bessai_edge.errors import CoreError


def run(table, readings):
    """Evaluate one value per cycle; a reading is a number or (number, quality)."""
    results = []
    for reading in readings:
        value, quality = reading if isinstance(reading, tuple) else (reading, QUALITY_OK)
        results.append(table.evaluate(array("d", [value]), bytearray([quality])))
    return results


def test_limit_hysteresis_raise_95_clear_94():
    """Hysteresis 1: raises at 95, holds at 94, clears below 94."""
    table = LimitTable([LimitSpec("soc", 0, high_warn=95.0, hysteresis=1.0)])
    results = run(table, [94.9, 95.0, 96.0, 94.5, 94.0, 93.99, 94.5, 95.0])
    assert results == [
        [], [("soc", "high_warn", True)], [], [], [], [("soc", "high_warn", False)], [],
        [("soc", "high_warn", True)],
    ]


def test_limit_low_hysteresis_mirrors_high():
    table = LimitTable([LimitSpec("soc", 0, low_warn=10.0, hysteresis=2.0)])
    results = run(table, [11.0, 10.0, 12.0, 12.01])
    assert results == [[], [("soc", "low_warn", True)], [], [("soc", "low_warn", False)]]


def test_limit_steady_alarm_reported_once():
    table = LimitTable([LimitSpec("temp", 0, high_trip=60.0)])
    results = run(table, [70.0] * 10)
    assert results[0] == [("temp", "high_trip", True)]
    assert all(result == [] for result in results[1:])
    assert table.active() == [("temp", "high_trip")]


def test_limit_debounce_three_cycles():
    table = LimitTable([LimitSpec("soc", 0, high_warn=95.0, hysteresis=1.0, debounce=3)])
    results = run(table, [96.0, 96.0, 90.0, 96.0, 96.0, 96.0, 90.0, 90.0, 90.0])
    assert results == [
        [], [], [], [], [], [("soc", "high_warn", True)], [], [],
        [("soc", "high_warn", False)],
    ]


def test_limit_debounce_zero_acts_at_once():
    table = LimitTable([LimitSpec("soc", 0, high_warn=95.0, debounce=0)])
    assert run(table, [96.0]) == [[("soc", "high_warn", True)]]


@pytest.mark.parametrize("bad_quality", [QUALITY_NOT_AVAILABLE, QUALITY_COMM_ERROR,
                                         QUALITY_INVALID])
def test_limit_bad_quality_holds_state(bad_quality):
    table = LimitTable([LimitSpec("soc", 0, high_warn=95.0, hysteresis=1.0)])
    results = run(table, [96.0, (math.nan, bad_quality), (0.0, bad_quality), (50.0, bad_quality)])
    assert results == [[("soc", "high_warn", True)], [], [], []]
    assert table.active() == [("soc", "high_warn")]
    assert run(table, [50.0]) == [[("soc", "high_warn", False)]]


def test_limit_bad_quality_does_not_raise():
    table = LimitTable([LimitSpec("soc", 0, high_warn=95.0)])
    assert run(table, [(99.0, QUALITY_INVALID)]) == [[]]
    assert table.active() == []


def test_limit_bad_quality_keeps_debounce_count():
    table = LimitTable([LimitSpec("soc", 0, high_warn=95.0, debounce=3)])
    results = run(table, [96.0, 96.0, (math.nan, QUALITY_COMM_ERROR), 96.0])
    assert results == [[], [], [], [("soc", "high_warn", True)]]


def test_limit_stale_after_cycles_without_good_value():
    table = LimitTable([LimitSpec("soc", 0, stale_cycles=3)])
    bad = (math.nan, QUALITY_COMM_ERROR)
    results = run(table, [50.0, bad, bad, bad, bad, 50.0, bad])
    assert results == [[], [], [], [("soc", "stale", True)], [], [("soc", "stale", False)], []]


# (readings as (periods since the previous cycle, good?), cycle of the raise or None)
STALE_PERIOD_CASES = [
    ([(1, True)] + [(1, False)] * 3, 3),                 # on time: the 3rd bad cycle
    ([(1, True), (2, False), (1, False)], 2),            # overrun: 3 periods after 2 cycles
    ([(1, True), (5, False)], 1),                        # one long overrun reaches it at once
    ([(1, True), (2, False), (3, True), (2, False)], None),  # a good value restarts the count
    ([(1, False), (1, False), (4, True), (1, False), (2, False)], 4),
]


@pytest.mark.parametrize(("readings", "raised_at"), STALE_PERIOD_CASES)
def test_limit_stale_counts_periods_not_cycles(readings, raised_at):
    table = LimitTable([LimitSpec("soc", 0, stale_cycles=3)])
    raises = []
    for number, (periods, good) in enumerate(readings):
        value, quality = (50.0, QUALITY_OK) if good else (math.nan, QUALITY_COMM_ERROR)
        if table.evaluate(array("d", [value]), bytearray([quality]), periods=periods):
            raises.append(number)
    assert raises == ([] if raised_at is None else [raised_at])


def test_limit_stale_clear_skips_debounce():
    table = LimitTable([LimitSpec("soc", 0, high_warn=95.0, debounce=3, stale_cycles=2)])
    bad = array("d", [math.nan]), bytearray([QUALITY_COMM_ERROR])
    assert table.evaluate(*bad, periods=4) == [("soc", "stale", True)]
    assert table.evaluate(array("d", [50.0]), bytearray([QUALITY_OK])) == [
        ("soc", "stale", False)]


def test_limit_debounce_ignores_periods():
    table = LimitTable([LimitSpec("soc", 0, high_warn=95.0, debounce=2)])
    values, quality = array("d", [96.0]), bytearray([QUALITY_OK])
    assert table.evaluate(values, quality, periods=5) == []
    assert table.evaluate(values, quality, periods=5) == [("soc", "high_warn", True)]


@pytest.mark.parametrize("periods", [0, -1, 1.5, "2"])
def test_limit_evaluate_rejects_bad_periods(periods):
    table = LimitTable([LimitSpec("soc", 0, stale_cycles=2)])
    with pytest.raises(CoreError, match=f"periods {periods!r}.*1 or more"):
        table.evaluate(array("d", [1.0]), bytearray(1), periods=periods)


def test_limit_stale_counts_not_available():
    table = LimitTable([LimitSpec("soc", 0, stale_cycles=2)])
    results = run(table, [(math.nan, QUALITY_NOT_AVAILABLE)] * 2)
    assert results == [[], [("soc", "stale", True)]]
    assert table.active() == [("soc", "stale")]


def test_limit_warn_and_trip_raise_together():
    table = LimitTable([LimitSpec("temp", 0, high_warn=45.0, high_trip=55.0, hysteresis=2.0)])
    results = run(table, [60.0, 54.0, 52.0, 40.0])
    assert results == [
        [("temp", "high_warn", True), ("temp", "high_trip", True)],
        [], [("temp", "high_trip", False)], [("temp", "high_warn", False)],
    ]


def test_limit_table_of_many_limits_over_shared_values():
    limits = [LimitSpec("soc_low", 0, low_trip=5.0, low_warn=10.0),
              LimitSpec("soc_high", 0, high_warn=95.0),
              LimitSpec("temp", 1, high_trip=55.0)]
    table = LimitTable(limits)
    values = array("d", [7.0, 20.0])
    quality = bytearray(2)
    assert table.evaluate(values, quality) == [("soc_low", "low_warn", True)]
    values[0] = 4.0
    values[1] = 60.0
    assert table.evaluate(values, quality) == [("soc_low", "low_trip", True),
                                               ("temp", "high_trip", True)]
    assert table.active() == [("soc_low", "low_trip"), ("soc_low", "low_warn"),
                              ("temp", "high_trip")]


@pytest.mark.parametrize("spec", [
    LimitSpec("soc", 0, low_warn=20.0, high_warn=10.0),
    LimitSpec("soc", 0, low_trip=10.0, low_warn=5.0),
    LimitSpec("soc", 0, high_warn=95.0, high_trip=90.0),
    LimitSpec("soc", 0, high_warn=95.0, hysteresis=-1.0),
    LimitSpec("soc", 0, high_warn=95.0, hysteresis=math.inf),
    LimitSpec("soc", 0, high_warn=math.inf),
])
def test_limit_table_rejects_bad_levels(spec):
    with pytest.raises(CoreError, match="limit 'soc'") as raised:
        LimitTable([spec])
    assert "low_trip <= low_warn <= high_warn <= high_trip" in str(raised.value)


def test_limit_table_rejects_negative_debounce():
    with pytest.raises(CoreError, match="limit 'soc'.*debounce -1"):
        LimitTable([LimitSpec("soc", 0, high_warn=95.0, debounce=-1)])


def test_limit_evaluate_rejects_values_too_short():
    table = LimitTable([LimitSpec("temp", 3, high_trip=55.0)])
    with pytest.raises(CoreError, match="limits up to index 3"):
        table.evaluate(array("d", [1.0, 2.0]), bytearray(2))


def test_limit_table_empty_returns_nothing():
    table = LimitTable([])
    assert table.evaluate(array("d"), bytearray()) == []
    assert table.active() == []


def test_limit_restore_holds_alarm_without_transition():
    """A restored alarm whose condition remains is neither raised nor cleared again."""
    table = LimitTable([LimitSpec("soc", 0, low_warn=10.0, hysteresis=1.0, debounce=3)])
    assert table.restore([("soc", "low_warn")]) == [("soc", "low_warn")]
    assert table.active() == [("soc", "low_warn")]
    assert run(table, [8.0] * 5) == [[]] * 5
    assert table.active() == [("soc", "low_warn")]


def test_limit_restore_clears_after_debounce():
    table = LimitTable([LimitSpec("soc", 0, low_warn=10.0, hysteresis=1.0, debounce=3)])
    table.restore([("soc", "low_warn")])
    assert run(table, [50.0, 50.0, 50.0]) == [[], [], [("soc", "low_warn", False)]]
    assert table.active() == []


def test_limit_restore_skips_unknown_and_disabled():
    table = LimitTable([LimitSpec("soc", 0, low_warn=10.0, stale_cycles=0),
                        LimitSpec("temp", 1, high_trip=60.0, stale_cycles=3)])
    restored = table.restore([("soc", "high_trip"), ("soc", "stale"), ("grid", "low_warn"),
                              ("soc", "low_warn"), ("temp", "stale")])
    assert restored == [("soc", "low_warn"), ("temp", "stale")]
    assert table.active() == restored


def test_limit_restore_stale_clears_on_good_value():
    table = LimitTable([LimitSpec("temp", 0, high_trip=60.0, stale_cycles=3)])
    table.restore([("temp", "stale")])
    assert run(table, [(math.nan, QUALITY_COMM_ERROR), 30.0]) == [[], [("temp", "stale", False)]]
