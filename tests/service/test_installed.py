"""Unit properties from systemd: the time spans ``systemctl show`` prints, and the fit."""

import pytest

from bessai_edge.service.installed import parse_time_span
from bessai_edge.watchdog_fit import MIN_FITTED_TIMEOUT_S, fit_timeouts


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30.0),
    ("1min 30s", 90.0),
    ("500ms", 0.5),
    ("2h", 7200.0),
    ("1d 2h 3min 4s 5ms", 93784.005),
    ("0", 0.0),
    ("infinity", 0.0),
    ("", 0.0),
    ("30 parsecs", 0.0),
])
def test_parse_time_span(text, seconds):
    assert parse_time_span(text) == pytest.approx(seconds)


def test_fit_timeouts_within_half_interval():
    fitted = fit_timeouts(30.0, connect_s=2.0, request_s=5.0, quiet_after_connect_s=1.0)
    assert (fitted.connect_s, fitted.request_s) == (2.0, 5.0)
    assert not fitted.shortened


def test_fit_timeouts_request_less_quiet_time():
    fitted = fit_timeouts(30.0, connect_s=20.0, request_s=20.0, quiet_after_connect_s=1.0)
    assert (fitted.connect_s, fitted.request_s) == (15.0, 14.0)
    assert fitted.connect_shortened
    assert fitted.request_shortened


def test_fit_timeouts_quiet_time_beyond_limit():
    fitted = fit_timeouts(2.0, connect_s=0.5, request_s=3.0, quiet_after_connect_s=1.5)
    assert fitted.request_s == MIN_FITTED_TIMEOUT_S
    assert not fitted.connect_shortened


def test_fit_timeouts_no_watchdog():
    fitted = fit_timeouts(0.0, connect_s=30.0, request_s=30.0, quiet_after_connect_s=1.0)
    assert (fitted.connect_s, fitted.request_s) == (30.0, 30.0)
    assert not fitted.shortened
