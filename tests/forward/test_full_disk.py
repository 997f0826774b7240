"""A full disk shared by the spool and the checkpoint: saves go on, so space comes back.

Only a saved checkpoint lets the forwarder delete delivered segments. When the disk
filled up, the save failed for want of a block, publishing paused, no segment was
deleted and the disk stayed full for good, while the gateway dropped every new record.
The disks here are real tmpfs mounts.
"""

import errno
import os

import pytest

from bessai_edge.forward.checkpoint import CHECKPOINT_SIZE, FILE_NAME, Checkpoint, CheckpointFile
from bessai_edge.spool.segments import list_segments
from tests.forward.conftest import RecordWriter, wait_until
from tests.spool.test_full_disk import fill_disk, small_disk  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

DELIVERY_TIMEOUT_S = 60
RESERVED = FILE_NAME + ".tmp"


def load(directory):
    """Return the saved checkpoint, closing the directory that CheckpointFile keeps open."""
    store = CheckpointFile(directory)
    try:
        return store.load()
    finally:
        store.close()


def deliver_first(writer, count, subscriber, start_forwarder):
    """Append ``count`` records and run the forwarder until they are delivered and saved."""
    writer.append(count)
    writer.spool.flush()
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0


@pytest.fixture
def store(small_disk):  # noqa: F811
    checkpoint_file = CheckpointFile(small_disk)
    yield checkpoint_file
    checkpoint_file.close()   # the mount cannot be unmounted while it is open


@pytest.fixture
def spool_dir(small_disk):  # noqa: F811 (the fixture of the same name)
    path = small_disk / "spool"
    path.mkdir()
    return path


@pytest.fixture
def state_dir(small_disk):  # noqa: F811
    path = small_disk / "state"
    path.mkdir()
    return path


def test_full_disk_save_uses_reserved_file(small_disk, store):  # noqa: F811
    store.save(Checkpoint(1, 100, 1))
    fill_disk(small_disk)

    assert store.save(Checkpoint(1, 200, 2)) is False   # replaced, not in place
    assert load(small_disk) == Checkpoint(1, 200, 2)
    # The old checkpoint's space went to the next reserved file.
    assert (small_disk / RESERVED).stat().st_size == CHECKPOINT_SIZE
    assert store.save(Checkpoint(1, 300, 3)) is False
    assert load(small_disk) == Checkpoint(1, 300, 3)


def test_full_disk_save_in_place(small_disk, store):  # noqa: F811
    store.save(Checkpoint(1, 100, 1))
    (small_disk / RESERVED).unlink()
    fill_disk(small_disk)

    assert store.save(Checkpoint(7, 4096, 350, "a" * 32)) is True
    assert load(small_disk) == Checkpoint(7, 4096, 350, "a" * 32)
    assert (small_disk / FILE_NAME).stat().st_size == CHECKPOINT_SIZE


def test_full_disk_first_save_fails(small_disk, store):  # noqa: F811
    fill_disk(small_disk)
    with pytest.raises(OSError) as raised:
        store.save(Checkpoint(1, 100, 1))
    assert raised.value.errno == errno.ENOSPC
    assert load(small_disk) is None


def test_full_disk_forward_frees_space(small_disk, subscriber, spool_dir,  # noqa: F811
                                       state_dir, start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024, max_total_bytes=1 << 20)
    deliver_first(writer, 40, subscriber, start_forwarder)

    # The broker was unreachable for a while: the backlog and another file fill the disk.
    writer.append(120)
    writer.spool.flush()
    (state_dir / RESERVED).unlink()   # as when the disk filled before the last save
    fill_disk(small_disk)
    assert os.statvfs(small_disk).f_bavail == 0

    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0
    assert load(state_dir).seq == writer.seqs[-1]
    # The delivered segments were deleted, so the spool can write again.
    assert len(list_segments(spool_dir)) <= 2
    assert os.statvfs(small_disk).f_bavail > 0
    in_place = [line for line in forwarder.log_text().splitlines()
                if "saved the checkpoint over the old one in place" in line]
    assert in_place
    assert in_place[0].endswith("BESSAI_EVENT=checkpoint"), in_place[0]
    writer.append(1)
    writer.close()


def test_full_disk_open_segment_freed(small_disk, subscriber, spool_dir,  # noqa: F811
                                      state_dir, start_forwarder):
    # Segments larger than the disk: every record sat in the open segment, which the
    # forwarder may not delete, so the disk stayed full after delivery.
    writer = RecordWriter(spool_dir, segment_max_bytes=1 << 20, max_total_bytes=4 << 20)
    deliver_first(writer, 20, subscriber, start_forwarder)

    writer.append(60)
    fill_disk(small_disk)
    # The segment's last page may still take a few small records before one is dropped.
    extra = [writer.spool.append({"note": "extra"}) for _ in range(100)]
    assert None in extra
    writer.seqs += [seq for seq in extra if seq is not None]
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    assert wait_until(lambda: os.statvfs(small_disk).f_bavail > 0), "no space came back"
    assert forwarder.stop() == 0
    assert writer.spool.append({"note": "written"}) is not None
    writer.close()
