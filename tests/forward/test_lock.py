"""One ``bessai forward`` per spool: a second one exits with status 78 and a clear error.

Two forwarders on one spool share the client id, knock each other off the broker,
report false sequence gaps for the segments the other deleted, and send duplicates.
While the first forwarder runs, the ``RecordWriter`` keeps the spool open and so
holds the lock that ``bessai run`` takes on the directory: the two locks must not
conflict.
"""

import fcntl
import os
import re
import subprocess

import pytest

from bessai_edge.errors import EX_CONFIG
from bessai_edge.forward.lock import FILE_NAME
from tests.conftest import free_tcp_port
from tests.forward.conftest import (ForwarderProcess, RecordWriter, forward_command,
                                    forward_environment)
from tests.settings.helpers import read_only_spool_dir

DELIVERY_TIMEOUT_S = 60
# A second forwarder must exit at once. Without the lock it keeps running, so the wait
# ends with TimeoutExpired, and subprocess.run kills it.
EXIT_TIMEOUT_S = 30


def run_forward_until_exit(port, spool_dir, state_dir, **variables):
    """Run ``bessai forward`` on the spool; return its CompletedProcess once it exits."""
    environ = {**forward_environment(port, spool_dir, state_dir), **variables}
    return subprocess.run(forward_command(), env=environ, capture_output=True, text=True,
                          timeout=EXIT_TIMEOUT_S)


def test_forward_second_process_exits_78(tmp_path, mosquitto, subscriber, spool_dir,
                                         start_forwarder):
    writer = RecordWriter(spool_dir)
    first_records = writer.append(50)
    writer.spool.flush()
    first = start_forwarder()
    assert subscriber.wait_for_seqs(first_records, DELIVERY_TIMEOUT_S) == set()

    # A manual run with its own state directory: the spool alone decides.
    other_state = tmp_path / "other-state"
    other_state.mkdir()
    second = run_forward_until_exit(mosquitto.port, spool_dir, other_state)
    assert second.returncode == EX_CONFIG
    assert (f"bessai: spool directory {spool_dir} is in use by another bessai forward "
            f"process, PID {first.process.pid} (it holds the lock file {spool_dir / FILE_NAME})"
            ) in second.stderr
    assert "systemctl stop bessai-forward" in second.stderr
    assert f"(kill {first.process.pid})" in second.stderr  # /proc/locks names the holder
    assert "forwarding spool" not in second.stderr   # it stopped before starting up

    # The service (systemd sets INVOCATION_ID) starts while a manual run has the spool locked.
    service = run_forward_until_exit(mosquitto.port, spool_dir, other_state,
                                     INVOCATION_ID="0123456789abcdef0123456789abcdef")
    assert service.returncode == EX_CONFIG
    assert "probably one started by hand: end it" in service.stderr
    # The unit hides /proc/locks (ProcSubset=pid), so the service's message names a
    # pgrep pattern, which must find the holder.
    pattern = re.search(r"pgrep -af '([^']+)'", service.stderr)
    assert pattern, service.stderr
    found = subprocess.run(["pgrep", "-af", pattern.group(1)], capture_output=True, text=True)
    assert str(first.process.pid) in found.stdout.split(), found.stdout
    assert "systemctl start bessai-forward" in service.stderr

    # The first forwarder was never knocked off the broker and goes on delivering.
    more_records = writer.append(50)
    writer.spool.flush()
    assert subscriber.wait_for_seqs(more_records, DELIVERY_TIMEOUT_S) == set()
    assert first.stop() == 0
    assert "MQTT outage" not in first.log_text()
    assert "sequence gap" not in first.log_text()
    assert sorted(subscriber.telemetry_seqs()) == writer.seqs   # no duplicates
    assert (spool_dir / FILE_NAME).exists()   # kept for the next start
    writer.close()


def test_forward_lock_file_unusable_exits_78(tmp_path, spool_dir, state_dir):
    # A directory in place of the lock file cannot be opened, even by root.
    (spool_dir / FILE_NAME).mkdir()
    result = run_forward_until_exit(free_tcp_port(), spool_dir, state_dir)
    assert result.returncode == EX_CONFIG
    assert (f"bessai: cannot open the lock file {spool_dir / FILE_NAME} ([Errno 21] Is a "
            f"directory") in result.stderr
    assert f" (uid {os.geteuid()}) needs read access to this file" in result.stderr


def test_forward_lock_released_at_stop(tmp_path, mosquitto, spool_dir, state_dir,
                                       start_forwarder):
    first = start_forwarder()
    assert first.wait_for_log("connected to MQTT broker"), first.log_text()
    assert first.stop() == 0
    environ = forward_environment(mosquitto.port, spool_dir, state_dir)
    second = ForwarderProcess(environ, tmp_path / "second.log").start()
    try:
        assert second.wait_for_log("connected to MQTT broker"), second.log_text()
        assert second.stop() == 0
    finally:
        if second.process.poll() is None:
            second.kill()


def test_forward_lock_file_deleted_is_locked_again(mosquitto, spool_dir, state_dir,
                                                   start_forwarder):
    # `rm` of the spool's files deletes the lock file while the forwarder holds it.
    first = start_forwarder()
    assert first.wait_for_log("connected to MQTT broker"), first.log_text()
    lock_path = spool_dir / FILE_NAME
    lock_path.unlink()
    assert first.wait_for_log("locked the new one", timeout=DELIVERY_TIMEOUT_S), \
        first.log_text()
    assert lock_path.exists()

    second = run_forward_until_exit(mosquitto.port, spool_dir, state_dir)
    assert second.returncode == EX_CONFIG
    assert "is in use by another bessai forward process" in second.stderr
    assert first.stop() == 0


def test_forward_stops_when_lock_taken_over(mosquitto, spool_dir, start_forwarder):
    first = start_forwarder()
    assert first.wait_for_log("connected to MQTT broker"), first.log_text()

    # Another process locks a new lock file and moves it in place of the first one's.
    replacement = spool_dir / (FILE_NAME + ".new")
    fd = os.open(replacement, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(replacement, spool_dir / FILE_NAME)
        assert first.process.wait(timeout=DELIVERY_TIMEOUT_S) == EX_CONFIG
    finally:
        os.close(fd)
    log = first.log_text()
    assert "another bessai forward process holds the new one: stopping" in log
    assert "forwarder stopped" in log


@pytest.mark.root
@pytest.mark.parametrize("lock_file_exists", [False, True], ids=["new", "existing"])
def test_forward_read_only_spool_names_fix(tmp_path, state_dir, needs_root,
                                           lock_file_exists):
    # Under the unit, ProtectSystem=strict makes a SPOOL_DIR outside ReadWritePaths=
    # read-only, so the fix is a drop-in, not access for the user. A lock file made
    # earlier still opens on a read-only file system, and the forwarder could then
    # not delete delivered segments.
    with read_only_spool_dir(tmp_path, (FILE_NAME,) if lock_file_exists else ()) as spool_dir:
        service = run_forward_until_exit(free_tcp_port(), spool_dir, state_dir,
                                         INVOCATION_ID="0123456789abcdef0123456789abcdef")
        by_hand = run_forward_until_exit(free_tcp_port(), spool_dir, state_dir)

    assert service.returncode == EX_CONFIG
    assert (f"bessai: spool directory {spool_dir} is read-only for the service: the "
            "bessai-forward unit may write only to /var/spool/bessai") in service.stderr
    assert "ReadWritePaths=" in service.stderr
    assert "systemctl edit bessai-forward" in service.stderr
    assert "needs read access" not in service.stderr
    assert by_hand.returncode == EX_CONFIG
    assert (f"bessai: spool directory {spool_dir} is on a read-only file system: remount it "
            "read-write") in by_hand.stderr
    assert "forwarding spool" not in service.stderr + by_hand.stderr
