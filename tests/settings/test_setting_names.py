"""Setting names: misspelt DEVICE_ names, devices missing from DEVICES, all problems at once."""

import os
import subprocess
import time

import pytest

from bessai_edge import envfile, settings
from bessai_edge.errors import EX_CONFIG, ConfigError
from tests.conftest import REPO, bessai_command

TWO_DEVICES = {"SITE_ID": "SITE-ATACAMA-001", "BESSAI_MODE": "simulator",
               "DRIVER_PROFILE_PATH": "huawei_sun2000", "DEVICES": "inverter,battery"}


def problems_of(environ):
    with pytest.raises(ConfigError) as caught:
        settings.load_settings(environ)
    return caught.value.problems


# (variables added to TWO_DEVICES, the one expected problem line).
BAD_NAMES = [
    ({"DEVICE_BATTERY_SLAVEID": "7"},
     "DEVICE_BATTERY_SLAVEID is not a bessai setting: did you mean DEVICE_BATTERY_SLAVE_ID?"),
    ({"DEVICE_INVERTR_PROFILE": "sma_sunny_tripower"},
     "DEVICE_INVERTR_PROFILE is not a bessai setting: did you mean DEVICE_INVERTER_PROFILE?"),
    ({"DEVICE_BATERY_IP": "192.168.1.101"},
     "DEVICE_BATERY_IP is not a bessai setting: did you mean DEVICE_BATTERY_IP?"),
    ({"DEVICE_BATERY_UNIT_VEBUS": "227"},
     "DEVICE_BATERY_UNIT_VEBUS is not a bessai setting: did you mean DEVICE_BATTERY_UNIT_VEBUS?"),
    ({"DEVICE_BATTERY_UNITS_VEBUS": "227"},
     "DEVICE_BATTERY_UNITS_VEBUS is not a bessai setting: did you mean DEVICE_BATTERY_UNIT_VEBUS?"),
    ({"DEVICE_BATERY_SLAVEID": "7"},
     "DEVICE_BATERY_SLAVEID is not a bessai setting: did you mean DEVICE_BATTERY_SLAVE_ID?"),
    ({"DEVICE_battery_PORT": "1502"},
     "DEVICE_battery_PORT is not a bessai setting: did you mean DEVICE_BATTERY_PORT?"),
    ({"DEVICE_BATTERY_port": "1502"},
     "DEVICE_BATTERY_port is not a bessai setting: did you mean DEVICE_BATTERY_PORT?"),
    ({"DEVICE_BATTERYIP": "192.168.1.101"},
     "DEVICE_BATTERYIP is not a bessai setting: did you mean DEVICE_BATTERY_IP?"),
    ({"DEVICE_BATTERY_FOO": "1"},
     "DEVICE_BATTERY_FOO is not a setting of device battery: expected DEVICE_BATTERY_ followed "
     "by IP, PORT, PROFILE, SLAVE_ID or UNIT_<ROLE>"),
    ({"DEVICE_BATTERY_UNIT_": "1"},
     "DEVICE_BATTERY_UNIT_='1' is invalid: the role after DEVICE_BATTERY_UNIT_ must be"),
    ({"DEVICE_X_IP": "1.2.3.4"},
     "DEVICE_X_IP does not name a device listed in DEVICES (inverter,battery): device "
     "settings are DEVICE_<NAME>_IP, _PORT, _PROFILE, _SLAVE_ID and _UNIT_<ROLE>; add the "
     "device to DEVICES, or correct or remove the variable"),
    ({"DEVICE_BATTERY_SLAVE_ID": "7", "DEVICE_BATTERY_UNIT_VE-BUS": "5"},
     "DEVICE_BATTERY_UNIT_VE-BUS='5' is invalid: the role after DEVICE_BATTERY_UNIT_ must be"),
]


@pytest.mark.parametrize("variables, message", BAD_NAMES,
                         ids=[next(iter(case)) for case, _ in BAD_NAMES])
def test_device_name_bad(variables, message):
    problems = problems_of({**TWO_DEVICES, **variables})
    assert len(problems) == 1, problems
    assert problems[0].startswith(message), problems


def test_device_name_without_devices_list():
    environ = {**TWO_DEVICES, "DEVICE_INVERTER_IP": "192.168.1.100"}
    del environ["DEVICES"]
    problems = problems_of(environ)
    assert problems == [
        "DEVICE_INVERTER_IP is set but DEVICES is not: list the devices in DEVICES, or set "
        "INVERTER_IP, INVERTER_PORT, DRIVER_PROFILE_PATH, MODBUS_SLAVE_ID and "
        "MODBUS_UNIT_<ROLE> for a single device"]


def test_device_name_prefers_longest_device():
    loaded = settings.load_settings({
        **TWO_DEVICES, "DEVICES": "pv,pv_2", "DEVICE_PV_2_SLAVE_ID": "2",
        "DEVICE_PV_SLAVE_ID": "1"})
    assert [(device.name, device.unit_id) for device in loaded.devices] == [
        ("pv", 1), ("pv_2", 2)]


def test_device_name_every_field_accepted():
    loaded = settings.load_settings({
        **TWO_DEVICES, "BESSAI_MODE": "modbus", "INVERTER_IP": "192.168.1.100",
        "DEVICE_BATTERY_IP": "192.168.1.101", "DEVICE_BATTERY_PORT": "1502",
        "DEVICE_BATTERY_PROFILE": "victron_multiplus", "DEVICE_BATTERY_SLAVE_ID": "100",
        "DEVICE_BATTERY_UNIT_VEBUS": "246", "MQTT_ENABLED": "false", "FORWARD_X": "1"})
    battery = loaded.devices[1]
    assert (battery.host, battery.port, battery.profile, battery.unit_id) == (
        "192.168.1.101", 1502, "victron_multiplus", 100)
    assert battery.unit_ids == {"vebus": 246}


def test_device_name_invalid_devices_skips_name_check():
    problems = problems_of({**TWO_DEVICES, "DEVICES": "Inverter 1", "DEVICE_X_IP": "1.2.3.4"})
    assert len(problems) == 1, problems
    assert problems[0].startswith("DEVICES='Inverter 1' is invalid"), problems


# Three misspelt names and bad values of many kinds, in one file.
MANY_PROBLEMS = """\
SITE_ID=a b
BESSAI_MODE=modbus
INVERTER_IP=192.168.1.100:502
INVERTER_PORTT=502
DRIVER_PROFILE_PATH=huawei_sun3000
MODBUS_SLAVE_ID=255
DEVICES=inverter,battery
DEVICE_BATTERY_SLAVEID=7
DEVICE_INVERTR_PROFILE=sma_sunny_tripower
DEVICE_BATTERY_PORT=0
SCAN_INTERVAL_S=0
CONNECT_TIMEOUT_S=nan
REQUEST_TIMEOUT_S=60
SPOOL_DIR=rel/dir
SPOOL_SEGMENT_MAX_BYTES=16X
SPOOL_FSYNC_INTERVAL_S=-1
HEALTH_LISTEN=8000
LOG_LEVEL=verbose
STALE_AFTER_S=never
LIMIT_SOC_HYSTERESIS=-1
LIMIT_DEBOUNCE_CYCLES=0
GRID_NOMINAL_FREQUENCY_HZ=55
"""
MANY_EXPECTED = [
    "INVERTER_PORTT is not a bessai setting: did you mean INVERTER_PORT?",
    "DEVICE_BATTERY_SLAVEID is not a bessai setting: did you mean DEVICE_BATTERY_SLAVE_ID?",
    "DEVICE_INVERTR_PROFILE is not a bessai setting: did you mean DEVICE_INVERTER_PROFILE?",
    "SITE_ID='a b' is invalid", "INVERTER_IP='192.168.1.100:502' is invalid",
    "DRIVER_PROFILE_PATH='huawei_sun3000' is invalid",
    "MODBUS_SLAVE_ID='255' is invalid: expected an integer from 0 to 247",
    "DEVICE_BATTERY_PORT='0' is invalid", "SCAN_INTERVAL_S='0' is invalid",
    "CONNECT_TIMEOUT_S='nan' is invalid", "REQUEST_TIMEOUT_S='60' is invalid",
    "SPOOL_DIR='rel/dir' is invalid", "SPOOL_SEGMENT_MAX_BYTES='16X' is invalid",
    "SPOOL_FSYNC_INTERVAL_S='-1' is invalid", "HEALTH_LISTEN='8000' is invalid",
    "LOG_LEVEL='verbose' is invalid",
    "STALE_AFTER_S='never' is invalid: expected a positive number of seconds, or off",
    "LIMIT_SOC_HYSTERESIS='-1' is invalid", "LIMIT_DEBOUNCE_CYCLES='0' is invalid",
    "GRID_NOMINAL_FREQUENCY_HZ='55' is invalid",
]


def test_settings_names_and_values_reported_together(tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text(MANY_PROBLEMS)
    problems = problems_of(settings.read_environment(str(env_file), {}))
    for expected in MANY_EXPECTED:
        assert any(expected in line for line in problems), (expected, problems)


def test_settings_invalid_value_names_its_line(tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text("SITE_ID=plant-1\n# a comment\nSCAN_INTERVAL_S=1,5\n"
                        "SCAN_INTERVAL_S=2,5\nINVERTER_IP=10.0.0.5\n")
    problems = problems_of(settings.read_environment(str(env_file), {}))
    assert any(line.startswith(f"{env_file}:4: SCAN_INTERVAL_S='2,5' is invalid")
               for line in problems), problems


def test_settings_process_value_names_no_line(tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text("SITE_ID=plant-1\nSCAN_INTERVAL_S=1,5\nINVERTER_IP=10.0.0.5\n")
    problems = problems_of(settings.read_environment(str(env_file), {"SCAN_INTERVAL_S": "x"}))
    assert any(line.startswith("SCAN_INTERVAL_S='x' is invalid") for line in problems), problems
    assert not any(f"{env_file}:2" in line for line in problems), problems


def test_run_names_and_values_reported_together(tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text(MANY_PROBLEMS)
    result = subprocess.run([*bessai_command(), "run", "--env-file", str(env_file)],
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EX_CONFIG
    for expected in MANY_EXPECTED:
        assert any(expected in line for line in lines), (expected, lines)


def test_run_and_check_warn_of_repeated_setting(tmp_path):
    env_file = tmp_path / "repeat.env"
    env_file.write_text("SITE_ID=site\nSCAN_INTERVAL_S=5\nINVERTER_PORT=0\nSCAN_INTERVAL_S=1\n")
    warning = (f"warning: {env_file}:4: SCAN_INTERVAL_S is set again (first on line 2); "
               f"the last line that sets it wins")
    for command in ("run", "check", "forward"):
        result = subprocess.run([*bessai_command(), command, "--env-file", str(env_file)],
                                capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        if command != "forward":  # the forwarder does not read INVERTER_PORT
            assert result.returncode == EX_CONFIG, result.stderr  # INVERTER_PORT=0
        assert "bessai: " + warning in result.stderr, (command, result.stderr)


def test_run_misspelt_device_setting_exit_78(tmp_path):
    # A misspelt device setting stops the gateway instead of leaving the device on the
    # fallback profile and unit id.
    env_file = tmp_path / "devices.env"
    env_file.write_text("SITE_ID=site\nBESSAI_MODE=simulator\n"
                        "DRIVER_PROFILE_PATH=huawei_sun2000\nDEVICES=inverter,battery\n"
                        "DEVICE_BATTERY_SLAVEID=7\nDEVICE_INVERTR_PROFILE=sma_sunny_tripower\n")
    result = subprocess.run([*bessai_command(), "run", "--env-file", str(env_file),
                             "--cycles", "1"],
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                                 "SPOOL_DIR": str(tmp_path / "spool"), "HEALTH_LISTEN": ""})
    assert result.returncode == EX_CONFIG, result.stderr
    assert "did you mean DEVICE_BATTERY_SLAVE_ID?" in result.stderr
    assert "did you mean DEVICE_INVERTER_PROFILE?" in result.stderr


@pytest.mark.parametrize("directory", ["/var/spool/bessai", "./.cache/spool", "../spool", "."])
def test_spool_dir_accepted(directory):
    loaded = settings.load_settings({**TWO_DEVICES, "SPOOL_DIR": directory})
    assert loaded.spool.directory == directory


def test_make_run_keeps_edited_settings(tmp_path):
    # A newer template used to overwrite the copy that the README tells users to edit.
    template, env_file = tmp_path / "template.env", tmp_path / "bessai.env"
    template.write_text("SITE_ID=one\nSPOOL_DIR=/x\n", encoding="utf-8")
    command = ["make", "-s", "--no-print-directory", "-C", str(REPO), "dev-env",
               f"DEV_ENV={env_file}", f"ENV_TEMPLATE={template}"]
    assert subprocess.run(command, capture_output=True, timeout=60).returncode == 0
    env_file.write_text("SITE_ID=edited\n", encoding="utf-8")
    template.write_text("SITE_ID=two\n", encoding="utf-8")
    os.utime(template, (time.time() + 5, time.time() + 5))  # newer than the copy
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert env_file.read_text(encoding="utf-8") == "SITE_ID=edited\n"
    assert (tmp_path / "bessai.env.new").read_text(encoding="utf-8") == "SITE_ID=two\n"
    assert f"diff {env_file} {env_file}.new" in rerun.stdout


def test_make_run_settings_load_without_warnings(tmp_path):
    # `make run` used to set SPOOL_DIR and HEALTH_LISTEN on its command line, which
    # overrides the settings file, so the README's first command began with two warnings.
    env_file = tmp_path / "bessai.env"
    made = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO), "dev-env",
                           f"DEV_ENV={env_file}"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    environ = settings.read_environment(str(env_file), {"PATH": "/usr/bin:/bin"})
    assert environ.warnings == []
    loaded = settings.load_settings(environ)
    assert envfile.is_explicit_path(loaded.spool.directory), loaded.spool.directory
    assert loaded.spool.directory.startswith("./.cache/")
    assert loaded.health_listen is None
    assert loaded.mode == "simulator"
