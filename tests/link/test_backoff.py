"""The reconnect schedule as a pure function: tables of cases."""

import pytest

from bessai_edge.backoff import BackoffPolicy

POLICY = BackoffPolicy(initial_s=1.0, maximum_s=30.0, multiplier=2.0, jitter=0.2)


@pytest.mark.parametrize("failures,random_fraction,expected", [
    (0, 0.0, 0.0),
    (-1, 0.5, 0.0),
    (1, 0.0, 1.0),
    (2, 0.0, 2.0),
    (3, 0.0, 4.0),
    (5, 0.0, 16.0),
    (6, 0.0, 30.0),       # 32 capped
    (1000, 0.0, 30.0),    # no overflow far past the cap
    (1, 0.5, 0.9),        # jitter removes up to 20 %
    (6, 0.999999, 24.00000600),
    (4, 0.25, 7.6),
])
def test_backoff_delay_table(failures, random_fraction, expected):
    assert POLICY.delay(failures, random_fraction) == pytest.approx(expected)


@pytest.mark.parametrize("random_fraction", [0.0, 0.3, 0.7, 0.9999])
def test_backoff_delay_never_exceeds_cap(random_fraction):
    delays = [POLICY.delay(failures, random_fraction) for failures in range(1, 40)]
    assert max(delays) <= POLICY.maximum_s
    assert min(delays) >= POLICY.initial_s * (1 - POLICY.jitter)
    assert delays == sorted(delays), "the delay never shrinks while failures grow"


def test_backoff_without_jitter_is_exact():
    policy = BackoffPolicy(initial_s=0.5, maximum_s=3.0, multiplier=3.0, jitter=0.0)
    assert [policy.delay(n, 0.9) for n in range(1, 5)] == [0.5, 1.5, 3.0, 3.0]


@pytest.mark.parametrize("arguments,named", [
    ({"initial_s": 0}, "initial_s"),
    ({"initial_s": float("nan")}, "initial_s"),
    ({"maximum_s": 0.5}, "maximum_s"),
    ({"maximum_s": float("inf")}, "maximum_s"),
    ({"multiplier": 0.5}, "multiplier"),
    ({"jitter": 1.0}, "jitter"),
    ({"jitter": -0.1}, "jitter"),
])
def test_backoff_policy_rejects_invalid_parameter(arguments, named):
    with pytest.raises(ValueError, match=named):
        BackoffPolicy(**arguments)
