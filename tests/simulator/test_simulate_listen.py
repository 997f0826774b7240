"""``bessai simulate`` when it cannot listen, and its banner: real processes, real sockets."""

import socket
import subprocess

from bessai_edge.errors import EX_CONFIG
from bessai_edge.simulator_process import SimulatorProcess
from tests.conftest import bessai_command

BANNER = "stop with Ctrl-C"
# TEST-NET-1 (RFC 5737): never an address of this host, so bind() fails locally with
# EADDRNOTAVAIL before any packet is sent.
FOREIGN_ADDRESS = "192.0.2.1"


def run_simulate(*arguments):
    return subprocess.run([*bessai_command(), "simulate", "--profile", "huawei_sun2000",
                           *arguments], capture_output=True, text=True, timeout=60)


def test_simulate_port_in_use_exits_78_with_one_line():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = run_simulate("--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "--port" in lines[0]
    assert result.stdout == ""  # no ready line


def test_simulate_foreign_address_exits_78_with_one_line():
    result = run_simulate("--host", FOREIGN_ADDRESS, "--port", "0")
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"cannot listen on {FOREIGN_ADDRESS}:0" in lines[0]
    assert "--host" in lines[0]


def test_simulate_help_documents_exit_status():
    result = subprocess.run([*bessai_command(), "simulate", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "78" in result.stdout


def test_simulate_banner_only_without_parent_pid():
    interactive = subprocess.Popen(
        [*bessai_command(), "simulate", "--profile", "huawei_sun2000", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert interactive.stdout.readline().startswith("listening on ")
        assert BANNER in interactive.stderr.readline()
    finally:
        interactive.terminate()
        interactive.communicate(timeout=30)

    # The command line the gateway uses for its children, with --parent-pid.
    command = SimulatorProcess(["--profile", "huawei_sun2000"]).command(port=0)
    assert "--parent-pid" in command
    with_parent = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert with_parent.stdout.readline().startswith("listening on ")
    finally:
        with_parent.terminate()
        _, stderr = with_parent.communicate(timeout=30)
    assert BANNER not in stderr


def test_simulate_banner_lists_the_faults():
    interactive = subprocess.Popen(
        [*bessai_command(), "simulate", "--profile", "huawei_sun2000", "--port", "0",
         "--busy-every", "10", "--exception", "32064=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert interactive.stdout.readline().startswith("listening on ")
        banner = interactive.stderr.readline()
    finally:
        interactive.terminate()
        interactive.communicate(timeout=30)
    assert "with faults --exception 32064=2 --busy-every 10" in banner
