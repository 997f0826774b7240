"""The check's diagnosis rules as a pure function: a table of observations and findings."""

import pytest

from bessai_edge.diagnosis import (
    ERROR, OK, WARNING, Finding, Observation, diagnose, exception_meaning, exit_status)


def observe(**fields):
    base = {"endpoint": "192.0.2.10:502", "port": 502, "unit_id": 1, "profile": "huawei_sun2000",
            "request_timeout_s": 5.0}
    return Observation(**{**base, **fields})


def warn_levels(charge_kw, discharge_kw=None):
    """Return the check's battery power warning levels: charge, then discharge if given."""
    levels = [("LIMIT_BATTERY_POWER_HIGH_WARN", charge_kw)]
    if discharge_kw is not None:
        levels.append(("LIMIT_BATTERY_POWER_LOW_WARN", discharge_kw))
    return tuple(levels)


BATTERY_AS_MAIN = {"request_outcomes": ["exception_2", "exception_11", "exception_11"],
                   "points": 9, "points_rejected": 3, "points_not_available": 3,
                   "unit_id": 247, "unit_id_set": True, "exception_11_units": (225,),
                   "unit_roles": {247: ("main",), 225: ("battery",)},
                   "profile_units": {"main": 100, "battery": 225}}

CASES = [
    # (case, observation fields, expected codes in order)
    ("refused", {"connect_error_kind": "refused"}, ["refused"]),
    ("connect_timeout", {"connect_error_kind": "timeout"}, ["connect_timeout"]),
    ("unreachable", {"connect_error_kind": "unreachable", "connect_error": "no route"},
     ["unreachable"]),
    ("other_connect_error", {"connect_error_kind": "link"}, ["connect_failed"]),
    ("no_sunspec", {"discovery_error": "no SunS marker"}, ["sunspec_not_found"]),
    ("exception_11_everywhere", {"request_outcomes": ["exception_11"] * 4}, ["wrong_unit_id"]),
    ("ffff_everywhere", {"request_outcomes": ["ok"] * 3, "all_words_ffff": True, "points": 9,
                         "points_ok": 9}, ["wrong_unit_id"]),
    ("ffff_with_a_failure", {"request_outcomes": ["ok", "timeout"], "all_words_ffff": True,
                             "points": 4, "points_ok": 2}, ["some_requests_failed"]),
    ("timeouts_everywhere", {"request_outcomes": ["timeout", "skipped", "skipped"]},
     ["all_timeouts"]),
    # Exception 1 rejects the function, so a wrong profile is the likely cause.
    ("illegal_function_on_most", {"request_outcomes": ["ok"] + ["exception_1"] * 8,
                                  "points": 20, "points_ok": 2}, ["illegal_function"]),
    ("illegal_function_and_timeout", {"request_outcomes": ["ok", "exception_1", "timeout"],
                                      "points": 6, "points_ok": 2},
     ["illegal_function", "some_requests_failed"]),
    ("timeouts_and_drops", {"request_outcomes": ["timeout", "disconnected", "timeout"]},
     ["all_timeouts"]),
    ("timeouts_with_late_replies", {"request_outcomes": ["timeout", "timeout", "skipped"],
                                    "late_replies": 1}, ["slow_replies"]),
    ("timeouts_with_unknown_ids", {"request_outcomes": ["timeout", "timeout", "skipped"],
                                   "unknown_id_frames": 2}, ["wrong_transaction_id"]),
    ("one_timeout_late_reply", {"request_outcomes": ["ok", "timeout", "ok"], "late_replies": 1,
                                "points": 6, "points_ok": 4},
     ["some_requests_failed", "late_replies"]),
    ("dropped_every_time", {"request_outcomes": ["disconnected", "disconnected"]},
     ["connection_dropped"]),
    # The device hung up at one request and replied to the others after a reconnect.
    ("dropped_at_one_request", {"request_outcomes": ["disconnected", "ok", "ok"],
                                "dropped_requests": [(1, 3, 32008, 3)],
                                "points": 3, "points_ok": 2},
     ["connection_dropped_at_request"]),
    ("dropped_main_values", {"request_outcomes": ["disconnected", "ok"],
                             "dropped_requests": [(3, 4, 30843, 10)],
                             "main_fields": ("soc_pct",), "main_fields_failed": ("soc_pct",),
                             "points": 3, "points_ok": 2},
     ["connection_dropped_at_request"]),
    ("dropped_and_timeout", {"request_outcomes": ["disconnected", "ok", "timeout"],
                             "dropped_requests": [(1, 3, 32008, 3)],
                             "points": 3, "points_ok": 1},
     ["connection_dropped_at_request", "some_requests_failed"]),
    ("wrong_profile", {"request_outcomes": ["exception_2"] * 3, "points": 5,
                       "points_not_available": 5, "points_rejected": 5},
     ["all_illegal_address"]),
    ("some_addresses_rejected", {"request_outcomes": ["exception_2", "ok"], "points": 5,
                                 "points_ok": 3, "points_not_available": 2,
                                 "points_rejected": 2}, ["rejected_addresses"]),
    ("soc_zero", {"request_outcomes": ["ok"], "soc_pct": 0.0, "points": 3, "points_ok": 3},
     ["soc_zero"]),
    ("soc_above_100", {"request_outcomes": ["ok"], "soc_pct": 4659.5, "points": 3,
                       "points_ok": 3}, ["soc_out_of_range"]),
    ("soc_negative", {"request_outcomes": ["ok"], "soc_pct": -3.2, "points": 3,
                      "points_ok": 3}, ["soc_out_of_range"]),
    ("soc_full", {"request_outcomes": ["ok"], "soc_pct": 100.0, "points": 3, "points_ok": 3},
     ["ok"]),
    ("night", {"request_outcomes": ["ok"], "points": 3, "points_not_available": 3},
     ["all_not_available"]),
    ("busy_and_soc_zero", {"request_outcomes": ["ok", "exception_6"], "soc_pct": 0.0,
                           "points": 3, "points_ok": 2}, ["some_requests_failed", "soc_zero"]),
    ("all_well", {"request_outcomes": ["ok", "ok"], "soc_pct": 54.0, "points": 9,
                  "points_ok": 9}, ["ok"]),
    ("malformed_replies", {"request_outcomes": ["short_reply", "mismatched_reply"],
                           "points": 4}, ["malformed_replies"]),
    ("partial_replies", {"request_outcomes": ["partial_reply", "timeout"]}, ["partial_replies"]),
    ("partial_reply_among_answers", {"request_outcomes": ["ok", "partial_reply"], "points": 4,
                                     "points_ok": 2}, ["some_requests_failed"]),
    ("rated_power_in_watts", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                              "battery_power_warn_levels_kw": warn_levels(5000.0, 5000.0),
                              "battery_max_power_kw": 5.0},
     ["rated_power_mismatch"]),
    ("rated_power_in_megawatts", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                                  "battery_power_warn_levels_kw": warn_levels(0.4, 0.4),
                                  "battery_max_power_kw": 5.0},
     ["rated_power_mismatch"]),
    ("rated_power_at_ten_times", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                                  "battery_power_warn_levels_kw": warn_levels(50.0, 50.0),
                                  "battery_max_power_kw": 5.0},
     ["ok"]),
    ("rated_power_not_reported", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                                  "battery_power_warn_levels_kw": warn_levels(5000.0)}, ["ok"]),
    # A charge level far below the device's power went unnoticed beside a normal discharge one.
    # A charge level too high and a discharge level too low: one finding each.
    ("rated_power_both_ways", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                               "battery_power_warn_levels_kw": warn_levels(60.0, 0.3),
                               "battery_max_power_kw": 5.0},
     ["rated_power_mismatch", "rated_power_mismatch"]),
    ("rated_power_one_level_low", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                                   "battery_power_warn_levels_kw": warn_levels(0.3, 5.0),
                                   "battery_max_power_kw": 5.0}, ["rated_power_mismatch"]),
    # A 32-bit battery power read with its words swapped (1297 W read as 85,000 kW).
    ("battery_power_words_swapped", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                                     "battery_power_kw": 85000.192,
                                     "battery_dc_power_kw": 1.42},
     ["battery_power_implausible"]),
    ("battery_power_discharging", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                                   "battery_power_kw": -4.8, "battery_dc_power_kw": -4.9,
                                   "battery_max_power_kw": 5.0}, ["ok"]),
    # A battery at rest: voltage times a current near 0 beside a few kW of conversion.
    ("battery_power_at_rest", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                               "battery_power_kw": 3.0, "battery_dc_power_kw": 0.01}, ["ok"]),
    ("battery_power_over_rated", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                                  "battery_power_kw": -120.0,
                                  "battery_power_warn_levels_kw": warn_levels(10.0, 10.0)},
     ["battery_power_implausible"]),
    ("battery_power_at_ten_times_rated", {"request_outcomes": ["ok"], "points": 3,
                                          "points_ok": 3, "battery_power_kw": 100.0,
                                          "battery_max_power_kw": 10.0}, ["ok"]),
    ("battery_power_no_reference", {"request_outcomes": ["ok"], "points": 3, "points_ok": 3,
                                    "battery_power_kw": 85000.192}, ["ok"]),
    ("battery_power_beyond_any_rating", {"request_outcomes": ["ok"], "points": 3,
                                         "points_ok": 3, "battery_power_kw": -2.1e6},
     ["battery_power_implausible"]),
    ("role_unit_silent", {"request_outcomes": ["ok", "timeout", "skipped"], "points": 6,
                          "points_ok": 2, "silent_units": (246,),
                          "unit_roles": {100: ("main",), 246: ("vebus",)}}, ["unit_timeout"]),
    ("main_values_rejected", {"request_outcomes": ["exception_2", "ok"], "points": 8,
                              "points_ok": 5, "points_not_available": 3,
                              "points_rejected": 3,
                              "main_fields": ("soc_pct", "battery_power_kw", "ac_power_kw"),
                              "main_fields_missing": ("soc_pct", "battery_power_kw")},
     ["rejected_addresses", "main_values_rejected"]),
    ("first_request_unanswered", {"request_outcomes": ["timeout", "ok", "ok"], "points": 6,
                                  "points_ok": 4, "quiet_after_connect_s": 1.0},
     ["quiet_after_connect"]),
    ("first_request_late_reply", {"request_outcomes": ["timeout", "ok", "ok"], "points": 6,
                                  "points_ok": 4, "late_replies": 1},
     ["some_requests_failed", "late_replies"]),
    ("meter_without_sunspec_map", {"request_outcomes": ["ok"], "points": 6, "points_ok": 6,
                                   "units_without_sunspec": (201,),
                                   "unit_roles": {1: ("main",), 201: ("meter",)}},
     ["unit_no_sunspec"]),
    ("exception_1_everywhere", {"request_outcomes": ["exception_1"] * 3, "points": 6},
     ["all_requests_rejected"]),
    ("exception_1_and_2", {"request_outcomes": ["exception_1", "exception_2"], "points": 6,
                           "points_rejected": 3}, ["all_requests_rejected"]),
    ("mixed_failures_nothing_read", {"request_outcomes": ["exception_2", "exception_11", "ok"],
                                     "points": 9, "points_rejected": 4,
                                     "points_not_available": 4},
     ["nothing_read"]),
    # Points of a switched-off role read "not available" too, but none of them was read.
    ("mixed_failures_role_off", {"request_outcomes": ["exception_2", "exception_11", "ok"],
                                 "points": 12, "points_rejected": 4, "points_role_off": 3,
                                 "points_not_available": 7}, ["nothing_read"]),
    ("night_with_role_off", {"request_outcomes": ["ok"], "points": 5, "points_role_off": 2,
                             "points_not_available": 5}, ["all_not_available"]),
    ("mixed_failures_at_night", {"request_outcomes": ["exception_11", "ok"], "points": 6,
                                 "points_not_available": 3}, ["some_requests_failed"]),
    ("no_main_field_on_device", {"request_outcomes": ["ok"], "points": 9, "points_ok": 5,
                                 "main_fields": ("ac_power_kw", "soc_pct"),
                                 "main_fields_missing": ("ac_power_kw", "soc_pct")},
     ["main_fields_missing"]),
    ("one_main_field_on_device", {"request_outcomes": ["ok"], "points": 9, "points_ok": 9,
                                  "main_fields": ("ac_power_kw", "soc_pct"),
                                  "main_fields_missing": ("soc_pct",)}, ["ok"]),
    # A battery monitor's unit id as the main one: the main registers rejected, exception
    # 11 at the battery role's unit id, and the probe found the battery registers at 247.
    ("battery_unit_as_main", {**BATTERY_AS_MAIN, "serving_units": {247: (225,)}},
     ["unit_serves_other_role"]),
    # The same failures without a unit id that serves the registers: another make.
    ("battery_unit_as_main_not_found", BATTERY_AS_MAIN, ["nothing_read"]),
    # Every request rejected, but the probe found each role's registers at another.
    ("every_role_swapped", {"request_outcomes": ["exception_2"] * 3, "points": 6,
                            "points_not_available": 6, "points_rejected": 6,
                            "unit_roles": {100: ("main",), 227: ("vebus",)},
                            "serving_units": {100: (227,), 227: (100,)}},
     ["unit_serves_other_role", "unit_serves_other_role"]),
    # The system values read: the role found elsewhere has no exception 11 finding.
    ("battery_unit_swapped", {"request_outcomes": ["ok", "exception_2", "exception_11"],
                              "points": 9, "points_ok": 3, "points_not_available": 6,
                              "points_rejected": 3, "exception_11_units": (224,),
                              "unit_roles": {100: ("main",), 225: ("vebus",),
                                             224: ("battery",)},
                              "serving_units": {225: (224,)}},
     ["unit_serves_other_role", "rejected_addresses"]),
]


CASES_BY_NAME = {case[0]: case[1] for case in CASES}


@pytest.mark.parametrize("fields,codes", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_diagnose_table(fields, codes):
    findings = diagnose(observe(**fields))
    assert [finding.code for finding in findings] == codes
    assert all(finding.message for finding in findings)


def test_diagnose_dropped_main_values_is_error():
    # Advice to leave the points out of the profile would drop the state of charge.
    finding, = diagnose(observe(**CASES_BY_NAME["dropped_main_values"]))
    assert finding.severity == "error"
    assert "carries the main values soc_pct" in finding.message
    assert "leave their points out" not in finding.message


def test_diagnose_refused_names_every_vendor_menu():
    message = diagnose(observe(connect_error_kind="refused"))[0].message
    # The Huawei path is the one docs/connect-inverter.md gives.
    assert "Communication configuration > Dongle parameter settings > Modbus TCP" in message
    for vendor in ("Huawei", "SMA", "Victron GX", "Fronius"):
        assert f"{vendor}:" in message


def test_diagnose_refused_names_port_and_fix():
    message = diagnose(observe(connect_error_kind="refused", port=1502))[0].message
    assert "1502" in message
    assert "Modbus TCP" in message


def test_diagnose_refused_on_loopback_names_simulator():
    message = diagnose(observe(connect_error_kind="refused", endpoint="127.0.0.1:5021",
                               port=5021, loopback=True))[0].message
    assert "nothing listens on port 5021 of this machine" in message
    assert "`bessai simulate`" in message
    assert "INVERTER_PORT" in message
    assert "Huawei:" not in message


def test_diagnose_serving_unit_names_both_variables():
    findings = diagnose(observe(**BATTERY_AS_MAIN, serving_units={247: (225,)}))
    assert findings[0].severity == ERROR
    message = findings[0].message
    assert "Unit id 247 rejects the registers of role main (exception 2)" in message
    assert "serves those of role battery, which gave no value at unit id 225" in message
    assert "Set MODBUS_UNIT_BATTERY=247." in message
    assert ("Leave MODBUS_SLAVE_ID empty, so that role main uses the profile's unit id 100, "
            "or set it to the unit id the device lists for that role.") in message
    assert exit_status([findings]) == 2


def test_diagnose_serving_unit_at_profile_default():
    # The profile's own main unit id serves the battery's registers: leaving
    # MODBUS_SLAVE_ID empty changes nothing, so the finding does not suggest it.
    fields = {**BATTERY_AS_MAIN, "unit_id": 100, "unit_id_set": False,
              "unit_roles": {100: ("main",), 225: ("battery",)},
              "serving_units": {100: (225,)}}
    message = diagnose(observe(**fields))[0].message
    assert "Set MODBUS_UNIT_BATTERY=100." in message
    assert "Set MODBUS_SLAVE_ID to the unit id the device lists for role main." in message
    assert "empty" not in message


def test_diagnose_serving_unit_with_data_exits_1():
    findings = diagnose(observe(**CASES_BY_NAME["battery_unit_swapped"]))
    assert findings[0].code == "unit_serves_other_role"
    assert exit_status([findings]) == 1


def test_diagnose_failed_requests_named_by_registers():
    requests = [(1, 3, 32000, 10), (1, 3, 37760, 30), (1, 4, 30000, 5), (1, 3, 40000, 2),
                (1, 3, 41000, 4), (1, 3, 42000, 1)]
    outcomes = ["ok", "exception_4", "exception_3", "timeout", "exception_4", "exception_4"]
    findings = diagnose(observe(request_outcomes=outcomes, requests=requests, points=12,
                                points_ok=2))
    assert [finding.code for finding in findings] == ["some_requests_failed"]
    message = findings[0].message
    assert ("The failed requests read registers 37760..37789 (unit id 1, function 3, "
            "exception 4), 30000..30004 (unit id 1, function 4, exception 3), 40000..40001 "
            "(unit id 1, function 3, timeout) and 2 more.") in message
    assert "Exception 3 (illegal data value)" in message
    assert "Exception 4 (server device failure)" in message
    assert message.index("Exception 3") < message.index("Exception 4")


def test_diagnose_failed_request_without_registers():
    # An observation without the requests' registers keeps the count alone.
    findings = diagnose(observe(request_outcomes=["ok", "exception_4"], points=4,
                                points_ok=2))
    assert "registers" not in findings[0].message
    assert "1 of 2 requests failed (exception 4 x1)" in findings[0].message


@pytest.mark.parametrize("code, name", [
    (1, "illegal function"), (2, "illegal data address"), (3, "illegal data value"),
    (4, "server device failure"), (6, "server device busy"),
    (10, "gateway path unavailable"), (11, "gateway target device failed to respond"),
])
def test_exception_meaning_names_standard_code(code, name):
    assert exception_meaning(code).startswith(f"Exception {code} ({name}): ")


def test_exception_meaning_unknown_code():
    assert exception_meaning(99) is None


def test_diagnose_wrong_unit_id_names_unit_and_setting():
    message = diagnose(observe(request_outcomes=["exception_11"], unit_id=7))[0].message
    assert "unit id 7" in message
    assert "MODBUS_SLAVE_ID" in message
    # A profile for another make brings that make's unit id: name it as a cause too.
    assert "or the profile is for another make" in message


def test_diagnose_names_device_variables():
    # With DEVICES the fix is the device's own variable, not the single-device one.
    variables = {"MODBUS_SLAVE_ID": "DEVICE_SMA_SLAVE_ID", "INVERTER_PORT": "DEVICE_SMA_PORT",
                 "MODBUS_UNIT_": "DEVICE_SMA_UNIT_"}
    wrong_unit = diagnose(observe(request_outcomes=["exception_11"], unit_id=7,
                                  unit_id_set=True, variables=variables))[0].message
    assert "DEVICE_SMA_SLAVE_ID=7 is probably wrong" in wrong_unit
    assert "MODBUS_SLAVE_ID" not in wrong_unit.replace("DEVICE_SMA_SLAVE_ID", "")
    refused = diagnose(observe(connect_error_kind="refused", variables=variables))[0].message
    assert "check DEVICE_SMA_PORT" in refused
    assert "INVERTER_PORT" not in refused


def test_diagnose_set_unit_id_named():
    # A unit id from the settings is the likely mistake; the profile's does not apply.
    message = diagnose(observe(request_outcomes=["exception_11"], unit_id=7,
                               unit_id_set=True))[0].message
    assert "MODBUS_SLAVE_ID=7 is probably wrong" in message
    assert "another make" not in message


def test_diagnose_all_timeouts_names_timeout_setting():
    message = diagnose(observe(request_outcomes=["timeout"], request_timeout_s=2.5))[0].message
    assert "standby" in message
    assert "slow network link or device that replies after the request timeout (2.5 s)" in message
    assert "raise REQUEST_TIMEOUT_S" in message


def test_diagnose_timeout_unknown_leaves_hint_out():
    findings = diagnose(observe(request_outcomes=["timeout"], late_replies=1,
                                request_timeout_s=None))
    assert [finding.code for finding in findings] == ["all_timeouts"]
    assert "REQUEST_TIMEOUT_S" not in findings[0].message


def test_diagnose_slow_replies_names_timeout():
    findings = diagnose(observe(request_outcomes=["timeout", "timeout"], late_replies=1))
    assert findings[0].severity == ERROR
    assert "only after the request timeout of 5 s" in findings[0].message
    assert "Raise REQUEST_TIMEOUT_S" in findings[0].message
    assert exit_status([findings]) == 2


@pytest.mark.parametrize("interval_s, text", [
    (0.1, "took 0.26 s, longer than SCAN_INTERVAL_S=0.1"),
    # A period the finding used to accept, and which then overran in some cycles.
    (0.3, "took 0.26 s, most of SCAN_INTERVAL_S=0.3"),
])
def test_diagnose_slow_cycle_names_interval(interval_s, text):
    findings = diagnose(observe(request_outcomes=["ok"], points=1, points_ok=1, read_s=0.26,
                                scan_interval_s=interval_s))
    assert [finding.code for finding in findings] == ["slow_cycle"]
    assert findings[0].severity == WARNING
    assert text in findings[0].message
    assert "Set SCAN_INTERVAL_S to 0.4 or more" in findings[0].message
    assert exit_status([findings]) == 1


@pytest.mark.parametrize("fields", [
    {"request_outcomes": ["ok"], "points": 1, "points_ok": 1, "read_s": 0.2},  # fits
    {"request_outcomes": ["timeout", "skipped"], "read_s": 10.0},  # the timeouts explain it
    {"request_outcomes": ["ok", "timeout", "ok"], "points": 3, "points_ok": 2,
     "read_s": 1.2},                                # one slow request, already a finding
])
def test_diagnose_no_slow_cycle(fields):
    findings = diagnose(observe(scan_interval_s=1.0, **fields))
    assert "slow_cycle" not in [finding.code for finding in findings]


def test_diagnose_soc_zero_names_profile_setting():
    findings = diagnose(observe(request_outcomes=["ok"], soc_pct=0.0, points=1, points_ok=1))
    assert "DRIVER_PROFILE_PATH" in findings[0].message
    assert findings[0].severity == WARNING


def test_diagnose_soc_out_of_range_message():
    findings = diagnose(observe(request_outcomes=["ok"], soc_pct=4659.5, points=1,
                                points_ok=1))
    assert findings[0].severity == WARNING
    assert "4659.5 %, outside 0 to 100 %" in findings[0].message
    assert "scale, type or byte order" in findings[0].message
    assert "DRIVER_PROFILE_PATH" in findings[0].message


def test_diagnose_busy_retries_counted():
    findings = diagnose(observe(request_outcomes=["ok", "ok", "ok", "skipped"], points=3,
                                points_ok=3, busy_retries=1))
    assert [finding.code for finding in findings] == ["busy_replies"]
    assert findings[0].severity == WARNING
    assert "answered 1 of 3 requests with exception 6 (device busy) and served it" \
        in findings[0].message


def test_diagnose_battery_power_names_point_reference_and_fix():
    findings = diagnose(observe(request_outcomes=["ok"], points=1, points_ok=1,
                                battery_power_kw=85000.192, battery_dc_power_kw=1.42073,
                                battery_power_points=("storage_charge_discharge_power",)))
    message = findings[0].message
    assert "85000.2 kW, more than ten times the battery's voltage times its current (1.42 kW)" \
        in message
    assert "point storage_charge_discharge_power in profile huawei_sun2000" in message
    assert '"order": "CDAB"' in message


def test_diagnose_failed_request_names_lost_main_value():
    findings = diagnose(observe(request_outcomes=["ok", "exception_4"], points=6, points_ok=3,
                                main_fields=("soc_pct",), main_fields_failed=("soc_pct",)))
    assert [finding.code for finding in findings] == ["some_requests_failed"]
    assert "The main value soc_pct is among them." in findings[0].message


def test_diagnose_counts_in_singular():
    findings = diagnose(observe(request_outcomes=["exception_2", "timeout", "ok"], points=6,
                                points_ok=4, points_not_available=1, points_rejected=1))
    messages = {finding.code: finding.message for finding in findings}
    assert "rejects the address of 1 point of profile" in messages["rejected_addresses"]
    assert "it is not read" in messages["rejected_addresses"]
    assert messages["some_requests_failed"].startswith("1 of 3 requests failed (timeout x1)")


@pytest.mark.parametrize("fields,text", [
    ({"points": 60, "points_ok": 33, "points_not_available": 27, "points_role_off": 27,
      "roles_off": ("battery",)},
     "All 33 points read; the device answers as profile huawei_sun2000 expects. 27 points "
     "were not read because their role is switched off (MODBUS_UNIT_BATTERY)."),
    ({"points": 9, "points_ok": 8, "points_not_available": 1, "points_role_off": 1,
      "roles_off": ("battery",), "variables": {"MODBUS_UNIT_": "DEVICE_GX_UNIT_"}},
     "All 8 points read; the device answers as profile huawei_sun2000 expects. 1 point "
     "was not read because its role is switched off (DEVICE_GX_UNIT_BATTERY)."),
    ({"points": 9, "points_ok": 7, "points_not_available": 2, "points_absent": 2},
     "All 7 points read; the device answers as profile huawei_sun2000 expects."),
])
def test_diagnose_all_well_counts_points_read(fields, text):
    findings = diagnose(observe(request_outcomes=["ok"], **fields))
    assert [finding.code for finding in findings] == ["ok"]
    assert findings[0].message == text


def finding(severity, code):
    return Finding(severity, code, "")


@pytest.mark.parametrize("per_device,status", [
    ([[finding(OK, "ok")]], 0),
    ([[finding(OK, "ok")], [finding(OK, "ok")]], 0),
    ([[finding(WARNING, "soc_zero")]], 1),
    ([[finding(ERROR, "refused")]], 2),
    ([[finding(ERROR, "refused")], [finding(OK, "ok")]], 1),
    ([[finding(ERROR, "wrong_unit_id")], [finding(ERROR, "all_timeouts")]], 2),
])
def test_exit_status_table(per_device, status):
    assert exit_status(per_device) == status


def test_exit_status_no_data_finding():
    # A finding marked no_data counts as a device without data, whatever its code.
    assert exit_status([[Finding(ERROR, "unit_serves_other_role", "", no_data=True)]]) == 2
    assert exit_status([[finding(ERROR, "unit_serves_other_role")]]) == 1
