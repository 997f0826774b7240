"""``bessai check`` end to end: simulated devices over Modbus TCP on loopback, one test per
diagnosis a technician can get, and the settings errors."""

import json
import os
import re
import socket
import subprocess
import time

import pytest

from bessai_edge.errors import EX_CONFIG
from bessai_edge.profile import bundled_profiles
from bessai_edge.profile.registry import registry_dir as bundled_profiles_dir
from tests.conftest import CAPTURES, bessai_command, free_tcp_port
from tests.settings.helpers import read_only_spool_dir
from tests.simulator.helpers import (
    CraftedServer,
    registers_pdu,
    reply,
    request_fields,
    simulator,  # noqa: F401 (fixture)
)

VICTRON = str(CAPTURES / "victron_system_battery_discharging_constructed.json")
VICTRON_BATTERY = str(CAPTURES / "victron_battery_official_test.json")  # unit id 247
SMA = str(CAPTURES / "sma_sunnyboy_30775_power_input_evcc17768.json")
# "[ok]" for the ok finding, "[warning: code]" or "[error: code]" for the others.
FINDING = re.compile(r"\[(ok)\]|\[(?:warning|error): ([a-z_0-9]+)\]")
JSON_KEYS = {"device", "name", "field", "unit_id", "function", "address", "type", "value",
             "unit", "quality"}


def run_check(*arguments, port=None, profile="victron_multiplus", env_file=None, merged=False,
              cwd=None, **variables):
    """Run ``bessai check``; with ``merged``, stderr goes into stdout as in ``2>&1 | less``."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("MODBUS_", "INVERTER_", "DRIVER_", "DEVICE", "BESSAI_",
                                          "REQUEST_", "CONNECT_", "PYTHONUNBUFFERED"))}
    environment.update({"SITE_ID": "check-test", "INVERTER_IP": "127.0.0.1",
                        "DRIVER_PROFILE_PATH": profile, "LANG": "C", "LANGUAGE": ""})
    if port is not None:
        environment["INVERTER_PORT"] = str(port)
    environment.update({key: str(value) for key, value in variables.items()})
    command = [*bessai_command(), "check", *arguments]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    started = time.monotonic()
    streams = ({"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if merged
               else {"capture_output": True})
    result = subprocess.run(command, env=environment, text=True, timeout=120, cwd=cwd,
                            **streams)
    result.elapsed = time.monotonic() - started
    return result


def codes(result):
    return [ok or code for ok, code in FINDING.findall(result.stdout)]


@pytest.mark.parametrize("profile", bundled_profiles())
def test_check_profile_simulator_all_well(simulator, profile):
    device = simulator("--profile", profile)
    result = run_check(port=device.port, profile=profile)
    assert codes(result) == ["ok"], result.stdout + result.stderr
    assert result.returncode == 0
    assert f"profile {profile}" in result.stdout
    assert "soc_pct=" in result.stdout


def test_check_json_has_one_object_per_point(simulator):
    device = simulator("--profile", "fronius_gen24")
    result = run_check("--json", port=device.port, profile="fronius_gen24")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    points = [line for line in lines if "name" in line]
    maps = [line["sunspec_map"] for line in lines if "sunspec_map" in line]
    assert points
    for point in points:
        assert JSON_KEYS <= set(point), point
    soc = [point for point in points if point["field"] == "soc_pct"]
    assert len(soc) == 1
    assert soc[0]["quality"] == "ok"
    assert 20 <= soc[0]["value"] <= 95
    assert soc[0]["function"] == "holding"
    assert {unit_map["unit_id"] for unit_map in maps} == {1, 200}
    assert "ok" in result.stderr


def test_check_wrong_unit_id_exception_11(simulator):
    device = simulator("--capture", VICTRON)
    result = run_check(port=device.port, MODBUS_SLAVE_ID=50, MODBUS_UNIT_VEBUS=51,
                       MODBUS_UNIT_BATTERY=52)
    assert codes(result) == ["wrong_unit_id"]
    assert "exception 11" in result.stdout
    assert result.returncode == 2


def test_check_wrong_unit_id_all_ffff(simulator):
    device = simulator("--capture", VICTRON, "--unknown-unit", "ffff")
    result = run_check(port=device.port, MODBUS_SLAVE_ID=50, MODBUS_UNIT_VEBUS=51,
                       MODBUS_UNIT_BATTERY=52)
    assert codes(result) == ["wrong_unit_id"]
    assert "0xFFFF" in result.stdout
    assert result.returncode == 2


def test_check_one_role_unit_id_all_ffff(simulator):
    # The battery role's unit id reads 0xFFFF everywhere while the others give data:
    # check names that unit id, as `bessai run` records it as no_data.
    device = simulator("--profile", "victron_multiplus", "--unknown-unit", "ffff")
    result = run_check(port=device.port, MODBUS_UNIT_BATTERY=226)
    assert "unit_no_data" in codes(result), result.stdout
    assert "Unit id 226 (role battery) read 0xFFFF in every register" in result.stdout
    assert "Set MODBUS_UNIT_BATTERY to the unit id the device lists" in result.stdout
    assert result.returncode == 1


def test_check_one_role_unit_id_exception_11(simulator):
    # A wrong VE.Bus unit id (exception 11 on its requests, data from the others) gave
    # only "2 of 8 requests failed", naming neither the role nor its variable.
    device = simulator("--profile", "victron_multiplus")   # VE.Bus served at 227
    result = run_check(port=device.port, MODBUS_UNIT_VEBUS=246)
    assert codes(result)[0] == "unit_exception_11", result.stdout
    assert ("Unit id 246 (role vebus) answered every request with exception 11 (gateway "
            "target device failed to respond)") in result.stdout
    assert "set MODBUS_UNIT_VEBUS to the unit id the device lists" in result.stdout
    assert "some_requests_failed" not in codes(result), result.stdout
    assert result.returncode == 1


def test_check_role_switched_off(simulator):
    # A Victron system without a battery monitor: the battery role's points showed "not
    # on the device", and the ok line counted them among the points read.
    device = simulator("--profile", "victron_multiplus")
    listed = run_check("--json", port=device.port, MODBUS_UNIT_BATTERY="off")
    points = [json.loads(line) for line in listed.stdout.splitlines()]
    off = [point for point in points if point.get("status") == "role_off"]
    read = [point for point in points if "status" not in point]
    assert off, {point.get("status") for point in points}
    assert {point["name"].split(":")[0] for point in off} == {"battery"}
    assert {point["unit_id"] for point in off} == {None}
    assert {point["quality"] for point in off} == {"not_available"}
    assert len(read) + len(off) == len(points)
    assert {point["quality"] for point in read} == {"ok"}

    result = run_check(port=device.port, MODBUS_UNIT_BATTERY="off")
    assert codes(result) == ["ok"], result.stdout
    assert result.returncode == 0
    assert (f"All {len(read)} points read; the device answers as profile victron_multiplus "
            f"expects. {len(off)} points were not read because their role is switched off "
            "(MODBUS_UNIT_BATTERY).") in result.stdout
    battery = [line for line in result.stdout.splitlines() if line.startswith("  battery:")]
    assert len(battery) == len(off)
    for line in battery:
        assert line.endswith("switched off (MODBUS_UNIT_BATTERY)"), line


def test_check_device_role_switched_off(simulator):
    # With DEVICES, the table and the ok line name the device's own variable.
    device = simulator("--profile", "victron_multiplus")
    result = run_check(port=device.port, DEVICES="gx", DEVICE_GX_UNIT_BATTERY="none")
    assert codes(result) == ["ok"], result.stdout + result.stderr
    assert "because their role is switched off (DEVICE_GX_UNIT_BATTERY)." in result.stdout
    assert "switched off (DEVICE_GX_UNIT_BATTERY)\n" in result.stdout
    assert "not on the device" not in result.stdout


def test_check_sunspec_meter_wrong_unit_id(simulator):
    # A wrong meter unit id behind a Fronius: discovery finds no SunSpec map there, the
    # meter's points were left out of the count, and check reported "ok" with exit 0.
    device = simulator("--profile", "fronius_gen24")   # the meter is served at 200
    result = run_check(port=device.port, profile="fronius_gen24", MODBUS_UNIT_METER=201)
    assert codes(result) == ["unit_no_sunspec"], result.stdout
    assert "Unit id 201 (role meter) has no SunSpec register map" in result.stdout
    assert "Set MODBUS_UNIT_METER to the unit id the device lists" in result.stdout
    assert result.returncode == 1

    result = run_check(port=device.port, profile="fronius_gen24")
    assert codes(result) == ["ok"], result.stdout
    assert result.returncode == 0


def test_check_one_role_unit_id_silent(simulator):
    # A gateway that stays silent for a unit id nothing serves: the wrong VE.Bus unit id
    # got only "2 of 8 requests failed (timeout x2)", naming neither role nor variable.
    device = simulator("--profile", "victron_multiplus", "--unknown-unit", "none")
    result = run_check(port=device.port, MODBUS_UNIT_VEBUS=246, REQUEST_TIMEOUT_S=0.5)
    assert codes(result) == ["unit_timeout"], result.stdout
    assert ("Unit id 246 (role vebus) answered no request within 0.5 s, while the other "
            "unit ids give data") in result.stdout
    assert "Set MODBUS_UNIT_VEBUS to the unit id the device lists" in result.stdout
    assert result.returncode == 1


def test_check_failed_request_names_main_values(simulator):
    # Exception 4 on the battery's request lost SOC and battery power, and the warning
    # was only "1 of 8 requests failed (exception 4 x1)".
    device = simulator("--profile", "victron_multiplus", "--exception", "843=4")
    result = run_check(port=device.port)
    assert codes(result) == ["some_requests_failed"], result.stdout
    line = next(line for line in result.stdout.splitlines() if "some_requests_failed" in line)
    assert "1 of 8 requests failed (exception 4 x1)" in line
    assert re.search(r"The main values [a-z_, ]*soc_pct[a-z_, ]* are among them", line), line
    assert result.returncode == 1


def test_check_failed_request_names_registers(simulator):
    # "compare their addresses with the manufacturer's register list" named no address,
    # and exception 4 was not explained.
    device = simulator("--profile", "huawei_sun2000", "--exception", "37760=4")
    result = run_check(port=device.port, profile="huawei_sun2000")
    assert codes(result) == ["some_requests_failed"], result.stdout
    line = next(line for line in result.stdout.splitlines() if "some_requests_failed" in line)
    assert "1 of 6 requests failed (exception 4 x1)" in line
    match = re.search(r"The failed request reads registers (\d+)\.\.(\d+) \(unit id 1, "
                      r"function 3, exception 4\)\.", line)
    assert match, line
    assert int(match[1]) <= 37760 <= int(match[2])
    assert "Exception 4 (server device failure): the device failed while reading" in line
    assert result.returncode == 1


def test_check_battery_unit_id_as_main_names_role(simulator):
    # The battery monitor's unit id given as MODBUS_SLAVE_ID, as the README instructed for
    # a capture: check blamed the profile (nothing_read), although every point of the
    # battery role reads with MODBUS_UNIT_BATTERY=247.
    device = simulator("--capture", VICTRON_BATTERY)
    result = run_check(port=device.port, MODBUS_SLAVE_ID=247)
    assert codes(result) == ["unit_serves_other_role"], result.stdout
    # "system" is the profile's name for its main role: the prefix of those points' names.
    assert ("Unit id 247 rejects the registers of role system (exception 2) but serves those "
            "of role battery, which gave no value at unit id 225") in result.stdout
    assert "Set MODBUS_UNIT_BATTERY=247." in result.stdout
    assert ("Leave MODBUS_SLAVE_ID empty, so that role system uses the profile's unit id "
            "100") in result.stdout
    assert "DRIVER_PROFILE_PATH" not in result.stdout
    assert result.returncode == 2

    # The advice works: every point of the battery role reads.
    listed = run_check("--json", port=device.port, MODBUS_UNIT_BATTERY=247)
    points = [json.loads(line) for line in listed.stdout.splitlines()]
    battery = [point for point in points if point["name"].startswith("battery:")]
    assert battery
    assert {point["unit_id"] for point in battery} == {247}
    assert {point["quality"] for point in battery} == {"ok"}


def test_check_device_battery_unit_names_variables(simulator):
    device = simulator("--capture", VICTRON_BATTERY)
    result = run_check(port=device.port, DEVICES="gx", DEVICE_GX_SLAVE_ID=247)
    assert codes(result) == ["unit_serves_other_role"], result.stdout + result.stderr
    assert "Set DEVICE_GX_UNIT_BATTERY=247." in result.stdout
    assert "Leave DEVICE_GX_SLAVE_ID empty" in result.stdout


def test_check_swapped_role_unit_ids_named(simulator):
    # The battery's and the VE.Bus's unit ids swapped: the system values read, and each
    # role's unit id rejects its registers (exception 2) but serves the other role's.
    device = simulator("--profile", "victron_multiplus")   # battery 225, VE.Bus 227
    result = run_check(port=device.port, MODBUS_UNIT_VEBUS=225, MODBUS_UNIT_BATTERY=227)
    assert codes(result)[:2] == ["unit_serves_other_role"] * 2, result.stdout
    assert "Set MODBUS_UNIT_BATTERY=225." in result.stdout
    assert "Set MODBUS_UNIT_VEBUS=227." in result.stdout
    assert result.returncode == 1


def test_check_role_exception_11_after_probing(simulator):
    # The main unit's first reads end in exception 2 (two registers this GX lacks), so
    # no unit id gives data until the second pass. The wrong battery and VE.Bus unit ids
    # must still be named with their variables.
    device = simulator("--profile", "victron_multiplus", "--exception", "808=2",
                       "--exception", "851=2")
    result = run_check(port=device.port, MODBUS_UNIT_VEBUS=246, MODBUS_UNIT_BATTERY=224)
    assert "unit_exception_11" in codes(result), result.stdout
    assert "Unit ids 224 (role battery), 246 (role vebus) answered" in result.stdout
    assert "no device answers to them" in result.stdout
    assert "MODBUS_UNIT_BATTERY, MODBUS_UNIT_VEBUS" in result.stdout
    assert "some_requests_failed" not in codes(result), result.stdout
    assert result.returncode == 1


def test_check_busy_device_every_request(simulator):
    device = simulator("--profile", "huawei_sun2000", "--busy-every", "1")
    result = run_check(port=device.port, profile="huawei_sun2000")
    assert codes(result) == ["device_busy"]
    assert "exception 6 (device busy)" in result.stdout
    assert result.returncode == 2


def test_check_connection_refused():
    port = free_tcp_port()
    result = run_check(port=port)
    assert codes(result) == ["refused"]
    assert f"port {port}" in result.stdout
    assert result.returncode == 2


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_check_refused_on_loopback_names_simulator(host):
    # A refused connection to this machine got the vendors' menus for enabling Modbus TCP.
    port = free_tcp_port()
    result = run_check(port=port, INVERTER_IP=host)
    assert codes(result) == ["refused"], result.stdout
    assert f"nothing listens on port {port} of this machine" in result.stdout
    assert "Is `bessai simulate` (or a tunnel to the device) running" in result.stdout
    assert "Set INVERTER_PORT to that port." in result.stdout
    assert "Huawei:" not in result.stdout
    assert result.returncode == 2


def test_check_connect_timeout_when_backlog_full():
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            time.sleep(0.1)
            result = run_check(port=port, CONNECT_TIMEOUT_S=0.3)
        finally:
            for filler in fillers:
                filler.close()
    assert codes(result) == ["connect_timeout"]
    assert result.returncode == 2


def test_check_silent_device_is_standby(simulator):
    device = simulator("--capture", VICTRON, "--silent")
    timeout_s = 0.3
    result = run_check(port=device.port, REQUEST_TIMEOUT_S=timeout_s)
    assert codes(result) == ["all_timeouts"]
    assert "standby" in result.stdout
    assert "replies after the request timeout (0.3 s)" in result.stdout
    assert result.returncode == 2
    # Hang guard only: the link gives up after the second unanswered request.
    assert result.elapsed < 30


def test_check_cycle_longer_than_scan_interval(simulator):
    # 9 requests, each replied to 0.1 s late, cannot fit a 0.5 s period.
    device = simulator("--profile", "sma_sunny_tripower", "--latency", "0.1")
    result = run_check(port=device.port, profile="sma_sunny_tripower", SCAN_INTERVAL_S=0.5)
    assert codes(result) == ["slow_cycle"], result.stdout + result.stderr
    assert "longer than SCAN_INTERVAL_S=0.5" in result.stdout
    assert result.returncode == 1


def test_check_devices_together_longer_than_scan_interval(simulator):
    # Each device's 9 requests take at least 0.45 s, which fits a 1 s period. Both
    # devices together, one after the other, take at least 0.9 s.
    first, second = [simulator("--profile", "sma_sunny_tripower", "--latency", "0.05")
                     for _number in range(2)]
    result = run_check(profile="sma_sunny_tripower", DEVICES="first,second",
                       DEVICE_FIRST_PORT=first.port, DEVICE_SECOND_PORT=second.port)
    assert codes(result) == ["ok", "ok"], result.stdout + result.stderr
    assert re.search(r"bessai check: warning: the devices' reads take \d\.\d\d s per cycle "
                     r"in all \(first \d\.\d\d s, second \d\.\d\d s\), too much of "
                     r"SCAN_INTERVAL_S=1", result.stderr), result.stderr
    assert result.returncode == 1


def test_check_slow_device_late_replies(simulator):
    # Every reply comes 0.4 s after its request timed out, well before the second
    # request's timeout ends, so the check reads it as a late reply, not as silence.
    device = simulator("--capture", VICTRON, "--latency", "1.4")
    result = run_check(port=device.port, REQUEST_TIMEOUT_S=1)
    assert codes(result) == ["slow_replies"], result.stdout + result.stderr
    assert "only after the request timeout of 1 s" in result.stdout
    assert "Raise REQUEST_TIMEOUT_S" in result.stdout
    assert result.returncode == 2


def test_check_wrong_transaction_id_named():
    # The server replies at once, but with the next transaction id: no timeout is long
    # enough, so the diagnosis must not suggest raising REQUEST_TIMEOUT_S.
    def respond(frame):
        transaction_id, unit_id, function_code, _, count = request_fields(frame)
        return [(0, reply(transaction_id + 1, unit_id, registers_pdu(function_code, [7] * count)))]

    with CraftedServer(respond) as server:
        result = run_check(port=server.port, profile="sma_sunny_tripower", REQUEST_TIMEOUT_S=0.5)
    assert codes(result) == ["wrong_transaction_id"], result.stdout + result.stderr
    assert "does not copy the request's transaction id" in result.stdout
    assert "REQUEST_TIMEOUT_S" not in result.stdout
    assert result.returncode == 2


def _wrong_function(frame):
    transaction_id, unit_id, function_code, _, count = request_fields(frame)
    return [(0, reply(transaction_id, unit_id, registers_pdu(function_code + 1, [7] * count)))]


def _one_register_short(frame):
    transaction_id, unit_id, function_code, _, count = request_fields(frame)
    return [(0, reply(transaction_id, unit_id, registers_pdu(function_code, [7] * (count - 1))))]


def _header_then_silence(frame):
    transaction_id, unit_id, function_code, _, count = request_fields(frame)
    return [(0, reply(transaction_id, unit_id, registers_pdu(function_code, [7] * count))[:9])]


@pytest.mark.parametrize("respond, code, absent_text", [
    # Malformed replies were blamed on the profile (nothing_read).
    (_wrong_function, "malformed_replies", "DRIVER_PROFILE_PATH"),
    (_one_register_short, "malformed_replies", "DRIVER_PROFILE_PATH"),
    # Part of each reply, then nothing, was taken for a silent device in standby.
    (_header_then_silence, "partial_replies", "standby"),
])
def test_check_faulty_replies_named(respond, code, absent_text):
    with CraftedServer(respond) as server:
        result = run_check(port=server.port, profile="sma_sunny_tripower", REQUEST_TIMEOUT_S=0.3)
    assert codes(result) == [code], result.stdout + result.stderr
    assert absent_text not in result.stdout.split("Diagnosis:")[-1]
    assert result.returncode == 2


def test_check_duplicate_replies_not_late():
    # A device that sent every reply twice got the advice to raise REQUEST_TIMEOUT_S: its
    # second copies were counted as replies that came after a timeout.
    def respond(frame):
        transaction_id, unit_id, function_code, _, count = request_fields(frame)
        answer = reply(transaction_id, unit_id, registers_pdu(function_code, [7] * count))
        return [(0, answer), (0.01, answer)]

    with CraftedServer(respond) as server:
        result = run_check(port=server.port, profile="sma_sunny_tripower", REQUEST_TIMEOUT_S=1)
    assert "late_replies" not in codes(result), result.stdout
    assert "REQUEST_TIMEOUT_S" not in result.stdout.split("Diagnosis:")[-1]


def test_check_one_late_reply_named(simulator):
    # Only the second request is slow: its reply is discarded while the third waits.
    device = simulator("--profile", "sma_sunny_tripower", "--latency", "1.4",
                       "--latency-requests", "2")
    result = run_check(port=device.port, profile="sma_sunny_tripower", REQUEST_TIMEOUT_S=1)
    assert codes(result) == ["some_requests_failed", "late_replies"], result.stdout
    assert "(timeout x1)" in result.stdout
    assert "1 reply came after the request timeout of 1 s and was discarded" in result.stdout
    assert result.returncode == 1


def test_check_connection_dropped_every_request(simulator):
    device = simulator("--capture", VICTRON, "--disconnect-every", "1")
    result = run_check(port=device.port)
    assert codes(result) == ["connection_dropped"]
    assert result.returncode == 2


def test_check_drop_at_one_request(simulator):
    # A device that hangs up at one request: check named connection_dropped and read
    # none of the other requests, which `bessai run` reads.
    device = simulator("--profile", "huawei_sun2000", "--disconnect-at", "32008")
    result = run_check(port=device.port, profile="huawei_sun2000")
    assert codes(result) == ["connection_dropped_at_request"], result.stdout
    assert ("The device closes the connection instead of replying to the request for "
            "registers 32008..32010 (unit id 1, function 3); the other requests were "
            "read.") in result.stdout
    assert "not sent, link down" not in result.stdout
    assert re.search(r"soc_pct=\d", result.stdout), result.stdout
    assert result.returncode == 1


def test_check_role_exception_11_victron_advice(simulator):
    # Only the battery monitor replies (unit id 247). The message called the main role
    # "main", never offered MODBUS_UNIT_VEBUS=off and listed other makes' unit ids.
    device = simulator("--capture", VICTRON_BATTERY)
    result = run_check(port=device.port, MODBUS_UNIT_BATTERY=247)
    diagnosis = result.stdout.split("Diagnosis:")[-1]
    assert codes(result) == ["unit_exception_11"], result.stdout
    assert "Unit ids 100 (role system), 227 (role vebus) answered" in diagnosis
    assert ("If the site has no vebus part, set MODBUS_UNIT_VEBUS=off instead, so that its "
            "points are not read.") in diagnosis
    assert "Typical unit ids: Victron GX 100 (VE.Bus 227 on a Cerbo GX" in diagnosis
    assert "Huawei" not in diagnosis
    assert "SMA" not in diagnosis
    assert "MODBUS_SLAVE_ID=off" not in diagnosis


@pytest.mark.parametrize("rated_kw, expected", [
    ("5000", "warns at 5000 kW (LIMIT_BATTERY_POWER_HIGH_WARN, LIMIT_BATTERY_POWER_LOW_WARN), "
             "more than ten times"),   # watts written as kW
    ("0.2", "warns at 0.2 kW (LIMIT_BATTERY_POWER_HIGH_WARN, LIMIT_BATTERY_POWER_LOW_WARN), "
            "less than a tenth"),
])
def test_check_rated_power_far_from_device(simulator, rated_kw, expected):
    # The simulated Huawei battery reports 5 kW maximum charge and discharge power.
    device = simulator("--profile", "huawei_sun2000")
    result = run_check(port=device.port, profile="huawei_sun2000",
                       BATTERY_RATED_POWER_KW=rated_kw)
    assert codes(result) == ["rated_power_mismatch"], result.stdout
    assert expected in result.stdout
    assert "(5 kW)" in result.stdout
    assert result.returncode == 1


def test_check_rated_power_near_device_ok(simulator):
    device = simulator("--profile", "huawei_sun2000")
    result = run_check(port=device.port, profile="huawei_sun2000", BATTERY_RATED_POWER_KW="6")
    assert codes(result) == ["ok"], result.stdout
    assert result.returncode == 0


def test_check_privileged_health_port_warned(simulator):
    # HEALTH_LISTEN=127.0.0.1:80 passed check, and the service then served no /health.
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as stream:
        lowest = int(stream.read())
    device = simulator("--profile", "huawei_sun2000")
    low = run_check(port=device.port, profile="huawei_sun2000", HEALTH_LISTEN="127.0.0.1:80")
    high = run_check(port=device.port, profile="huawei_sun2000",
                     HEALTH_LISTEN="127.0.0.1:8000")
    warning = "bessai check: warning: the installed service cannot listen on HEALTH_LISTEN port"
    assert (f"{warning} 80: ports below {lowest} need the CAP_NET_BIND_SERVICE capability"
            in low.stderr) is (lowest > 80), low.stderr
    assert warning not in high.stderr
    assert low.returncode == 0  # a service warning, like the spool's: not a device problem


def test_check_soc_always_zero_means_wrong_profile(simulator):
    device = simulator("--profile", "sma_sunny_tripower", "--set", "soc_pct=0")
    result = run_check(port=device.port, profile="sma_sunny_tripower")
    assert codes(result) == ["soc_zero"]
    assert "DRIVER_PROFILE_PATH" in result.stdout
    assert result.returncode == 1


def test_check_soc_above_100_flagged(simulator):
    # A state of charge of 4659.5 % (a byte-swapped u16) passed check as "[ok]".
    device = simulator("--profile", "sma_sunny_tripower", "--set", "soc_pct=250")
    result = run_check(port=device.port, profile="sma_sunny_tripower")
    assert codes(result) == ["soc_out_of_range"]
    assert "250 %, outside 0 to 100 %" in result.stdout
    assert result.returncode == 1


def test_check_soc_not_available_flagged(simulator):
    # The battery's main value reading "not available" ended in "[ok] All 47 points read",
    # while `bessai run` then raised soc_pct:stale.
    device = simulator("--profile", "huawei_sun2000", "--sentinel", "soc_pct")
    result = run_check(port=device.port, profile="huawei_sun2000")
    assert codes(result) == ["soc_not_available"]
    assert ("State of charge reads 'not available' (point storage_state_of_capacity), so "
            "`bessai run` would raise the soc_pct:stale alarm") in result.stdout
    assert result.returncode == 1


def test_check_wrong_profile_every_address_rejected(simulator):
    device = simulator("--capture", SMA)
    result = run_check(port=device.port, MODBUS_SLAVE_ID=3, MODBUS_UNIT_VEBUS=3,
                       MODBUS_UNIT_BATTERY=3)
    assert codes(result) == ["all_illegal_address"]
    assert result.returncode == 2


def test_check_busy_reply_tried_again(simulator):
    # Every third reply is exception 6. The link tries each such request once more,
    # for check as for `bessai run`, and the retry gets a normal reply.
    device = simulator("--profile", "victron_multiplus", "--busy-every", "3")
    result = run_check(port=device.port)
    assert codes(result) == ["busy_replies"], result.stdout
    assert "All " not in result.stdout
    assert result.returncode == 1


def test_check_busy_every_other_reply_warned(simulator):
    # Every second reply is exception 6: the first request is read at once, and each
    # later one on its second try, because the retry of the one before took a reply.
    device = simulator("--profile", "huawei_sun2000", "--busy-every", "2")
    result = run_check(port=device.port, profile="huawei_sun2000", SCAN_INTERVAL_S=5)
    assert codes(result) == ["busy_replies"], result.stdout
    assert (f"The device at 127.0.0.1:{device.port} answered 5 of 6 requests with exception "
            "6 (device busy) and served them when asked again") in result.stdout
    assert "another Modbus client probably polls the device" in result.stdout
    assert "Stop the other Modbus client" in result.stdout
    assert "raise SCAN_INTERVAL_S" in result.stdout
    assert result.returncode == 1


def test_check_night_sentinels_read_not_available(simulator):
    device = simulator("--profile", "sma_sunny_tripower", "--sentinel", "GridMs.TotW",
                       "--sentinel", "soc_pct")
    result = run_check("--json", port=device.port, profile="sma_sunny_tripower")
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())
            if "name" in row}
    assert rows["GridMs.TotW"]["value"] is None
    assert rows["GridMs.TotW"]["quality"] == "not_available"
    assert rows["Bat.ChaStt"]["quality"] == "not_available"
    assert rows["GridMs.Hz"]["quality"] == "ok"
    # A night without battery values is normal, but `bessai run` would raise soc_pct:stale.
    assert result.returncode == 1
    assert "bessai check: inverter: warning [soc_not_available]" in result.stderr


def test_check_simulator_mode_starts_its_own_simulator():
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000")
    assert codes(result) == ["ok"], result.stdout + result.stderr
    assert result.returncode == 0


def test_check_warns_missing_spool_dir(tmp_path):
    # check used to print [ok] for a spool directory that `bessai run` then rejected.
    missing = tmp_path / "absent"
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000",
                       SPOOL_DIR=missing)
    assert codes(result) == ["ok"], result.stdout + result.stderr
    assert result.returncode == 0
    assert (f"bessai check: warning: `bessai run` will not start: spool directory {missing} "
            "does not exist") in result.stderr


@pytest.mark.root
def test_check_warns_read_only_spool_dir(tmp_path, needs_root):
    # check printed [ok], then `bessai run` exited 78 on the read-only file system.
    with read_only_spool_dir(tmp_path) as spool_dir:
        result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000",
                           SPOOL_DIR=spool_dir)
    assert codes(result) == ["ok"], result.stdout + result.stderr
    assert result.returncode == 0
    assert (f"bessai check: warning: `bessai run` will not start: spool directory {spool_dir} "
            "is on a read-only file system: remount it read-write") in result.stderr


def test_check_warning_after_table_in_one_pipe(tmp_path):
    # Both streams into one pipe: the table, buffered on stdout, came after the warning.
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000",
                       SPOOL_DIR=tmp_path / "absent", merged=True)
    output = result.stdout
    assert output.index("Diagnosis:") < output.index("`bessai run` will not start"), output


def test_check_no_warning_with_spool_dir(tmp_path):
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000",
                       SPOOL_DIR=tmp_path)
    assert result.returncode == 0
    # The clock warning depends on the machine's NTP status: tests/check/test_check_clock.py
    warnings = [line for line in result.stderr.splitlines()
                if "warning" in line and "system clock" not in line]
    assert warnings == []


def test_check_warns_forwarder_settings(tmp_path):
    # check passed settings that then stopped bessai-forward with exit 78.
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000",
                       SPOOL_DIR=tmp_path, MQTT_ENABLED="true", MQTT_BROKER_HOST="127.0.0.1",
                       MQTT_PORT="99999", FORWARD_STATE_DIR=tmp_path)
    assert codes(result) == ["ok"], result.stdout + result.stderr
    assert result.returncode == 0
    assert ("bessai check: warning: `bessai forward` will not start: MQTT_PORT='99999' is "
            "invalid") in result.stderr


def test_check_warns_missing_forward_state_dir(tmp_path):
    # check passed, and bessai forward then stopped with exit 78 on the missing directory.
    missing = tmp_path / "nonexistent"
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000",
                       SPOOL_DIR=tmp_path, MQTT_ENABLED="true", MQTT_BROKER_HOST="127.0.0.1",
                       FORWARD_STATE_DIR=missing)
    assert codes(result) == ["ok"], result.stdout + result.stderr
    assert result.returncode == 0
    assert (f"bessai check: warning: `bessai forward` will not start: "
            f"FORWARD_STATE_DIR='{missing}' does not exist: create it") in result.stderr


def test_check_ignores_state_dir_when_forwarding_off(tmp_path):
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000",
                       SPOOL_DIR=tmp_path, MQTT_ENABLED="false",
                       FORWARD_STATE_DIR=tmp_path / "nonexistent")
    assert result.returncode == 0
    assert "FORWARD_STATE_DIR" not in result.stderr, result.stderr


def test_check_warns_misspelt_forwarder_switch(tmp_path):
    # Only the forwarder checks MQTT_ names: `bessai run` passes MQTT_ENABLD, and the
    # forwarder then stops with exit 78.
    env_file = tmp_path / "bessai.env"
    env_file.write_text(f"SITE_ID=check-test\nBESSAI_MODE=simulator\n"
                        f"DRIVER_PROFILE_PATH=huawei_sun2000\nSPOOL_DIR={tmp_path}\n"
                        f"MQTT_ENABLD=true\n")
    result = run_check(env_file=env_file, profile="huawei_sun2000")
    assert codes(result) == ["ok"], result.stdout + result.stderr
    assert (f"bessai check: warning: `bessai forward` will not start: {env_file}:5: "
            "MQTT_ENABLD is not a setting of bessai forward: did you mean MQTT_ENABLED?"
            ) in result.stderr


def test_check_unknown_device_gets_suggestion(tmp_path):
    result = run_check("--device", "batery", BESSAI_MODE="simulator", INVERTER_IP="",
                       profile="huawei_sun2000", DEVICES="inverter,battery",
                       DEVICE_BATTERY_PROFILE="huawei_sun2000", SPOOL_DIR=tmp_path)
    assert result.returncode == EX_CONFIG
    assert result.stderr.strip() == ("bessai: --device batery: no such device; configured "
                                     "devices: inverter, battery; did you mean battery?")


def test_check_ok_label_and_rounded_fields():
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile="huawei_sun2000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  [ok] All 47 points read" in result.stdout
    assert "ok: ok" not in result.stdout
    fields = next(line for line in result.stdout.splitlines()
                  if line.startswith("Canonical fields: "))
    # The simulated meter reads 0 W, which a field_scale of -0.001 turns into -0.0.
    assert " grid_power_kw=0 " in fields
    assert not re.search(r"=-0(\s|$)", fields), fields


def test_check_env_file_settings(simulator, tmp_path):
    device = simulator("--profile", "victron_multiplus")
    env_file = tmp_path / "bessai.env"
    env_file.write_text(f"SITE_ID=from-file\nINVERTER_IP=127.0.0.1\nINVERTER_PORT={device.port}\n"
                        "DRIVER_PROFILE_PATH=registry/victron_multiplus.json\n")
    result = run_check(env_file=env_file)
    assert codes(result) == ["ok"], result.stdout + result.stderr


@pytest.mark.parametrize("variables,named", [
    ({"INVERTER_PORT": "70000"}, "INVERTER_PORT"),
    ({"DRIVER_PROFILE_PATH": "no_such_profile"}, "no_such_profile"),
    ({"SITE_ID": ""}, "SITE_ID"),
])
def test_check_invalid_settings_exit_78(variables, named):
    result = run_check(**variables)
    assert result.returncode == 78
    assert named in result.stderr


def test_check_unknown_device_exit_78():
    result = run_check("--device", "battery", port=free_tcp_port())
    assert result.returncode == 78
    assert "battery" in result.stderr


def test_check_silent_sunspec_device_is_standby(simulator):
    device = simulator("--profile", "fronius_gen24", "--silent")
    result = run_check(port=device.port, profile="fronius_gen24", REQUEST_TIMEOUT_S=0.3)
    assert codes(result) == ["all_timeouts"]
    assert result.returncode == 2


def test_check_sunspec_wrong_unit_id(simulator):
    device = simulator("--profile", "fronius_gen24")
    result = run_check(port=device.port, profile="fronius_gen24", MODBUS_SLAVE_ID=9)
    assert codes(result) == ["sunspec_not_found"]
    assert "MODBUS_SLAVE_ID" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "sunspec_not_found" in line)
    # The unit id and the advice once each, not again from the marker search.
    assert "on unit id 9: no marker 'SunS' (0x5375 0x6e53) at 40000: " in line, line
    assert line.count("unit id 9") + line.count("unit 9") == 1, line
    assert "check that the device has SunSpec Modbus enabled" not in line
    assert result.returncode == 2


def test_check_vebus_id_as_main_unit_id(simulator):
    # The VE.Bus unit id given as the main one: the system points (SOC, battery power)
    # were rejected, and check reported only "rejected_addresses ... normal for registers a
    # model does not have".
    device = simulator("--profile", "victron_multiplus")
    result = run_check(port=device.port, MODBUS_SLAVE_ID=227)
    assert codes(result) == ["rejected_addresses", "main_values_rejected"], result.stdout
    line = next(line for line in result.stdout.splitlines() if "main_values_rejected" in line)
    assert re.search(r"no value for the main values [a-z_, ]*soc_pct", line), line
    assert "MODBUS_SLAVE_ID (now 227) is the unit id of another part of the device" in line
    assert result.returncode == 1


def test_check_quiet_after_connect_too_short(simulator):
    # A device that ignores requests for 1.3 s after a connect, while the profile waits
    # 1 s: check read it (the second request came later), and `bessai run` loses the
    # first cycle after each connect.
    device = simulator("--profile", "huawei_sun2000", "--quiet-after-accept", "1.3")
    result = run_check(port=device.port, profile="huawei_sun2000", REQUEST_TIMEOUT_S=0.6)
    assert codes(result) == ["quiet_after_connect"], result.stdout
    assert "[warning: quiet_after_connect]" in result.stdout
    assert "(quiet_after_connect_s, now 1 s)" in result.stdout
    assert "reads it from the next cycle" in result.stdout
    assert "raise its quiet_after_connect_s" in result.stdout
    assert result.returncode == 1


def test_check_sunspec_profile_on_huawei_names_profile(simulator):
    # A SunSpec profile on a Huawei got only "enable SunSpec ... or check MODBUS_SLAVE_ID".
    device = simulator("--profile", "huawei_sun2000")
    result = run_check(port=device.port, profile="fronius_gen24")
    assert codes(result) == ["sunspec_not_found"]
    assert "set DRIVER_PROFILE_PATH to its make's profile" in result.stdout
    assert result.returncode == 2


def test_check_device_without_main_fields_is_not_ok(simulator):
    # A SunSpec device with only models 1 and 129 has none of the fields profile sunspec
    # maps: every point of them is "not on the device", which must not read as "ok".
    device = simulator("--capture", str(CAPTURES / "sunspec_pysunspec2_inverter_123_m1_m129.json"))
    result = run_check(port=device.port, profile="sunspec")
    assert codes(result) == ["main_fields_missing"], result.stdout[-2000:]
    assert "All " not in result.stdout
    assert "DRIVER_PROFILE_PATH" in result.stdout
    assert result.returncode == 1


def test_check_other_makes_profile_reads_nothing(simulator):
    # Victron's profile against a Huawei: exception 2 on unit 1, exception 11 on the
    # Victron unit ids 225 and 227. No value is read, so it is an error, exit 2.
    device = simulator("--profile", "huawei_sun2000")
    result = run_check(port=device.port, profile="victron_multiplus", MODBUS_SLAVE_ID="1")
    assert codes(result) == ["nothing_read"], result.stdout[-2000:]
    assert "DRIVER_PROFILE_PATH probably names the wrong profile" in result.stdout
    assert result.returncode == 2


def test_check_all_rejected_suggests_profile(simulator):
    device = simulator("--profile", "victron_multiplus", "--exception", "0-65535=1")
    result = run_check(port=device.port)
    assert codes(result) == ["all_requests_rejected"], result.stdout[-2000:]
    assert "(exception 1 x8)" in result.stdout  # the summary names the outcome in words
    assert "DRIVER_PROFILE_PATH" in result.stdout
    assert result.returncode == 2


def test_check_json_summary_severity_in_spanish(simulator):
    # Exception 4 (server device failure) on the first request: one request fails.
    device = simulator("--profile", "victron_multiplus", "--exception", "808=4")
    result = run_check("--json", port=device.port, LANG="es_CL.UTF-8")
    assert "bessai check: inverter: aviso [some_requests_failed]" in result.stderr, \
        result.stderr


def test_check_warns_profile_relative_to_directory(simulator, tmp_path):
    # The service runs in /, so a profile that check finds in the current directory
    # would not be found there: check passed while the service exited 78.
    profile = tmp_path / "own.json"
    profile.write_text((bundled_profiles_dir() / "victron_multiplus.json").read_text())
    device = simulator("--profile", "victron_multiplus")
    relative = run_check(port=device.port, profile="own.json", cwd=tmp_path)
    absolute = run_check(port=device.port, profile=str(profile), cwd=tmp_path)
    bundled = run_check(port=device.port, profile="registry/victron_multiplus.json",
                        cwd=tmp_path)

    assert relative.returncode == 0, relative.stdout + relative.stderr
    assert (f"the profile own.json of device inverter was found in the current directory "
            f"{tmp_path}, but the installed services run in /, where it is not found: give "
            f"its absolute path, {profile}") in relative.stderr
    assert "current directory" not in absolute.stderr
    assert "current directory" not in bundled.stderr


def test_check_warns_of_limit_without_field(tmp_path):
    profile = json.loads((bundled_profiles_dir() / "sma_sunny_tripower.json").read_text())
    for point in profile["points"]:
        if point.get("field") == "soc_pct":
            del point["field"]
    profile_path = tmp_path / "sma_no_soc.json"
    profile_path.write_text(json.dumps(profile))
    result = run_check(BESSAI_MODE="simulator", INVERTER_IP="", profile=str(profile_path),
                       LIMIT_SOC_LOW_WARN="20")
    assert ("bessai check: warning: LIMIT_SOC_LOW_WARN is set, but no device's profile maps "
            "soc_pct, so that limit is never checked") in result.stderr


def test_check_warns_of_outage_cost(tmp_path):
    # Each cycle waits out a silent device's timeouts before the devices after it.
    variables = {"BESSAI_MODE": "simulator", "INVERTER_IP": "", "DEVICES": "huawei,sma",
                 "DEVICE_HUAWEI_PROFILE": "huawei_sun2000",
                 "DEVICE_SMA_PROFILE": "sma_sunny_tripower"}
    result = run_check(**variables)
    assert ("each cycle waits for it up to its quiet time after connect plus its request "
            "timeout, or its connect timeout (huawei 6 s, sma 3 s), more than "
            "SCAN_INTERVAL_S=1") in result.stderr
    assert "otherwise set SCAN_INTERVAL_S to 9 or more" in result.stderr
    # The Huawei profile's 1 s quiet time counts too: 1.5 s is still more than 1 s.
    short = run_check(**variables, REQUEST_TIMEOUT_S="0.5", CONNECT_TIMEOUT_S="0.5")
    assert "connect timeout (huawei 1.5 s), more than SCAN_INTERVAL_S=1" in short.stderr
    assert "otherwise set SCAN_INTERVAL_S to 2.3 or more" in short.stderr
    fits = run_check(**variables, REQUEST_TIMEOUT_S="0.5", CONNECT_TIMEOUT_S="0.5",
                     SCAN_INTERVAL_S="2")
    assert "each cycle waits" not in fits.stderr
