"""InflightWindow: acknowledgements in any order, the unbroken head run, capacity."""

import pytest

from bessai_edge.forward.window import InflightWindow


def window_with(records, capacity=10):
    """A window holding ``records``: (seq, mids) pairs at positions (1, seq * 100)."""
    window = InflightWindow(capacity)
    for seq, mids in records:
        window.add((1, seq * 100), seq, mids)
    return window


# (published records, acknowledged mids in order, expected take_acknowledged())
TAKE_CASES = [
    pytest.param([(1, [1]), (2, [2])], [], None, id="nothing-acknowledged"),
    pytest.param([(1, [1]), (2, [2])], [1], (1, (1, 100), 1, None), id="head-only"),
    pytest.param([(1, [1]), (2, [2])], [2], None, id="second-only-holds-back"),
    pytest.param([(1, [1]), (2, [2]), (3, [3])], [3, 1], (1, (1, 100), 1, None), id="gap-at-2"),
    pytest.param([(1, [1]), (2, [2]), (3, [3])], [3, 2, 1], (3, (1, 300), 3, None), id="reverse-order"),
    pytest.param([(1, [1, 2]), (2, [3])], [1, 3], None, id="alarm-message-pending"),
    pytest.param([(1, [1, 2]), (2, [3])], [2, 1, 3], (2, (1, 200), 2, None), id="both-messages-acked"),
    # A skipped line needs no acknowledgement, and is not counted as published.
    pytest.param([(1, []), (2, [5])], [], (0, (1, 100), 1, None), id="skipped-line-needs-no-ack"),
    pytest.param([(1, [7]), (2, [])], [7], (1, (1, 200), 2, None), id="skipped-line-after-acked"),
]


@pytest.mark.parametrize("records, acks, expected", TAKE_CASES)
def test_window_take_acknowledged_cases(records, acks, expected):
    window = window_with(records)
    for mid in acks:
        assert window.acknowledge(mid)
    assert window.take_acknowledged() == expected


def test_window_take_acknowledged_counts_unsaved():
    window = window_with([(1, [1]), (2, [2]), (3, [3])])
    window.acknowledge(1)
    window.take_acknowledged()
    window.acknowledge(2)
    window.take_acknowledged()
    assert window.unsaved == 2
    assert len(window) == 1
    window.mark_saved()
    assert window.unsaved == 0


def test_window_capacity_counts_unsaved_records():
    window = window_with([(1, [1]), (2, [2])], capacity=3)
    assert window.has_room()
    window.add((1, 300), 3, [3])
    assert not window.has_room()
    window.acknowledge(1)
    window.take_acknowledged()
    # Acknowledged but not saved: still counts, because a crash would resend it.
    assert not window.has_room()
    window.mark_saved()
    assert window.has_room()


def test_window_acknowledge_unknown_mid():
    window = window_with([(1, [1])])
    assert not window.acknowledge(99)
    assert window.acknowledge(1)
    assert not window.acknowledge(1)


def test_window_duplicate_mid_rejected():
    window = window_with([(1, [1])])
    with pytest.raises(ValueError, match="packet id 1"):
        window.add((1, 200), 2, [1])


def test_window_clear_forgets_in_flight_keeps_unsaved():
    window = window_with([(1, [1]), (2, [2])])
    window.acknowledge(1)
    window.take_acknowledged()
    window.clear()
    assert len(window) == 0
    assert window.unsaved == 1
    assert not window.acknowledge(2)
    assert window.take_acknowledged() is None


def test_window_capacity_zero_rejected():
    with pytest.raises(ValueError):
        InflightWindow(0)


# (published records as (seq, mids, sent_at), acknowledged mids,
#  expected oldest_unacknowledged())
OLDEST_CASES = [
    pytest.param([], [], None, id="empty"),
    pytest.param([(1, [1], 10.0), (2, [2], 11.0)], [], (1, 10.0), id="head-waits"),
    pytest.param([(1, [1], 10.0), (2, [2], 11.0)], [1], (2, 11.0), id="head-acked"),
    pytest.param([(1, [1], 10.0), (2, [2], 11.0)], [2], (1, 10.0), id="second-acked-first"),
    pytest.param([(1, [], 10.0), (2, [5], 11.0)], [], (2, 11.0), id="skipped-line-needs-no-ack"),
    pytest.param([(1, [1, 2], 10.0)], [2], (1, 10.0), id="alarm-message-acked-telemetry-not"),
    pytest.param([(1, [1], 10.0), (2, [2], 11.0)], [1, 2], None, id="all-acked"),
]


@pytest.mark.parametrize("records, acks, expected", OLDEST_CASES)
def test_window_oldest_unacknowledged_cases(records, acks, expected):
    window = InflightWindow(10)
    for seq, mids, sent_at in records:
        window.add((1, seq * 100), seq, mids, sent_at)
    for mid in acks:
        assert window.acknowledge(mid)
    assert window.oldest_unacknowledged() == expected
