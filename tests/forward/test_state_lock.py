"""One forwarder per FORWARD_STATE_DIR: a forwarder of another spool exits with status 78.

Two forwarders that share the state directory overwrite each other's checkpoint, so
each restart would send its whole spool again.
"""

import subprocess

from bessai_edge.errors import EX_CONFIG
from bessai_edge.forward.checkpoint import FILE_NAME as CHECKPOINT_NAME
from bessai_edge.forward.state_lock import FILE_NAME
from tests.forward.conftest import (RecordWriter, forward_command, forward_environment,
                                    wait_until)

DELIVERY_TIMEOUT_S = 60
EXIT_TIMEOUT_S = 30   # without the lock the second forwarder runs on until this kills it


def test_forward_shared_state_dir_exits_78(tmp_path, mosquitto, subscriber, spool_dir,
                                           state_dir, start_forwarder):
    writer = RecordWriter(spool_dir)
    records = writer.append(20)
    writer.close()
    first = start_forwarder()
    assert subscriber.wait_for_seqs(records, DELIVERY_TIMEOUT_S) == set()
    assert wait_until((state_dir / CHECKPOINT_NAME).exists, DELIVERY_TIMEOUT_S)
    checkpoint_before = (state_dir / CHECKPOINT_NAME).read_bytes()

    other_spool = tmp_path / "other-spool"
    other_spool.mkdir()
    environ = forward_environment(mosquitto.port, other_spool, state_dir,
                                  MQTT_CLIENT_ID="bessai-forward-other")
    second = subprocess.run(forward_command(), env=environ, capture_output=True, text=True,
                            timeout=EXIT_TIMEOUT_S)

    assert second.returncode == EX_CONFIG
    assert (f"FORWARD_STATE_DIR {state_dir} is in use by the forwarder of another spool, "
            f"{spool_dir}, PID {first.process.pid} (it holds the lock file "
            f"{state_dir / FILE_NAME})") in second.stderr
    assert "give each forwarder its own FORWARD_STATE_DIR" in second.stderr
    assert "forwarding spool" not in second.stderr   # it stopped before starting up
    assert (state_dir / CHECKPOINT_NAME).read_bytes() == checkpoint_before

    # Once the first forwarder has stopped, its lock is released.
    assert first.stop() == 0
    second = subprocess.Popen(forward_command(), env=environ, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        for line in second.stdout:
            if "forwarding spool" in line:
                break
        assert second.poll() is None
    finally:
        second.terminate()
        assert second.wait(timeout=EXIT_TIMEOUT_S) == 0
