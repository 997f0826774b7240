"""``bessai check`` when the device cannot be read: ``--json`` still gives data on stdout,
consistent with the diagnosis; and the simulator child's banner stays out of its output.
Real processes, real sockets on loopback."""

import json

from tests.check.test_check import run_check
from tests.conftest import free_tcp_port
from tests.simulator.test_simulate_listen import BANNER

EXIT_NO_DATA = 2


def test_check_json_refused_prints_device_error_and_points():
    port = free_tcp_port()  # nothing listens: refused
    result = run_check("--json", port=port, profile="huawei_sun2000")
    assert result.returncode == EXIT_NO_DATA, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert objects, "a script reading --json gets data"
    assert objects[0] == {"device": "inverter", "device_error": {
        "endpoint": f"127.0.0.1:{port}", "unit_id": 1, "kind": "refused",
        "message": f"connection to 127.0.0.1:{port} refused"}}
    points = objects[1:]
    assert len(points) > 10
    assert {point["quality"] for point in points} == {"comm_error"}
    assert {point["error"] for point in points} == {"refused"}
    assert all(point["value"] is None for point in points)
    assert "[refused]" in result.stderr  # the diagnosis names the same kind


def test_check_json_refused_sunspec_prints_device_error():
    port = free_tcp_port()
    result = run_check("--json", port=port, profile="fronius_gen24")
    assert result.returncode == EXIT_NO_DATA, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objects) == 1, "SunSpec points are unknown without discovery"
    assert objects[0]["device_error"]["kind"] == "refused"


def test_check_table_refused_lists_points_as_communication_error():
    port = free_tcp_port()
    result = run_check(port=port, profile="huawei_sun2000")
    assert result.returncode == EXIT_NO_DATA, result.stderr
    assert "communication error (connection refused)" in result.stdout
    assert "[error: refused]" in result.stdout  # the diagnosis keeps the documented kind


def test_check_table_names_the_error_in_spanish():
    port = free_tcp_port()
    result = run_check(port=port, profile="huawei_sun2000", LANG="es_CL.UTF-8")
    assert result.returncode == EXIT_NO_DATA, result.stderr
    assert "error de comunicación (conexión rechazada)" in result.stdout
    assert "(refused)" not in result.stdout


def test_check_simulator_mode_hides_simulator_banner():
    result = run_check("--json", profile="huawei_sun2000", BESSAI_MODE="simulator")
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout.strip()
    assert BANNER not in result.stderr
    assert BANNER not in result.stdout
