"""``bessai check --help``: the exit statuses a script can act on."""

import subprocess

import pytest

from tests.conftest import bessai_command


@pytest.fixture(scope="module")
def check_help():
    result = subprocess.run([*bessai_command(), "check", "--help"], capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin",
                                                        "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())  # argparse wraps the epilog to the terminal


@pytest.mark.parametrize("status_text", [
    "Exit status: 0 when every device is fine",
    "1 when a device answered with problems or the devices' reads together do not fit "
    "SCAN_INTERVAL_S",
    "2 when no device gave data or a device's simulator did not start",
    "78 for invalid settings or an unknown --device",
])
def test_check_help_lists_exit_status(check_help, status_text):
    assert status_text in check_help, check_help
