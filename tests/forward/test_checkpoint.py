"""CheckpointFile: round trip, atomic replacement, unreadable files set aside."""

import errno
import logging
import os
import subprocess
import sys

import pytest

from bessai_edge.forward.checkpoint import CHECKPOINT_SIZE, FILE_NAME, Checkpoint, CheckpointFile
from tests.conftest import REPO


def test_checkpoint_missing_loads_none(tmp_path):
    assert CheckpointFile(tmp_path).load() is None


def test_checkpoint_save_load_round_trip(tmp_path):
    store = CheckpointFile(tmp_path)
    store.save(Checkpoint(segment=4857, offset=62095, seq=5000))
    store.save(Checkpoint(segment=4857, offset=63000, seq=5002))
    assert CheckpointFile(tmp_path).load() == Checkpoint(4857, 63000, 5002)
    assert store.saves == 2
    # The temporary file stays, reserved at full size for the next save.
    assert sorted(os.listdir(tmp_path)) == [FILE_NAME, FILE_NAME + ".tmp"]
    assert (tmp_path / (FILE_NAME + ".tmp")).read_bytes() == b" " * CHECKPOINT_SIZE
    assert (tmp_path / FILE_NAME).stat().st_size == CHECKPOINT_SIZE


def test_checkpoint_reserve_fills_short_file(tmp_path):
    # A save that failed on a full disk leaves an empty temporary file, which the
    # reservation took for a reserved one, so the next full-disk save found no space.
    (tmp_path / (FILE_NAME + ".tmp")).write_bytes(b"")
    store = CheckpointFile(tmp_path)
    store.reserve()
    store.close()
    assert (tmp_path / (FILE_NAME + ".tmp")).read_bytes() == b" " * CHECKPOINT_SIZE


def test_checkpoint_seq_may_be_null(tmp_path):
    CheckpointFile(tmp_path).save(Checkpoint(1, 0, None))
    assert CheckpointFile(tmp_path).load() == Checkpoint(1, 0, None)


def test_checkpoint_stale_temporary_file_ignored(tmp_path):
    store = CheckpointFile(tmp_path)
    store.save(Checkpoint(1, 500, 3))
    # A crash between writing the temporary file and the rename leaves it behind.
    (tmp_path / (FILE_NAME + ".tmp")).write_bytes(b'{"version":1,"segm')
    assert CheckpointFile(tmp_path).load() == Checkpoint(1, 500, 3)
    store.save(Checkpoint(1, 700, 4))
    assert CheckpointFile(tmp_path).load() == Checkpoint(1, 700, 4)


@pytest.mark.parametrize("content", [
    pytest.param(b"", id="empty"),
    pytest.param(b'{"version":1,"segment":1,"off', id="torn"),
    pytest.param(b"[1, 2]", id="not-an-object"),
    pytest.param(b'{"version":2,"segment":1,"offset":0,"seq":1}', id="unknown-version"),
    pytest.param(b'{"version":1,"segment":-1,"offset":0,"seq":1}', id="negative-segment"),
    pytest.param(b'{"version":1,"segment":1,"offset":"9","seq":1}', id="offset-string"),
    pytest.param(b'{"version":1,"segment":1,"offset":0,"seq":true}', id="seq-boolean"),
])
def test_checkpoint_unreadable_set_aside(tmp_path, caplog, content):
    (tmp_path / FILE_NAME).write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="bessai_edge.forward.checkpoint"):
        assert CheckpointFile(tmp_path).load() is None
    assert (tmp_path / (FILE_NAME + ".bad")).read_bytes() == content
    assert not (tmp_path / FILE_NAME).exists()
    assert "starting from the oldest record" in caplog.text


def test_checkpoint_save_failure_keeps_old(tmp_path):
    store = CheckpointFile(tmp_path)
    store.save(Checkpoint(1, 100, 1))
    # A directory where the temporary file goes makes the write fail.
    (tmp_path / (FILE_NAME + ".tmp")).unlink()
    (tmp_path / (FILE_NAME + ".tmp")).mkdir()
    with pytest.raises(OSError):
        store.save(Checkpoint(1, 200, 2))
    assert CheckpointFile(tmp_path).load() == Checkpoint(1, 100, 1)


FILE_SIZE_LIMIT_CHILD = """
import resource, signal, sys
from bessai_edge.forward.checkpoint import Checkpoint, CheckpointFile

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of being killed
store = CheckpointFile(sys.argv[1])
store.save(Checkpoint(1, 100, 1))
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (20, hard))   # the kernel cuts the write at 20 bytes
try:
    store.save(Checkpoint(1, 200, 2))
except OSError as error:
    print(error.errno, error.strerror)
"""


def test_checkpoint_short_write_names_cause(tmp_path):
    # Without root, RLIMIT_FSIZE cuts a write short like a disk that fills up during it.
    result = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT_CHILD, str(tmp_path)],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    number, _space, text = result.stdout.strip().partition(" ")
    assert int(number) == errno.EFBIG
    assert text.startswith("File too large (short write to ")
    unlimited = tmp_path / "unlimited"
    unlimited.mkdir()
    CheckpointFile(unlimited).save(Checkpoint(1, 200, 2))
    size = (unlimited / FILE_NAME).stat().st_size
    assert text.endswith(f".tmp: 20 of {size} bytes)"), text
    assert CheckpointFile(tmp_path).load() == Checkpoint(1, 100, 1)
