"""``bessai forward`` as systemd runs it: exit statuses, the settings file, sd_notify."""

import os
import signal
import socket
import subprocess
import time

import pytest

from bessai_edge.errors import EX_CONFIG, EX_UNAVAILABLE
from bessai_edge.forward.checkpoint import CheckpointFile
from tests.conftest import free_tcp_port
from tests.forward.conftest import (ForwarderProcess, RecordWriter, forward_command,
                                    forward_environment, receive_notifications)
from tests.settings.helpers import NOBODY, read_only_spool_dir, spool_and_state_dirs

DELIVERY_TIMEOUT_S = 60


def run_forward(environ, *args, timeout=30):
    return subprocess.run([*forward_command(), *args], env=environ, capture_output=True,
                          text=True, timeout=timeout)


def base_environment():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def test_forward_command_disabled_exits_69(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=SITE-TEST-001\nMQTT_ENABLED=false\nMQTT_BROKER_HOST=\n")
    result = run_forward(base_environment(), "--env-file", str(env_file))
    assert result.returncode == EX_UNAVAILABLE, result.stderr
    assert "MQTT forwarding is off (MQTT_ENABLED is not true)" in result.stderr
    # It did not say what to set, or in which file.
    assert (f"set MQTT_ENABLED=true and MQTT_BROKER_HOST in {env_file}, and start bessai "
            f"forward again") in result.stderr, result.stderr


def test_forward_command_disabled_without_file_names_installed(tmp_path):
    environ = {**base_environment(), "SITE_ID": "SITE-TEST-001", "MQTT_ENABLED": "false"}
    result = run_forward(environ)
    assert result.returncode == EX_UNAVAILABLE, result.stderr
    assert ("set MQTT_ENABLED=true and MQTT_BROKER_HOST in the environment, or in a settings "
            "file given with --env-file (/etc/bessai/bessai.env when installed)"
            in result.stderr), result.stderr


def test_forward_command_invalid_settings_exit_78(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("MQTT_ENABLED=true\nMQTT_BROKER_HOST=192.168.1.200\n"
                        "MQTT_PORT=99999\nMQTT_INFLIGHT=lots\nMQTT_TOPIC_PREFIX=a/+/b\n"
                        "MQTT_ACK_TIMEOUT_S=0.5\n")
    result = run_forward(base_environment(), "--env-file", str(env_file))
    assert result.returncode == EX_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, result.stderr
    assert lines[0].startswith(f"bessai: {env_file}:3: MQTT_PORT='99999' is invalid")
    assert lines[1].startswith(f"bessai: {env_file}:4: MQTT_INFLIGHT='lots' is invalid")
    assert lines[2].startswith(f"bessai: {env_file}:5: MQTT_TOPIC_PREFIX='a/+/b' is invalid")
    assert lines[3].startswith(f"bessai: {env_file}:6: MQTT_ACK_TIMEOUT_S='0.5' is invalid")


def test_forward_command_reserved_topic_prefix_exit_78(tmp_path):
    # A prefix under $SYS was accepted, and the broker then rejected every record for good.
    env_file = tmp_path / "bessai.env"
    env_file.write_text("MQTT_ENABLED=true\nMQTT_BROKER_HOST=127.0.0.1\n"
                        "MQTT_TOPIC_PREFIX='$SYS/x'\n")
    result = run_forward(base_environment(), "--env-file", str(env_file))
    assert result.returncode == EX_CONFIG, result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith(f"bessai: {env_file}:3: MQTT_TOPIC_PREFIX='$SYS/x' is invalid")
    assert "reserved for the broker" in line
    assert "remove the leading '$'" in line


def test_forward_command_misspelt_mqtt_name_exit_78(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=SITE-TEST-001\nMQT_ENABLED=true\nMQTT_BROKER_HOST=192.168.1.200\n")
    result = run_forward(base_environment(), "--env-file", str(env_file))
    assert result.returncode == EX_CONFIG
    assert f"bessai: {env_file}:2: MQT_ENABLED is not a bessai setting: did you mean " \
           f"MQTT_ENABLED?" in result.stderr


def test_forward_command_misspelt_run_name_ignored(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("SITE_ID=SITE-TEST-001\nSCAN_INTERVL_S=2\nMQTT_ENABLED=false\n")
    result = run_forward(base_environment(), "--env-file", str(env_file))
    assert result.returncode == EX_UNAVAILABLE, result.stderr   # `bessai run` reports it
    assert "SCAN_INTERVL_S" not in result.stderr


def test_forward_command_environment_overrides_file(tmp_path):
    env_file = tmp_path / "bessai.env"
    env_file.write_text("MQTT_ENABLED=true\nMQTT_BROKER_HOST=192.168.1.200\n")
    result = run_forward({**base_environment(), "MQTT_ENABLED": "false"},
                         "--env-file", str(env_file))
    assert result.returncode == EX_UNAVAILABLE, result.stderr   # forwarding off


@pytest.mark.parametrize("status_text", [
    "Exit status: 0 after SIGTERM or Ctrl-C",
    "69 when MQTT_ENABLED is not true",
    "78 for invalid settings, a checkpoint or spool directory that cannot be used",
])
def test_forward_help_lists_exit_status(status_text):
    result = run_forward(base_environment(), "--help")
    assert result.returncode == 0, result.stderr
    assert status_text in " ".join(result.stdout.split()), result.stdout


def test_forward_command_missing_state_dir_exit_78(tmp_path):
    environ = forward_environment(free_tcp_port(), tmp_path, tmp_path / "no-state")
    result = run_forward(environ)
    assert result.returncode == EX_CONFIG
    assert (f"FORWARD_STATE_DIR='{tmp_path / 'no-state'}' does not exist: create it, owned "
            f"by the bessai user (sudo install -d -m 0750 -o bessai -g bessai "
            f"{tmp_path / 'no-state'})" in result.stderr), result.stderr


def test_forward_command_missing_spool_dir_exit_78(tmp_path):
    environ = forward_environment(free_tcp_port(), tmp_path / "no-spool", tmp_path)
    result = run_forward(environ)
    assert result.returncode == EX_CONFIG
    assert f"spool directory {tmp_path / 'no-spool'} does not exist" in result.stderr


def test_forward_command_sd_notify_while_broker_down(tmp_path):
    """READY before any broker responds, WATCHDOG while it is down, STATUS, then STOPPING."""
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    (tmp_path / "spool").mkdir()
    (tmp_path / "state").mkdir()
    environ = forward_environment(free_tcp_port(), tmp_path / "spool", tmp_path / "state",
                                  NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=400000)
    forwarder = ForwarderProcess(environ, tmp_path / "forward.log").start()
    try:
        messages = receive_notifications(sock, time.monotonic() + 20,
                                         lambda data: "READY=1" in data)
        assert messages and "READY=1" in messages[-1], messages
        messages = receive_notifications(sock, time.monotonic() + 2.0)
        watchdogs = [data for data in messages if data == "WATCHDOG=1"]
        # 0.4 s interval: a send every 0.1 s is due; allow for a busy machine.
        assert len(watchdogs) >= 5, messages
        statuses = [data for data in messages if data.startswith("STATUS=")]
        assert statuses, messages
        assert statuses[-1].startswith("STATUS=broker 127.0.0.1:")
        assert " unreachable: connection refused; next attempt in " in statuses[-1]
        os.kill(forwarder.process.pid, signal.SIGTERM)
        messages = receive_notifications(sock, time.monotonic() + 10,
                                         lambda data: "STOPPING=1" in data)
        assert any("STOPPING=1" in data for data in messages), messages
        assert forwarder.process.wait(timeout=10) == 0
    finally:
        if forwarder.process.poll() is None:
            forwarder.kill()
        sock.close()


def test_forward_command_stop_without_checkpoint_log(tmp_path):
    (tmp_path / "spool").mkdir()
    (tmp_path / "state").mkdir()
    environ = forward_environment(free_tcp_port(), tmp_path / "spool", tmp_path / "state")
    forwarder = ForwarderProcess(environ, tmp_path / "forward.log").start()
    try:
        assert forwarder.wait_for_log("forwarding spool"), forwarder.log_text()
    finally:
        status = forwarder.stop()
    log = forwarder.log_text()
    assert status == 0, log
    assert "forwarder stopped: 0 records delivered since start, no checkpoint yet" in log, log
    assert "checkpoint after record -" not in log, log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda signum: signum.name)
def test_forward_command_stop_signal_saves_checkpoint(signum, mosquitto, subscriber, spool_dir,
                                                      state_dir, start_forwarder):
    # SIGHUP, sent when the terminal of a foreground run closes, ended the forwarder
    # without a log line or a checkpoint save, so the next run sent the records again.
    writer = RecordWriter(spool_dir)
    writer.append(20)
    writer.spool.flush()
    # No save before the stop: the window has room and the interval is an hour.
    forwarder = start_forwarder(FORWARD_CHECKPOINT_INTERVAL_S=3600)
    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    assert CheckpointFile(state_dir).load() is None

    os.kill(forwarder.process.pid, signum)
    assert forwarder.process.wait(timeout=15) == 0
    log = forwarder.log_text()
    assert f"stopping: received {signum.name}" in log, log
    assert "forwarder stopped: 20 records delivered since start" in log, log
    assert CheckpointFile(state_dir).load().seq == writer.seqs[-1]
    writer.close()


def state_dir_environment(tmp_path, state_dir):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    return {**base_environment(), "SITE_ID": "SITE-TEST-001", "MQTT_ENABLED": "true",
            "MQTT_BROKER_HOST": "127.0.0.1", "MQTT_PORT": str(free_tcp_port()),
            "SPOOL_DIR": str(spool_dir), "FORWARD_STATE_DIR": str(state_dir)}


def test_forward_checkpoint_path_is_directory_exit_78(tmp_path):
    # A directory where the checkpoint file belongs ended in an IsADirectoryError traceback.
    state_dir = tmp_path / "state"
    (state_dir / "forward-checkpoint.json").mkdir(parents=True)
    result = run_forward(state_dir_environment(tmp_path, state_dir))
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    assert (f"the checkpoint {state_dir}/forward-checkpoint.json is not a file: remove it"
            in result.stderr)


def test_forward_read_only_state_dir_exit_78(tmp_path, needs_root):
    # The advice was `chown`, which cannot help on a read-only mount.
    with read_only_spool_dir(tmp_path) as state_dir:
        result = run_forward(state_dir_environment(tmp_path, state_dir))
    assert result.returncode == EX_CONFIG, result.stderr
    assert f"FORWARD_STATE_DIR='{state_dir}' is on a read-only file system" in result.stderr
    assert "chown" not in result.stderr


def test_forward_root_run_state_dir_names_switched_user(needs_root):
    # A root run switched to the spool's owner, the user nobody, and then advised
    # `chown bessai:` for the state directory, which that user still could not write.
    with spool_and_state_dirs(NOBODY) as (spool_dir, state_dir):
        result = run_forward(forward_environment(free_tcp_port(), spool_dir, state_dir))

    assert result.returncode == EX_CONFIG, result.stderr
    assert "running as root: switched to user nobody (uid 65534)" in result.stderr
    assert (f"FORWARD_STATE_DIR='{state_dir}' is not writable by user nobody, which runs "
            f"the forwarder: run `chown nobody: {state_dir}`") in result.stderr
    assert "chown bessai:" not in result.stderr
