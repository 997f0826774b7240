"""Settings: defaults, every bad value with its own message, devices, env-file merging."""

import math
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import pytest

from bessai_edge import alarms, settings
from bessai_edge.errors import EX_CONFIG, ConfigError
from bessai_edge.spool import segments  # noqa: F401 (imported before a child drops root)
from tests.conftest import REPO, bessai_command
from tests.settings.helpers import NOBODY, call_as_nobody, read_only_spool_dir

MINIMAL = {"SITE_ID": "SITE-ATACAMA-001", "INVERTER_IP": "192.168.1.100",
           "DRIVER_PROFILE_PATH": "huawei_sun2000"}


def problems_of(**overrides):
    """Return the problem lines for MINIMAL with ``overrides`` (None removes a variable)."""
    environ = dict(MINIMAL)
    for name, value in overrides.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    with pytest.raises(ConfigError) as caught:
        settings.load_settings(environ)
    return caught.value.problems


def env_file_problems(tmp_path, data):
    """Return ``(file path, problem lines)`` for an env file holding the bytes ``data``."""
    env_file = tmp_path / "bessai.env"
    env_file.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        settings.load_settings(settings.read_environment(str(env_file), {}))
    return env_file, caught.value.problems


def test_settings_minimal_defaults():
    loaded = settings.load_settings(MINIMAL)
    device, = loaded.devices
    assert loaded.site_id == "SITE-ATACAMA-001"
    assert loaded.mode == "modbus"
    assert device.name == "inverter"
    assert device.host == "192.168.1.100"
    assert device.port is None
    assert device.unit_id is None
    assert loaded.scan_interval_s == 1.0
    assert loaded.spool.directory == "/var/spool/bessai"
    assert loaded.health_listen == ("127.0.0.1", 8000)
    assert loaded.log_level == "info"
    assert loaded.request_timeout_s is None


def test_settings_typed_values():
    loaded = settings.load_settings({
        **MINIMAL, "INVERTER_PORT": "1502", "MODBUS_SLAVE_ID": "3", "SCAN_INTERVAL_S": "0.5",
        "SPOOL_SEGMENT_MAX_BYTES": "1M", "SPOOL_MAX_TOTAL_BYTES": "64MiB",
        "HEALTH_LISTEN": "[::1]:9100", "LOG_LEVEL": "DEBUG", "MODBUS_UNIT_VEBUS": "227",
        "REQUEST_TIMEOUT_S": "0.8", "DRIVER_PROFILE_PATH": "victron_multiplus"})
    device, = loaded.devices
    assert device.port == 1502
    assert device.unit_id == 3
    assert device.unit_ids == {"vebus": 227}
    assert loaded.scan_interval_s == 0.5
    assert loaded.spool.segment_max_bytes == 1024 ** 2
    assert loaded.spool.max_total_bytes == 64 * 1024 ** 2
    assert loaded.health_listen == ("::1", 9100)
    assert loaded.log_level == "debug"
    assert loaded.request_timeout_s == 0.8


def test_settings_simulator_mode_needs_no_address():
    loaded = settings.load_settings({**MINIMAL, "BESSAI_MODE": "simulator", "INVERTER_IP": ""})
    assert loaded.mode == "simulator"
    assert loaded.devices[0].host == ""


@pytest.mark.parametrize("written", ["", "off", "OFF", "none"])
def test_settings_health_listen_off(written):
    loaded = settings.load_settings({**MINIMAL, "HEALTH_LISTEN": written})
    assert loaded.health_listen is None


def test_settings_mqtt_variables_accepted():
    loaded = settings.load_settings({**MINIMAL, "MQTT_ENABLED": "true",
                                     "MQTT_BROKER_HOST": "192.168.1.200"})
    assert loaded.mqtt_enabled == "true"
    assert loaded.mqtt_broker_host == "192.168.1.200"


# One case per invalid setting: (variables, text the one problem line must contain).
BAD_SETTINGS = [
    ({"SITE_ID": None}, "SITE_ID is missing"),
    ({"SITE_ID": "site/1"}, "SITE_ID='site/1' is invalid: expected 1 to 64 ASCII letters (no "
                            "accents or ñ), digits, '.', '_' or '-', starting with a letter or "
                            "digit"),
    ({"SITE_ID": "-site"}, "SITE_ID='-site' is invalid: expected 1 to 64 ASCII letters"),
    ({"BESSAI_MODE": "docker"}, "BESSAI_MODE='docker' is invalid: expected one of modbus, simulator"),
    ({"INVERTER_IP": None}, "INVERTER_IP is missing"),
    ({"INVERTER_IP": "192.168.1.100:502"},
     "INVERTER_IP='192.168.1.100:502' is invalid: expected an IPv4 or IPv6 address or a host "
     "name, without a port (set the port in INVERTER_PORT)"),
    ({"INVERTER_IP": "999.1.1.1"},
     "INVERTER_IP='999.1.1.1' is invalid: expected an IPv4 or IPv6 address or a host name"),
    ({"INVERTER_IP": "192.168.1.10 # inverter"},
     "INVERTER_IP='192.168.1.10 # inverter' is invalid: expected an IPv4 or IPv6 address or a "
     "host name; a comment ('#' or ';') after the value is part of it, so put the comment on "
     "its own line"),
    ({"INVERTER_PORT": "70000"}, "INVERTER_PORT='70000' is invalid: expected an integer from 1 to 65535"),
    ({"INVERTER_PORT": "modbus"}, "INVERTER_PORT='modbus' is invalid"),
    ({"DRIVER_PROFILE_PATH": None}, "DRIVER_PROFILE_PATH is missing"),
    ({"DRIVER_PROFILE_PATH": "huawei_sun3000"},
     "DRIVER_PROFILE_PATH='huawei_sun3000' is invalid: profile 'huawei_sun3000': file not found"),
    ({"MODBUS_SLAVE_ID": "248"}, "MODBUS_SLAVE_ID='248' is invalid: expected an integer from 0 to 247"),
    # int() and float() accept these, and a typo would silently pick another value.
    ({"MODBUS_SLAVE_ID": "1_0"}, "MODBUS_SLAVE_ID='1_0' is invalid: expected an integer"),
    ({"MODBUS_SLAVE_ID": "0x10"}, "MODBUS_SLAVE_ID='0x10' is invalid: expected an integer"),
    ({"MODBUS_SLAVE_ID": "\u0663"}, "is invalid: expected an integer from 0 to 247"),
    ({"SCAN_INTERVAL_S": "1_0"}, "SCAN_INTERVAL_S='1_0' is invalid: expected a number"),
    ({"MODBUS_UNIT_VEBUS": "-1"}, "MODBUS_UNIT_VEBUS='-1' is invalid"),
    ({"MODBUS_UNIT_GRID": "248"}, "MODBUS_UNIT_GRID='248' is invalid: expected an integer from 0 to 247"),
    ({"MODBUS_UNIT_ve-bus": "5"}, "MODBUS_UNIT_ve-bus='5' is invalid"),
    ({"MODBUS_UNIT_2ND": "5"}, "MODBUS_UNIT_2ND='5' is invalid: the role after MODBUS_UNIT_ must be"),
    ({"MODBUS_UNIT_MAIN": "7"}, "MODBUS_UNIT_MAIN='7' is invalid: the main unit id is the "
                                "device's own; set it with MODBUS_SLAVE_ID"),
    ({"MODBUS_UNIT_ID": "3"}, "MODBUS_UNIT_ID='3' is invalid: MODBUS_UNIT_<ROLE> sets the unit id "
                              "of a profile's role, and no role is called ID; set the device's "
                              "own unit id with MODBUS_SLAVE_ID"),
    ({"SCAN_INTERVAL_S": "0"}, "SCAN_INTERVAL_S='0' is invalid: expected a number from 0.05 to 3600"),
    ({"SCAN_INTERVAL_S": "1s"}, "SCAN_INTERVAL_S='1s' is invalid"),
    ({"CONNECT_TIMEOUT_S": "nan"}, "CONNECT_TIMEOUT_S='nan' is invalid"),
    ({"REQUEST_TIMEOUT_S": "60"}, "REQUEST_TIMEOUT_S='60' is invalid: expected a number from 0.05 to 30"),
    ({"SPOOL_DIR": "spool"}, "SPOOL_DIR='spool' is invalid: expected an absolute path"),
    ({"SPOOL_DIR": ".hid"}, "SPOOL_DIR='.hid' is invalid: expected an absolute path"),
    ({"SPOOL_DIR": ".cache/spool"}, "or a path relative to the working directory that starts with ./ or ../"),
    ({"SPOOL_DIR": "var/spool/bessai"}, "SPOOL_DIR='var/spool/bessai' is invalid"),
    ({"SPOOL_SEGMENT_MAX_BYTES": "16X"}, "SPOOL_SEGMENT_MAX_BYTES='16X' is invalid"),
    ({"SPOOL_MAX_TOTAL_BYTES": "100"}, "SPOOL_MAX_TOTAL_BYTES='100' is invalid: expected a whole number from 8192 bytes to 1024G"),
    ({"SPOOL_MAX_TOTAL_BYTES": "2000G"}, "SPOOL_MAX_TOTAL_BYTES='2000G' is invalid: expected a whole number from 8192"),
    ({"SPOOL_MAX_TOTAL_BYTES": "1.5G"}, "SPOOL_MAX_TOTAL_BYTES='1.5G' is invalid: expected a whole number"),
    ({"SPOOL_SEGMENT_MAX_BYTES": "1G"}, "SPOOL_MAX_TOTAL_BYTES=536870912 bytes (default) is "
     "less than twice SPOOL_SEGMENT_MAX_BYTES=1G (1073741824 bytes)"),
    ({"SPOOL_FSYNC_INTERVAL_S": "-1"}, "SPOOL_FSYNC_INTERVAL_S='-1' is invalid"),
    ({"HEALTH_LISTEN": "8000"}, "HEALTH_LISTEN='8000' is invalid: expected HOST:PORT"),
    ({"HEALTH_LISTEN": "127.0.0.1:99999"}, "HEALTH_LISTEN='127.0.0.1:99999' is invalid"),
    ({"HEALTH_LISTEN": "example.com:8000"}, "where HOST is an IP address or localhost"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose' is invalid: expected one of debug, info, warning, error"),
    ({"LIMIT_SOC_LOW_WARN": "50", "LIMIT_SOC_HIGH_WARN": "40"},
     "LIMIT_SOC_LOW_WARN=50 is above LIMIT_SOC_HIGH_WARN=40"),
    ({"LIMIT_BATTERY_TEMP_HIGH_TRIP": "hot"},
     "LIMIT_BATTERY_TEMP_HIGH_TRIP='hot' is invalid: expected a number, or off"),
    ({"LIMIT_SOC_LOW_WARN": "inf"}, "LIMIT_SOC_LOW_WARN='inf' is invalid: expected a number, or off"),
    ({"LIMIT_SOC_HYSTERESIS": "-1"}, "LIMIT_SOC_HYSTERESIS='-1' is invalid: expected a number from 0 to 20"),
    ({"LIMIT_DEBOUNCE_CYCLES": "0"}, "LIMIT_DEBOUNCE_CYCLES='0' is invalid"),
    ({"STALE_AFTER_S": "-5"}, "STALE_AFTER_S='-5' is invalid: expected a positive number of seconds, or off"),
    ({"STALE_AFTER_S": "never"},
     "STALE_AFTER_S='never' is invalid: expected a positive number of seconds, or off"),
    ({"STALE_AFTER_S": "inf"},
     "STALE_AFTER_S='inf' is invalid: expected a positive number of seconds, or off"),
    ({"BATTERY_RATED_POWER_KW": "0"}, "BATTERY_RATED_POWER_KW='0' is invalid: expected a number "
                                      "from 0.1 to 100000 (kW), or off"),
    ({"BATTERY_RATED_POWER_KW": "2,5"}, "not a comma: 2.5"),
    ({"GRID_NOMINAL_FREQUENCY_HZ": "55"}, "GRID_NOMINAL_FREQUENCY_HZ='55' is invalid: expected one of 50, 60"),
    ({"GRID_NOMINAL_FREQUENCY_HZ": "50,0"}, "GRID_NOMINAL_FREQUENCY_HZ='50,0' is invalid: expected "
     "one of 50, 60; write the decimals after a point, not a comma: 50.0"),
    ({"LIMIT_SOC_HIGH_WARN": "120"},
     "LIMIT_SOC_HIGH_WARN='120' is invalid: expected a number from 0 to 100, or off"),
    ({"LIMIT_SOC_LOW_TRIP": "-5"},
     "LIMIT_SOC_LOW_TRIP='-5' is invalid: expected a number from 0 to 100, or off"),
    ({"LIMIT_BATTERY_TEMP_HIGH_TRIP": "450"},
     "LIMIT_BATTERY_TEMP_HIGH_TRIP='450' is invalid: expected a number from -50 to 90, or off"),
    ({"LIMIT_BATTERY_TEMP_HIGH_TRIP": "113"},
     "LIMIT_BATTERY_TEMP_HIGH_TRIP='113' is invalid: expected a number from -50 to 90, or off; "
     "levels are in °C, and 113 °F is 45 °C"),
    ({"LIMIT_GRID_FREQUENCY_HIGH_WARN": "5050"},
     "LIMIT_GRID_FREQUENCY_HIGH_WARN='5050' is invalid: expected a number from 45 to 55, "
     "within 5 Hz of GRID_NOMINAL_FREQUENCY_HZ=50, or off"),
    ({"LIMIT_GRID_FREQUENCY_LOW_TRIP": "58.5"},
     "LIMIT_GRID_FREQUENCY_LOW_TRIP='58.5' is invalid: expected a number from 45 to 55, within "
     "5 Hz of GRID_NOMINAL_FREQUENCY_HZ=50, or off; for a 60 Hz grid set "
     "GRID_NOMINAL_FREQUENCY_HZ=60"),
    ({"LIMIT_GRID_FREQUENCY_HIGH_WARN": "49", "LIMIT_GRID_FREQUENCY_LOW_WARN": "off",
      "LIMIT_GRID_FREQUENCY_LOW_TRIP": "off"},
     "LIMIT_GRID_FREQUENCY_HIGH_WARN='49' is invalid: a HIGH_WARN level must lie above "
     "GRID_NOMINAL_FREQUENCY_HZ=50, or it raises its alarm on a healthy grid"),
    ({"LIMIT_GRID_FREQUENCY_LOW_WARN": "50"},
     "LIMIT_GRID_FREQUENCY_LOW_WARN='50' is invalid: a LOW_WARN level must lie below"),
    ({"LIMIT_SOC_LOW_TRIP": "1_0"}, "LIMIT_SOC_LOW_TRIP='1_0' is invalid: expected a number, or off"),
    ({"GRID_NOMINAL_FREQUENCY_HZ": "6_0"}, "GRID_NOMINAL_FREQUENCY_HZ='6_0' is invalid"),
    ({"LIMIT_BATTERY_POWER_HIGH_WARN": "12", "LIMIT_BATTERY_POWER_HIGH_TRIP": "11"},
     "LIMIT_BATTERY_POWER_HIGH_WARN=12 is above LIMIT_BATTERY_POWER_HIGH_TRIP=11"),
    ({"LIMIT_BATTERY_POWER_HIGH_TRIP": "1234567"},
     "LIMIT_BATTERY_POWER_HIGH_TRIP='1234567' is invalid: expected a number above 0 and at "
     "most 110000 (kW), or off"),
    ({"LIMIT_BATTERY_POWER_LOW_TRIP": "-1e6"},
     "LIMIT_BATTERY_POWER_LOW_TRIP='-1e6' is invalid: expected a number below 0 and at "
     "least -110000 (kW), or off"),
    # A level at 0 or on the wrong side raises its alarm on an idle battery.
    ({"LIMIT_BATTERY_POWER_HIGH_TRIP": "0"},
     "LIMIT_BATTERY_POWER_HIGH_TRIP='0' is invalid: a HIGH level watches charge power, which "
     "is positive: expected a number above 0 (kW), or off"),
    ({"LIMIT_BATTERY_POWER_LOW_WARN": "5"},
     "LIMIT_BATTERY_POWER_LOW_WARN='5' is invalid: a LOW level watches discharge power, which "
     "is negative: expected a number below 0 (kW), e.g. -5, or off"),
    # A hysteresis as large as a level keeps that alarm raised on an idle battery.
    ({"BATTERY_RATED_POWER_KW": "5", "LIMIT_BATTERY_POWER_HYSTERESIS": "1e9"},
     "LIMIT_BATTERY_POWER_HYSTERESIS='1e9' is invalid: expected a number below the smallest "
     "battery power level (5 kW)"),
    ({"LIMIT_SOC_HIGH_WARN": "0.98"},
     "LIMIT_SOC_HIGH_WARN='0.98' is invalid: SOC levels are in %: write 98 for 98 %, not a "
     "fraction"),
    ({"LIMIT_SOC_HYSTERESIS": "200"},
     "LIMIT_SOC_HYSTERESIS='200' is invalid: expected a number from 0 to 20"),
    ({"DEVICES": "inverter,inverter"}, "DEVICES='inverter,inverter' is invalid: expected distinct names"),
    ({"DEVICES": "Main Inverter"}, "DEVICES='Main Inverter' is invalid"),
    ({"DEVICES": "Inverter"}, "DEVICES='Inverter' is invalid: expected distinct names"),
    # The message named no name, so a long list had to be searched by hand.
    ({"DEVICES": "inverter,Battery,bat-2,,inverter"},
     "or '_'; invalid names: 'Battery', 'bat-2', ''; name listed more than once: inverter"),
    ({"DEVICES": "a,b"}, "devices a and b are the same device"),
    ({"DEVICES": "a", "DEVICE_A_PORT": "0"}, "DEVICE_A_PORT='0' is invalid"),
    ({"DEVICES": "a", "DEVICE_A_SLAVE_ID": "248"},
     "DEVICE_A_SLAVE_ID='248' is invalid: expected an integer from 0 to 247"),
    ({"DEVICES": "a", "DEVICE_A_UNIT_ve": "5"}, "DEVICE_A_UNIT_ve='5' is invalid: the role after"),
    ({"DEVICES": "a", "DEVICE_A_UNIT_ID": "5"},
     "DEVICE_A_UNIT_ID='5' is invalid: DEVICE_A_UNIT_<ROLE> sets the unit id of a profile's "
     "role, and no role is called ID; set the device's own unit id with DEVICE_A_SLAVE_ID"),
    # A unit after the number got only the accepted range.
    ({"SCAN_INTERVAL_S": "500 ms"},
     "SCAN_INTERVAL_S='500 ms' is invalid: expected a number from 0.05 to 3600; write the "
     "number alone, without ms: SCAN_INTERVAL_S is in seconds"),
    ({"BATTERY_RATED_POWER_KW": "5kW"}, "; write the number alone, without kW: "
                                        "BATTERY_RATED_POWER_KW is in kW"),
    ({"LIMIT_SOC_LOW_WARN": "10%"}, "expected a number, or off; write the number alone, "
                                    "without %"),
]


def test_settings_no_unit_hint_for_other_letters():
    # "a" is no unit: the hint would tell the technician to drop a typo's letter.
    assert problems_of(MODBUS_SLAVE_ID="1a") == [
        "MODBUS_SLAVE_ID='1a' is invalid: expected an integer from 0 to 247"]


@pytest.mark.parametrize("overrides, message", BAD_SETTINGS,
                         ids=[next(iter(case)) + "-" + str(next(iter(case.values())))
                              for case, _ in BAD_SETTINGS])
def test_settings_bad_value_message(overrides, message):
    problems = problems_of(**overrides)
    matching = [line for line in problems if message in line]
    assert len(problems) == 1, problems
    assert matching, problems


def test_settings_unknown_unit_role_reported_with_other_problems():
    # It used to come only from the profile check, after the settings were fixed.
    problems = problems_of(MODBUS_UNIT_VEBUS="5", SCAN_INTERVAL_S="0")
    assert len(problems) == 2, problems
    assert any(line.startswith("MODBUS_UNIT_VEBUS='5' is invalid: profile huawei_sun2000 of "
                               "device inverter has no unit role 'vebus' (it reads only its "
                               "main unit); remove the setting") for line in problems), problems


def test_settings_misspelt_unit_role_gets_suggestion():
    problem, = problems_of(DRIVER_PROFILE_PATH="victron_multiplus", MODBUS_UNIT_BATERY="3")
    assert problem == (
        "MODBUS_UNIT_BATERY='3' is invalid: profile victron_multiplus of device inverter has "
        "no unit role 'batery' (its roles: battery, vebus); did you mean MODBUS_UNIT_BATTERY?")


TWO_DEVICES = {"DEVICES": "inv,vic", "DEVICE_INV_PROFILE": "sma_sunny_tripower",
               "DEVICE_VIC_IP": "192.168.1.101", "DEVICE_VIC_PROFILE": "victron_multiplus"}


def test_settings_device_unit_role_own_name():
    # It used to be reported as MODBUS_UNIT_BATERY, a variable the file did not have.
    problem, = problems_of(**TWO_DEVICES, DEVICE_VIC_UNIT_BATERY="4")
    assert problem.startswith("DEVICE_VIC_UNIT_BATERY='4' is invalid: profile "
                              "victron_multiplus of device vic"), problem
    assert problem.endswith("did you mean DEVICE_VIC_UNIT_BATTERY?"), problem


def test_settings_shared_unit_role_points_to_device_variable():
    # With several devices, "remove the setting" would also take the role from the
    # device that has it.
    problem, = problems_of(**TWO_DEVICES, MODBUS_UNIT_VEBUS="5")
    assert problem.startswith("MODBUS_UNIT_VEBUS='5' is invalid: profile sma_sunny_tripower "
                              "of device inv has no unit role 'vebus'"), problem
    assert problem.endswith("with several devices, set it only for the device that has the "
                            "role, as DEVICE_<NAME>_UNIT_VEBUS"), problem


def test_settings_device_missing_names_its_variable():
    # It named INVERTER_IP and DRIVER_PROFILE_PATH, which a DEVICES file does not use.
    problems = problems_of(INVERTER_IP=None, DRIVER_PROFILE_PATH=None, DEVICES="inv,vic",
                           DEVICE_INV_IP="192.168.1.100",
                           DEVICE_INV_PROFILE="sma_sunny_tripower")
    assert len(problems) == 2, problems
    assert problems[0].startswith("DEVICE_VIC_PROFILE is missing: "), problems
    assert problems[1].startswith("DEVICE_VIC_IP is missing: "), problems


def test_settings_device_falls_back_to_single():
    # A set single-device variable still serves every device that lacks its own.
    environ = {**MINIMAL, "DEVICES": "inv,vic", "DEVICE_VIC_IP": "192.168.1.101",
               "DEVICE_VIC_PROFILE": "victron_multiplus"}
    inv, vic = settings.load_settings(environ).devices
    assert (inv.host, inv.profile) == ("192.168.1.100", "huawei_sun2000")
    assert (vic.host, vic.profile) == ("192.168.1.101", "victron_multiplus")


def test_settings_same_device_profile_defaults():
    # Port 502 and unit id 1 are the Huawei profile's own, so b polls what a polls.
    problem, = problems_of(DEVICES="a,b", DEVICE_B_PORT="502", DEVICE_B_SLAVE_ID="1")
    assert problem.startswith("devices a and b are the same device (192.168.1.100:502, "
                              "unit id 1): "), problem


def test_settings_same_host_other_port_accepted():
    environ = {**MINIMAL, "DEVICES": "a,b", "DEVICE_B_PORT": "503"}
    a, b = settings.load_settings(environ).devices
    assert (a.port, b.port) == (None, 503)


def test_settings_spool_sizes_as_written_and_default_marked():
    problem, = problems_of(SPOOL_MAX_TOTAL_BYTES="20M")
    assert problem.startswith("SPOOL_MAX_TOTAL_BYTES=20M (20971520 bytes) is less than twice "
                              "SPOOL_SEGMENT_MAX_BYTES=16777216 bytes (default):"), problem


def test_settings_invalid_spool_size_not_compared():
    # The default of a rejected size used to be compared with the other size.
    problems = problems_of(SPOOL_SEGMENT_MAX_BYTES="100", SPOOL_MAX_TOTAL_BYTES="20M")
    assert problems == [
        "SPOOL_SEGMENT_MAX_BYTES='100' is invalid: expected a whole number from 4096 bytes to "
        "4G, alone or with a K, M or G suffix (powers of 1024, also written KB or KiB), e.g. "
        "64M or 1536M for 1.5G"]


@pytest.mark.parametrize("name,value,hint", [
    ("SPOOL_MAX_TOTAL_BYTES", "512,5M", "; write the size as a whole number, without "
                                        "decimals: 524800K"),
    ("SPOOL_SEGMENT_MAX_BYTES", "1,5G", "; write the size as a whole number, without "
                                        "decimals: 1536M"),
    ("SPOOL_SEGMENT_MAX_BYTES", "1.5MiB", "; write the size as a whole number, without "
                                          "decimals: 1536K"),
    ("SPOOL_MAX_TOTAL_BYTES", "1,000M", "; write the size without a thousands separator "
                                        "(1000M) or, if the comma marks decimals, as 1M"),
    ("SPOOL_SEGMENT_MAX_BYTES", "65,536", "; write the size without a thousands separator: "
                                          "65536"),
])
def test_settings_size_decimal_hint(name, value, hint):
    problem, = problems_of(**{name: value})
    assert problem.startswith(f"{name}={value!r} is invalid: expected a whole number"), problem
    assert problem.endswith(hint), problem


def test_settings_size_hint_only_in_range():
    # 0,5K is 512 bytes, below the minimum: rewriting it would suggest another invalid value.
    problem, = problems_of(SPOOL_SEGMENT_MAX_BYTES="0,5K")
    assert problem.endswith("e.g. 64M or 1536M for 1.5G"), problem


def test_settings_file_not_utf8_reported_with_other_problems(tmp_path):
    # A Latin-1 file used to stop the check at its first bad byte, so the other
    # problems came only after the file was converted.
    env_file, problems = env_file_problems(tmp_path, (
        "# Planta Ñuñoa\nSITE_ID=PLANTA-ÑUÑOA\nINVERTER_IP=192.0.2.1\n"
        "DRIVER_PROFILE_PATH=huawei_sun2000\nINVERTER_PORT=99999\n"
        "LOG_LEVEL=información\n").encode("latin-1"))
    first, port, second = problems  # in file order
    assert first.startswith(f"{env_file}:2: byte 0xd1 is not UTF-8 text; save the file as "
                            "UTF-8, e.g. for a Latin-1 file: iconv -f latin1"), first
    assert port.startswith(f"{env_file}:5: INVERTER_PORT='99999' is invalid"), port
    assert second == f"{env_file}:6: byte 0xf3 is not UTF-8 text"


@pytest.mark.parametrize("lines, expected", [
    # Both set: the first name of the problem leads.
    (["LIMIT_SOC_LOW_WARN=50", "LIMIT_SOC_HIGH_WARN=40"], ":4: LIMIT_SOC_LOW_WARN=50 is above"),
    # Only the second name is in the file (the first is a default): its line leads.
    (["LIMIT_SOC_LOW_WARN=3"], ":4: LIMIT_SOC_LOW_TRIP=5 (default) is above"),
    (["SPOOL_SEGMENT_MAX_BYTES=64M", "SPOOL_MAX_TOTAL_BYTES=100M"],
     ":5: SPOOL_MAX_TOTAL_BYTES=100M (104857600 bytes) is less than twice"),
])
def test_settings_two_setting_problem_located(tmp_path, lines, expected):
    # Problems about two settings used to come without FILE:LINE.
    env_file, problems = env_file_problems(tmp_path, (
        "SITE_ID=a\nINVERTER_IP=192.0.2.1\nDRIVER_PROFILE_PATH=huawei_sun2000\n"
        + "".join(line + "\n" for line in lines)).encode())
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{env_file}{expected}"), problems[0]


def test_settings_nul_byte_line_rejected(tmp_path):
    # A NUL byte in SPOOL_DIR used to end `bessai run` with a traceback.
    env_file, problems = env_file_problems(
        tmp_path, b"SITE_ID=a\nINVERTER_IP=192.0.2.1\nDRIVER_PROFILE_PATH=huawei_sun2000\n"
                  b"SPOOL_DIR=/tmp/sp\0ool\n")
    assert problems == [f"{env_file}:4: the line contains a NUL byte: remove it"]


@pytest.mark.parametrize("name", ["SCAN_INTERVAL_S", "LIMIT_SOC_LOW_WARN"])
def test_settings_decimal_comma_hint(name):
    problem, = problems_of(**{name: "0,5"})
    assert problem.endswith("; write the decimals after a point, not a comma: 0.5"), problem


def test_settings_thousands_separator_hint():
    problem, = problems_of(STALE_AFTER_S="1,000")
    assert problem.endswith("; write a number without a thousands separator (1000), and "
                            "decimals after a point, not a comma (1.000)"), problem


def test_settings_utf16_file_named_once(tmp_path):
    # Each line was reported as containing NUL bytes.
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=a\nINVERTER_IP=192.0.2.1\n", encoding="utf-16")
    with pytest.raises(ConfigError) as caught:
        settings.read_environment(str(env_file), {})
    assert caught.value.problems == [f"settings file {env_file} is UTF-16 text: save it as UTF-8"]


def test_settings_same_device_check_skips_missing_address():
    # A device without an address used to be compared as "(None, ...)".
    problems = problems_of(INVERTER_IP=None, DEVICES="a,b", DEVICE_A_PROFILE="huawei_sun2000")
    assert problems == ["DEVICE_A_IP is missing: the IP address or host name of the device, "
                        "e.g. 192.168.1.100",
                        "DEVICE_B_IP is missing: the IP address or host name of the device, "
                        "e.g. 192.168.1.100"], problems


def test_settings_profile_problems_listed_with_others(tmp_path):
    # A profile that resolves but does not load used to be reported only after the
    # other settings were fixed.
    profile = tmp_path / "notes.txt"
    profile.write_text("not a profile\n")
    problems = problems_of(DRIVER_PROFILE_PATH=str(profile), INVERTER_PORT="0")
    assert len(problems) == 2, problems
    assert problems[1].startswith(f"{profile}: not a profile"), problems


def test_settings_ip_without_colon_no_port_hint():
    problem, = problems_of(INVERTER_IP="192.168.1.300")
    assert problem.endswith("expected an IPv4 or IPv6 address or a host name"), problem


def test_settings_invalid_limit_not_order_checked():
    # The default of a rejected level used to be compared with the other levels, so a
    # line named a value the user never wrote ("LIMIT_SOC_LOW_TRIP=20 is above ...=10").
    problems = problems_of(LIMIT_SOC_LOW_WARN="ten", LIMIT_SOC_LOW_TRIP="20")
    assert problems == ["LIMIT_SOC_LOW_WARN='ten' is invalid: expected a number, or off"]


def test_settings_limit_order_marks_default():
    # The default trip level used to read as if the user had set it.
    problem, = problems_of(LIMIT_SOC_LOW_WARN="3")
    assert problem.startswith("LIMIT_SOC_LOW_TRIP=5 (default) is above LIMIT_SOC_LOW_WARN=3:"), \
        problem


def test_settings_unit_id_misspelling_reported_with_other_problems():
    # It used to pass as a role "id" and fail only later, against the profile, after
    # the other settings had been fixed.
    problems = problems_of(MODBUS_UNIT_ID="3", SCAN_INTERVAL_S="0")
    assert len(problems) == 2, problems
    assert any(line.startswith("MODBUS_UNIT_ID='3'") for line in problems), problems


def test_settings_bad_messages_distinct():
    messages = [problems_of(**overrides)[0] for overrides, _ in BAD_SETTINGS]
    assert len(set(messages)) == len(messages)


def test_settings_every_problem_at_once():
    problems = problems_of(SITE_ID=None, INVERTER_PORT="x", LOG_LEVEL="loud",
                           SCAN_INTERVAL_S="-1", HEALTH_LISTEN="nowhere")
    assert len(problems) == 5
    for name in ("SITE_ID", "INVERTER_PORT", "LOG_LEVEL", "SCAN_INTERVAL_S", "HEALTH_LISTEN"):
        assert any(line.startswith(name) for line in problems), (name, problems)


def test_settings_devices_fall_back_to_single_device_variables():
    loaded = settings.load_settings({
        **MINIMAL, "DEVICES": "inverter, battery", "MODBUS_UNIT_VEBUS": "227",
        "DRIVER_PROFILE_PATH": "victron_multiplus",
        "DEVICE_BATTERY_IP": "192.168.1.101", "DEVICE_BATTERY_PROFILE": "victron_multiplus",
        "DEVICE_BATTERY_SLAVE_ID": "100", "DEVICE_BATTERY_UNIT_VEBUS": "246"})
    inverter, battery = loaded.devices
    assert (inverter.name, inverter.host, inverter.profile) == (
        "inverter", "192.168.1.100", "victron_multiplus")
    assert inverter.unit_ids == {"vebus": 227}
    assert (battery.name, battery.host, battery.profile, battery.unit_id) == (
        "battery", "192.168.1.101", "victron_multiplus", 100)
    assert battery.unit_ids == {"vebus": 246}


def test_settings_device_variables_named():
    loaded = settings.load_settings({
        "SITE_ID": "site", "DEVICES": "inverter,sma", "INVERTER_IP": "192.168.1.100",
        "DRIVER_PROFILE_PATH": "huawei_sun2000", "DEVICE_SMA_IP": "192.168.1.101",
        "DEVICE_SMA_PROFILE": "sma_sunny_tripower"})
    inverter, sma = loaded.devices
    # The inverter falls back to INVERTER_IP and DRIVER_PROFILE_PATH, which are set.
    assert inverter.variables == {"INVERTER_PORT": "DEVICE_INVERTER_PORT",
                                  "MODBUS_SLAVE_ID": "DEVICE_INVERTER_SLAVE_ID",
                                  "MODBUS_UNIT_": "DEVICE_INVERTER_UNIT_"}
    assert sma.variables["INVERTER_IP"] == "DEVICE_SMA_IP"
    assert sma.variables["DRIVER_PROFILE_PATH"] == "DEVICE_SMA_PROFILE"
    assert settings.load_settings(MINIMAL).devices[0].variables == {}


def test_settings_limits_defaults_and_off():
    loaded = settings.load_settings({**MINIMAL, "LIMIT_SOC_LOW_TRIP": "off",
                                     "BATTERY_RATED_POWER_KW": "10", "SCAN_INTERVAL_S": "0.5"})
    by_field = {limit.field: limit for limit in loaded.limits.limits}
    assert math.isnan(by_field["soc_pct"].low_trip)
    assert by_field["soc_pct"].low_warn == 10.0
    assert by_field["battery_power_kw"].high_warn == 10.0
    assert by_field["battery_power_kw"].low_trip == pytest.approx(-11.0)
    assert by_field["grid_frequency_hz"].low_warn == 49.5
    assert loaded.limits.stale_cycles == 20  # STALE_AFTER_S=10 at a 0.5 s period


def test_settings_unmapped_limits_named():
    loaded = settings.load_settings({**MINIMAL, "LIMIT_SOC_LOW_WARN": "20",
                                     "LIMIT_SOC_HYSTERESIS": "2", "LIMIT_SOC_HIGH_TRIP": "off",
                                     "LIMIT_BATTERY_TEMP_HIGH_WARN": "45",
                                     "LIMIT_GRID_FREQUENCY_LOW_WARN": "off"})
    fields = {"battery_temp_c", "grid_frequency_hz"}
    assert alarms.unmapped_limits(loaded.limits, fields) == [
        ("soc_pct", ("LIMIT_SOC_LOW_WARN", "LIMIT_SOC_HYSTERESIS"))]
    assert alarms.unmapped_limits(loaded.limits, fields | {"soc_pct"}) == []
    # Defaults, also written out as the installed settings file does, and levels switched
    # off are not settings to warn of.
    assert alarms.unmapped_limits(settings.load_settings(MINIMAL).limits, set()) == []
    written_out = settings.load_settings({**MINIMAL, "LIMIT_SOC_LOW_TRIP": "5",
                                          "LIMIT_SOC_HYSTERESIS": "1",
                                          "LIMIT_BATTERY_TEMP_HIGH_WARN": "45"})
    assert alarms.unmapped_limits(written_out.limits, set()) == []


@pytest.mark.parametrize("written", [None, "", "off", "None"])
def test_settings_battery_power_off_without_rating(written):
    environ = dict(MINIMAL) if written is None else {**MINIMAL, "BATTERY_RATED_POWER_KW": written}
    loaded = settings.load_settings(environ)
    by_field = {limit.field: limit for limit in loaded.limits.limits}
    assert not by_field["battery_power_kw"].enabled()


@pytest.mark.parametrize("written", ["60", "60.0"])
def test_settings_sixty_hertz_grid(written):
    loaded = settings.load_settings({**MINIMAL, "GRID_NOMINAL_FREQUENCY_HZ": written})
    by_field = {limit.field: limit for limit in loaded.limits.limits}
    assert by_field["grid_frequency_hz"].levels() == (58.5, 59.5, 60.5, 61.5)


def test_settings_limit_range_ends_accepted():
    loaded = settings.load_settings({**MINIMAL, "LIMIT_SOC_LOW_TRIP": "0",
                                     "LIMIT_SOC_HIGH_TRIP": "100"})
    by_field = {limit.field: limit for limit in loaded.limits.limits}
    assert by_field["soc_pct"].levels() == (0.0, 10.0, 98.0, 100.0)


@pytest.mark.parametrize("name, value", [
    ("LIMIT_BATTERY_TEMP_HIGH_TRIP", "90.0001"), ("LIMIT_BATTERY_TEMP_HIGH_TRIP", "200"),
    ("LIMIT_BATTERY_TEMP_LOW_TRIP", "-60"), ("LIMIT_GRID_FREQUENCY_HIGH_TRIP", "55.0001"),
])
def test_settings_limit_hint_only_where_it_fixes(name, value):
    problem, = problems_of(**{name: value})
    assert problem.endswith(", or off"), problem  # no Fahrenheit or 60 Hz hint


def test_out_of_range_level_skips_order_check():
    # Only the range message: 120 must not also be compared with the other levels.
    assert problems_of(LIMIT_SOC_LOW_WARN="120") == [
        "LIMIT_SOC_LOW_WARN='120' is invalid: expected a number from 0 to 100, or off"]


def test_read_environment_process_overrides_file(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=from-file\nLOG_LEVEL=debug\nHEALTH_LISTEN=127.0.0.1:8000\n")
    environ = settings.read_environment(str(env_file), {"LOG_LEVEL": "warning",
                                                        "HEALTH_LISTEN": ""})
    assert environ["SITE_ID"] == "from-file"
    assert environ["LOG_LEVEL"] == "warning"
    assert environ["HEALTH_LISTEN"] == ""


def test_invalid_value_from_process_names_its_source(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=a\nINVERTER_IP=10.0.0.1\nINVERTER_PORT=502\nSCAN_INTERVAL_S=0\n"
                        "DRIVER_PROFILE_PATH=huawei_sun2000\nSPOOL_DIR=/tmp\n")
    environ = settings.read_environment(str(env_file), {"INVERTER_PORT": "0"})
    with pytest.raises(ConfigError) as caught:
        settings.load_settings(environ)
    assert caught.value.problems == [  # the file's lines first, in file order
        f"{env_file}:4: SCAN_INTERVAL_S='0' is invalid: expected a number from 0.05 to 3600",
        f"INVERTER_PORT='0' is invalid: expected an integer from 1 to 65535 (set in the "
        f"process environment, which overrides {env_file}: unset it there)",
    ]


def test_file_repeated_in_process_keeps_file_lines(tmp_path):
    # The units give the file to systemd's EnvironmentFile= and to --env-file, so the
    # process environment repeats the file's values: errors still name FILE:LINE.
    text = ("SITE_ID=a\nINVERTER_IP=10.0.0.1\nSCAN_INTERVAL_S=0\n"
            "DRIVER_PROFILE_PATH=huawei_sun2000\n")
    env_file = tmp_path / "bessai.env"
    env_file.write_text(text)
    same = dict(line.split("=", 1) for line in text.splitlines())
    environ = settings.read_environment(str(env_file), {**same, "PATH": "/bin"})
    assert environ.warnings == []
    with pytest.raises(ConfigError) as caught:
        settings.load_settings(environ)
    assert f"{env_file}:3: SCAN_INTERVAL_S='0' is invalid: expected a number from 0.05 to " \
           f"3600" in caught.value.problems


def test_process_value_over_file_warns(tmp_path):
    # A broken file line hidden by a value left in the shell: the service would not start.
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=a\nGRID_NOMINAL_FREQUENCY_HZ=55\nLOG_LEVEL=info\n")
    environ = settings.read_environment(
        str(env_file), {"GRID_NOMINAL_FREQUENCY_HZ": "50", "LOG_LEVEL": "info", "PATH": "/bin"})
    assert environ["GRID_NOMINAL_FREQUENCY_HZ"] == "50"
    assert environ.warnings == [
        f"{env_file}: GRID_NOMINAL_FREQUENCY_HZ is set in the process environment ('50'), "
        f"which overrides the file's '55'; the service reads only the file: unset "
        f"GRID_NOMINAL_FREQUENCY_HZ to check the file as the service sees it"]


def test_read_environment_misspelt_name(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=a\nINVERTER_PORTT=502\nSOME_OTHER_TOOL=1\n")
    environ = settings.read_environment(str(env_file), {})
    assert environ.name_problems == [
        f"{env_file}:2: INVERTER_PORTT is not a bessai setting: did you mean INVERTER_PORT?"]
    assert environ["SOME_OTHER_TOOL"] == "1"


def test_read_environment_repeated_name_warns(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=a\nINVERTER_IP=10.0.0.1\n# moved\nINVERTER_IP=10.0.0.2\n"
                        "INVERTER_IP=10.0.0.3\n")
    environ = settings.read_environment(str(env_file), {})
    assert environ["INVERTER_IP"] == "10.0.0.3"  # the last line wins, as under systemd
    assert environ.name_problems == []
    assert environ.warnings == [
        f"{env_file}:{line}: INVERTER_IP is set again (first on line 2); the last line that "
        f"sets it wins: delete the lines you do not want" for line in (4, 5)]


def test_settings_health_listen_localhost_accepted():
    # The error message names localhost as a valid HOST, so it must load.
    assert settings.load_settings({**MINIMAL, "HEALTH_LISTEN": "localhost:8000"}).health_listen \
        == ("localhost", 8000)


def test_read_environment_name_in_wrong_case(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("site_id=a\nInverter_IP=192.0.2.1\nmqtt_broker_host=x\nhome=/x\n")
    environ = settings.read_environment(str(env_file), {})
    assert environ.name_problems == [
        f"{env_file}:1: site_id is not a bessai setting: did you mean SITE_ID?",
        f"{env_file}:2: Inverter_IP is not a bessai setting: did you mean INVERTER_IP?",
        f"{env_file}:3: mqtt_broker_host is not a bessai setting: did you mean MQTT_BROKER_HOST?"]


def test_unterminated_quote_shows_value_as_written(tmp_path):
    # The value was shown as a repr, '"huawei_sun2000\'', escaping the wrong quote.
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=a\nINVERTER_IP=192.0.2.1\n"
                        "DRIVER_PROFILE_PATH=\"huawei_sun2000'\n")
    with pytest.raises(ConfigError) as caught:
        settings.load_settings(settings.read_environment(str(env_file), {}))
    assert (f"{env_file}:3: DRIVER_PROFILE_PATH: unterminated quote: the value "
            "\"huawei_sun2000' starts with \" but does not end with it; end it with the same "
            "quote, or remove the quotes") in caught.value.problems


def test_bad_lines_reported_with_bad_values(tmp_path):
    # A bad line used to stop the check, so the invalid values came only on a second run.
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=a b\nexport FOO=1\nINVERTER_IP=\"192.0.2.1\" # inverter\n"
                        "DRIVER_PROFILE_PATH=huawei_sun2000\nSCAN_INTERVAL_S=fast\n")
    with pytest.raises(ConfigError) as caught:
        settings.load_settings(settings.read_environment(str(env_file), {}))
    problems = caught.value.problems
    assert (f"{env_file}:2: invalid line 'export FOO=1': 'export' is shell syntax; write the "
            "line without it") in problems
    assert (f"{env_file}:3: INVERTER_IP: text after the closing quote in "
            "'\"192.0.2.1\" # inverter': remove it, or put a comment on its own line") in problems
    assert any(line.startswith(f"{env_file}:1: SITE_ID='a b' is invalid")
               for line in problems), problems
    assert any(line.startswith(f"{env_file}:5: SCAN_INTERVAL_S='fast' is invalid")
               for line in problems), problems
    assert not any("is missing" in line for line in problems), problems
    assert not any(line.startswith("INVERTER_IP=") for line in problems), problems


def test_line_without_equals_not_reported_missing(tmp_path):
    env_file, problems = env_file_problems(
        tmp_path, b"\xef\xbb\xbfSITE_ID\nINVERTER_IP=192.0.2.1\nDRIVER_PROFILE_PATH=huawei_sun2000\n")
    # The byte order mark an editor may write is skipped, not part of the first name.
    assert problems == [
        f"{env_file}:1: invalid line 'SITE_ID': expected NAME=VALUE"]


def test_settings_device_ip_port_hint_names_device_port():
    problem, = problems_of(DEVICES="battery", DEVICE_BATTERY_IP="10.0.0.1:502",
                           DEVICE_BATTERY_PROFILE="huawei_sun2000")
    assert problem.endswith("without a port (set the port in DEVICE_BATTERY_PORT)"), problem


@pytest.mark.parametrize("value, hint", [
    ("192.0.2.1 ; inverter", "a comment ('#' or ';') after the value is part of it"),
    ("192.0.2.1#inverter", "a comment ('#' or ';') after the value is part of it"),
])
def test_settings_ip_hints(value, hint):
    problem, = problems_of(INVERTER_IP=value)
    assert hint in problem, problem


HOST_EXPECTED = "expected an IPv4 or IPv6 address or a host name"


@pytest.mark.parametrize("value, hint", [
    ("http://127.0.0.1", "; write the address without http://, as 127.0.0.1"),
    ("HTTP://inverter.local/", "; write the address without HTTP://, as inverter.local"),
    ("modbus://192.0.2.1:502",
     "; write the address without modbus://, as 192.0.2.1, and set the port in INVERTER_PORT"),
    ("http://192.0.2.1/modbus/", "; write the address without http://, as 192.0.2.1"),
    ("http://bad host/", "; write the address without http://"),
    ("192.0.2.1/24", "; write the address without /24, as 192.0.2.1"),
    ("192.0.2.1/", "; write the address without /, as 192.0.2.1"),
    ("[::1]", "; write the address without brackets, as ::1"),
    ("[fd00::5]:502",
     "; write the address without brackets, as fd00::5, and set the port in INVERTER_PORT"),
    ("tcp://[::1]:1502",
     "; write the address without tcp://, as ::1, and set the port in INVERTER_PORT"),
    ("192.0.2.1:502", ", without a port (set the port in INVERTER_PORT)"),
    ("999.1.1.1", ""),
])
def test_settings_ip_url_hints(value, hint):
    problem, = problems_of(INVERTER_IP=value)
    assert problem == f"INVERTER_IP={value!r} is invalid: {HOST_EXPECTED}{hint}"


def test_device_ip_brackets_names_port():
    problem, = problems_of(DEVICES="battery", DEVICE_BATTERY_IP="[::1]:502",
                           DEVICE_BATTERY_PROFILE="huawei_sun2000")
    assert problem.endswith("as ::1, and set the port in DEVICE_BATTERY_PORT"), problem


@pytest.mark.parametrize("value, hint", [
    ("http://127.0.0.1:8000/health", "; write the address without http://, as 127.0.0.1:8000"),
    ("http://[::1]:9100", "; write the address without http://, as [::1]:9100"),
    ("127.0.0.1:8000/", "; write the address without /, as 127.0.0.1:8000"),
    ("http://127.0.0.1", ""),
])
def test_settings_health_listen_url_hints(value, hint):
    problem, = problems_of(HEALTH_LISTEN=value)
    assert problem.startswith(f"HEALTH_LISTEN={value!r} is invalid: expected HOST:PORT"), problem
    assert problem.endswith("to turn the health server off" + hint), problem


def test_read_environment_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings.read_environment(str(tmp_path / "absent.env"), {})
    assert "cannot read settings file" in caught.value.problems[0]


def read_environment_problems(path):
    """Return the problems that reading the settings file ``path`` raises, or []."""
    try:
        settings.read_environment(path, {})
    except ConfigError as error:
        return error.problems
    return []


@pytest.mark.root
@pytest.mark.parametrize("mode, advice", [
    # Group-readable, as the package installs it (0640 root:bessai). The test uses gid 0
    # in place of group bessai, which need not exist on a test machine.
    (0o640, "; run the command with sudo, or add nobody to group root, which may read the "
            "file (sudo adduser nobody root, then log in again)"),
    (0o600, "; run the command with sudo"),
])
def test_read_environment_permission_names_fix(needs_root, mode, advice):
    # The file goes to /tmp, which the user nobody can reach, unlike pytest's tmp_path.
    directory = tempfile.mkdtemp(prefix="bessai-env-", dir="/tmp")
    path = os.path.join(directory, "bessai.env")
    try:
        os.chmod(directory, 0o755)
        with open(path, "w") as stream:
            stream.write("SITE_ID=site\n")
        os.chown(path, 0, 0)
        os.chmod(path, mode)
        problems = call_as_nobody(read_environment_problems, path)
    finally:
        shutil.rmtree(directory)

    assert problems == [f"cannot read settings file {path}: permission denied{advice}"]


def test_packaged_env_file_loads():
    environ = settings.read_environment(str(REPO / "packaging" / "bessai.env"), {})
    loaded = settings.load_settings(environ)
    assert environ.warnings == []
    assert loaded.mode == "simulator"
    assert loaded.spool.directory == "/var/spool/bessai"
    assert loaded.health_listen == ("127.0.0.1", 8000)


def test_packaged_env_file_lists_every_setting():
    text = (REPO / "packaging" / "bessai.env").read_text()
    missing = [name for name in sorted(settings.KNOWN_NAMES) if name not in text]
    assert missing == []


def test_settings_invalid_mode_reported_once():
    # BESSAI_MODE=real also reported INVERTER_IP missing, the modbus fallback's need.
    environ = {key: value for key, value in MINIMAL.items() if key != "INVERTER_IP"}
    with pytest.raises(ConfigError) as caught:
        settings.load_settings({**environ, "BESSAI_MODE": "real"})
    assert caught.value.problems == [
        "BESSAI_MODE='real' is invalid: expected one of modbus, simulator"]


def test_settings_invalid_mode_keeps_host_check():
    with pytest.raises(ConfigError) as caught:
        settings.load_settings({**MINIMAL, "BESSAI_MODE": "real",
                                "INVERTER_IP": "192.0.2.1:502"})
    assert len(caught.value.problems) == 2, caught.value.problems
    assert caught.value.problems[1].startswith("INVERTER_IP='192.0.2.1:502' is invalid")


def test_run_bad_settings_exit_78(tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text("SITE_ID=a b\nINVERTER_PORT=0\nBESSAI_MODE=real\n")
    result = subprocess.run([*bessai_command(), "run", "--env-file", str(env_file)],
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EX_CONFIG
    assert any("SITE_ID='a b' is invalid" in line for line in lines), lines
    assert any("INVERTER_PORT='0' is invalid" in line for line in lines), lines
    assert any("BESSAI_MODE='real' is invalid" in line for line in lines), lines
    assert any("DRIVER_PROFILE_PATH is missing" in line for line in lines), lines
    assert all(line.startswith("bessai: ") for line in lines), lines


def test_run_bad_settings_marked_err_in_journal(tmp_path):
    # stderr is a file standing in for the journal stream: JOURNAL_STREAM names its
    # device and inode, as systemd does for the real journal socket.
    env_file = tmp_path / "bad.env"
    env_file.write_text("SITE_ID=site\nINVERTER_PORT=0\nDRIVER_PROFILE_PATH=huawei_sun2000\n")
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        status = os.fstat(stderr.fileno())
        result = subprocess.run([*bessai_command(), "run", "--env-file", str(env_file)],
                                stderr=stderr, stdout=subprocess.DEVNULL, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                                     "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
    lines = stderr_path.read_text().strip().splitlines()
    assert result.returncode == EX_CONFIG
    assert lines, "no error line"
    assert all(line.startswith("<3>bessai: ") for line in lines), lines


def run_with_journal_stderr(tmp_path, command, text):
    """Run ``bessai COMMAND --env-file`` on ``text`` with stderr standing in for the journal.

    Returns the exit status and the stderr lines.
    """
    env_file = tmp_path / "warn.env"
    env_file.write_text(text)
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        status = os.fstat(stderr.fileno())
        result = subprocess.run([*bessai_command(), *command, "--env-file", str(env_file)],
                                stderr=stderr, stdout=subprocess.DEVNULL, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                                     "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
    return result.returncode, stderr_path.read_text().splitlines()


def test_run_repeat_warning_journal_priority(tmp_path):
    # journald stores an unmarked stderr line at info priority, where
    # `journalctl -p warning` does not find it.
    status, lines = run_with_journal_stderr(tmp_path, ["run"], (
        "SITE_ID=site\nSITE_ID=other\nINVERTER_PORT=0\nDRIVER_PROFILE_PATH=huawei_sun2000\n"))
    warnings = [line for line in lines if "bessai: warning:" in line]
    assert status == EX_CONFIG
    assert len(warnings) == 1, lines
    assert warnings[0].startswith("<4>bessai: warning: "), warnings


def test_run_unused_variable_journal_priority(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    closed_port = free_loopback_port()
    status, lines = run_with_journal_stderr(tmp_path, ["run", "--cycles", "1"], (
        f"SITE_ID=site\nINVERTER_IP=127.0.0.1\nDEVICES=a\nDEVICE_A_IP=127.0.0.1\n"
        f"DEVICE_A_PORT={closed_port}\nDEVICE_A_PROFILE=sma_sunny_tripower\n"
        f"SPOOL_DIR={spool}\nHEALTH_LISTEN=off\nCONNECT_TIMEOUT_S=0.5\n"))
    warnings = [line for line in lines if "INVERTER_IP is set" in line]
    assert status == 0, lines
    assert len(warnings) == 1, lines
    assert warnings[0].startswith("<4>bessai: warning: "), warnings


def test_forward_repeat_warning_journal_priority(tmp_path):
    status, lines = run_with_journal_stderr(tmp_path, ["forward"], (
        f"SITE_ID=site\nSITE_ID=other\nMQTT_ENABLED=false\nSPOOL_DIR={tmp_path}\n"
        f"FORWARD_STATE_DIR={tmp_path}\n"))
    warnings = [line for line in lines if "bessai: warning:" in line]
    assert len(warnings) == 1, (status, lines)
    assert warnings[0].startswith("<4>bessai: warning: "), warnings


def free_loopback_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_with_env_file(env_file, text):
    """Write ``text`` to ``env_file``, run ``bessai run`` on it, return the CompletedProcess."""
    env_file.write_text(text)
    return subprocess.run([*bessai_command(), "run", "--env-file", str(env_file)],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})


def test_run_missing_spool_dir_reported_with_bad_settings(tmp_path):
    # It used to come only after the settings were fixed, on a second run.
    missing = tmp_path / "absent" / "spool"
    result = run_with_env_file(tmp_path / "bad.env", (
        f"SITE_ID=site\nINVERTER_PORT=0\nDRIVER_PROFILE_PATH=huawei_sun2000\n"
        f"INVERTER_IP=192.0.2.1\nSPOOL_DIR={missing}\n"))
    assert result.returncode == EX_CONFIG
    assert result.stderr.splitlines() == [
        f"bessai: {tmp_path / 'bad.env'}:2: INVERTER_PORT='0' is invalid: expected an "
        "integer from 1 to 65535",
        f"bessai: spool directory {missing} does not exist: create it, owned by the bessai "
        "user, or set SPOOL_DIR"]


def test_run_spool_dir_comment_hint(tmp_path):
    result = run_with_env_file(tmp_path / "bessai.env", (
        f"SITE_ID=site\nINVERTER_IP=192.0.2.1\nDRIVER_PROFILE_PATH=huawei_sun2000\n"
        f"SPOOL_DIR={tmp_path} # local spool\n"))
    assert result.returncode == EX_CONFIG
    assert result.stderr.splitlines() == [
        f"bessai: spool directory {tmp_path} # local spool does not exist: create it, owned by "
        "the bessai user, or set SPOOL_DIR; a comment ('#' or ';') after the value is part of "
        "it, so put the comment on its own line"]


@pytest.mark.root
def test_spool_dir_read_only_mount_reported(tmp_path, needs_root):
    with read_only_spool_dir(tmp_path) as spool_dir:
        problems = settings.spool_directory_problems({"SPOOL_DIR": str(spool_dir)})
        result = run_with_env_file(tmp_path / "bad.env", (
            f"SITE_ID=site\nINVERTER_PORT=0\nDRIVER_PROFILE_PATH=huawei_sun2000\n"
            f"INVERTER_IP=192.0.2.1\nSPOOL_DIR={spool_dir}\n"))
    read_only = (f"spool directory {spool_dir} is on a read-only file system: remount it "
                 "read-write or set SPOOL_DIR to a directory on a writable file system")
    assert problems == [read_only]
    # Listed with the invalid settings, before the spool is opened.
    assert result.returncode == EX_CONFIG
    assert result.stderr.splitlines() == [
        f"bessai: {tmp_path / 'bad.env'}:2: INVERTER_PORT='0' is invalid: expected an "
        "integer from 1 to 65535",
        f"bessai: {read_only}"]


@pytest.mark.root
def test_spool_dir_read_only_under_systemd(tmp_path, needs_root, monkeypatch):
    # systemd sets INVOCATION_ID, and the unit's sandbox makes the directory read-only.
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
    with read_only_spool_dir(tmp_path) as spool_dir:
        problems = settings.spool_directory_problems({"SPOOL_DIR": str(spool_dir)})

    assert problems == [
        f"spool directory {spool_dir} is read-only for the service: the bessai unit may "
        "write only to /var/spool/bessai; set SPOOL_DIR=/var/spool/bessai, or add the "
        "directory with ReadWritePaths= in a drop-in for both units (systemctl edit bessai, "
        "then systemctl edit bessai-forward)"]


def test_spool_dir_not_writable_reported(tmp_path):
    if os.geteuid() == 0:
        # Root may write anywhere, so the check runs as the user nobody. tmp_path is
        # private to root, so the directory goes to /tmp, which every user can reach.
        spool_dir = tempfile.mkdtemp(prefix="bessai-spool-", dir="/tmp")
        try:
            os.chmod(spool_dir, 0o755)
            problems = call_as_nobody(settings.spool_directory_problems,
                                      {"SPOOL_DIR": spool_dir})
        finally:
            shutil.rmtree(spool_dir)
        # Not the directory's owner: the advice was to give the bessai user access.
        advice = ("run the command as the bessai user (sudo -u bessai bessai ...), or set "
                  "SPOOL_DIR to a directory that nobody may write to")
        uid = NOBODY
    else:
        spool_dir = tmp_path / "spool"
        spool_dir.mkdir(mode=0o555)
        problems = settings.spool_directory_problems({"SPOOL_DIR": str(spool_dir)})
        advice = ("(or its file system is read-only): make it writable by the bessai user "
                  "or set SPOOL_DIR")
        uid = os.geteuid()
    user = pwd.getpwuid(uid).pw_name
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"spool directory {spool_dir} is not writable by {user} (uid {uid})"), problems
    assert problems[0].endswith(advice), problems


def test_spool_dir_writable_no_problem(tmp_path):
    assert settings.spool_directory_problems({"SPOOL_DIR": str(tmp_path)}) == []


def test_settings_unused_single_variables_named():
    environ = {"SITE_ID": "site", "DEVICES": "a,b", "INVERTER_IP": "10.0.0.9",
               "MODBUS_SLAVE_ID": "1", "DRIVER_PROFILE_PATH": "huawei_sun2000",
               "DEVICE_A_IP": "10.0.0.1", "DEVICE_B_IP": "10.0.0.2",
               "DEVICE_A_SLAVE_ID": "2"}
    loaded = settings.load_settings(environ)
    warnings = settings.unused_device_variables(environ, loaded.devices)
    # INVERTER_IP serves no device; MODBUS_SLAVE_ID is b's unit id, DRIVER_PROFILE_PATH
    # the profile of both.
    assert warnings == ["INVERTER_IP is set, but every device in DEVICES has its own variable "
                        "for it (DEVICE_A_IP, DEVICE_B_IP), so it is not used: remove it"]
    single = settings.load_settings(MINIMAL).devices
    assert settings.unused_device_variables(MINIMAL, single) == []


@pytest.mark.parametrize("written", ["off", "OFF", "none"])
def test_settings_unit_role_switched_off(written):
    loaded = settings.load_settings({**MINIMAL, "DRIVER_PROFILE_PATH": "victron_multiplus",
                                     "MODBUS_UNIT_BATTERY": written})
    assert loaded.devices[0].unit_ids == {"battery": None}
