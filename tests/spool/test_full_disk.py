"""Full disk on a small tmpfs: drops are counted, one warning per episode, no partial line."""

import logging
import os
import subprocess

import orjson
import pytest

from bessai_edge.spool import Spool, stats
from bessai_edge.spool.segments import list_segments
from tests.conftest import require_commands
from tests.spool.helpers import assert_spool_valid, read_seqs, sample_record

pytestmark = pytest.mark.root

DISK_BYTES = 256 * 1024


@pytest.fixture
def small_disk(tmp_path, needs_root):
    """A 256 KiB tmpfs mounted on a temporary directory, unmounted afterwards."""
    require_commands("mount", "umount")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs",
                    str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)]).returncode != 0:
            # A file a failed test left open keeps it busy: detach it, then fail.
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)
            raise AssertionError(f"{mount_point} was still in use at the end of the test")


def fill_disk(mount_point):
    """Write a filler file until the disk is full and return its path."""
    filler = mount_point / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def open_spool_on(disk):
    """Open a spool of 16 KiB segments in ``disk``/spool; return its directory and the Spool."""
    spool_dir = disk / "spool"
    spool_dir.mkdir()
    return spool_dir, Spool(spool_dir, segment_max_bytes=16 * 1024, max_total_bytes=1 << 20,
                            fsync_interval_s=0).open()


def warnings_about(caplog, text):
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def test_full_disk_drops_records_and_resumes(small_disk, caplog):
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")
    spool_dir, spool = open_spool_on(small_disk)
    try:
        assert spool.append(sample_record(0)) == 1
        filler = fill_disk(small_disk)

        results = [spool.append(sample_record(number)) for number in range(1, 300)]
        dropped = results.count(None)
        assert dropped > 0
        assert spool.stats()["records_dropped"] == dropped
        assert spool.stats()["dropping"] is True
        drop_warnings = warnings_about(caplog, "cannot write to spool")
        assert len(drop_warnings) == 1
        assert "No space left on device" in drop_warnings[0].getMessage()
        assert f"free space on its file system (df -h {spool_dir} shows it)" in \
            drop_warnings[0].getMessage()
        assert_spool_valid(spool_dir)       # no partial line was left behind

        filler.unlink()
        seq = spool.append(sample_record(300))
        assert seq == 301
        assert spool.stats()["dropping"] is False
        assert len(warnings_about(caplog, "accepts writes again")) == 1

        # A second episode gets its own warning.
        filler = fill_disk(small_disk)
        second = [spool.append(sample_record(number)) for number in range(301, 400)]
        assert second.count(None) > 0
        assert len(warnings_about(caplog, "cannot write to spool")) == 2
        filler.unlink()
        assert spool.append(sample_record(400)) is not None
        figures = spool.stats()
    finally:
        spool.close()

    assert figures["drop_episodes"] == 2
    assert figures["records_dropped"] == dropped + second.count(None)
    stored = read_seqs(spool_dir)
    written = [1] + [seq for seq in results + [seq] + second if seq is not None] + [401]
    assert stored == written      # every accepted record is there, and drops are gaps
    assert_spool_valid(spool_dir)


def test_full_disk_one_dropped_record_singular(small_disk, caplog):
    # The warning read "dropped 1 records (sequence numbers 2-2)".
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")
    spool_dir, spool = open_spool_on(small_disk)
    try:
        assert spool.append(sample_record(0)) == 1
        filler = fill_disk(small_disk)
        # The segment's last page may still take a few records before one is dropped.
        dropped = next(number for number in range(1, 300)
                       if spool.append(sample_record(number)) is None)
        dropped_seq = dropped + 1
        filler.unlink()
        assert spool.append(sample_record(300)) == dropped_seq + 1
    finally:
        spool.close()

    resumed, = warnings_about(caplog, "accepts writes again")
    assert resumed.getMessage().endswith(f"dropped 1 record (sequence number {dropped_seq})")


def test_full_disk_short_write_names_cause(small_disk, caplog):
    # A line that crosses into a page the full tmpfs cannot allocate is written in part.
    # The warning names the cause as the OS does, with the byte counts.
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")
    page = os.sysconf("SC_PAGE_SIZE")
    spool_dir = small_disk / "spool"
    spool_dir.mkdir()
    spool = Spool(spool_dir, segment_max_bytes=1 << 20, max_total_bytes=4 << 20,
                  fsync_interval_s=0).open()
    try:
        assert spool.append(sample_record(0)) == 1
        fill_disk(small_disk)
        segment, = spool_dir.glob("*.jsonl")
        free_in_page = -segment.stat().st_size % page
        assert free_in_page > 0      # else the write would fail whole, without a short write

        record = sample_record(1)
        record["note"] = "x" * page   # longer than the free rest of the page
        assert spool.append(record) is None
        line_size = len(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    finally:
        spool.close()

    warning, = warnings_about(caplog, "cannot write to spool")
    assert (f"[Errno 28] No space left on device (short write: {free_in_page} of "
            f"{line_size} bytes)") in warning.getMessage()
    assert_spool_valid(spool_dir)    # the part that was written was cut back


def test_full_disk_at_open_then_space_freed(small_disk):
    spool_dir = small_disk / "spool"
    spool_dir.mkdir()
    with Spool(spool_dir, fsync_interval_s=0) as spool:
        for number in range(20):
            spool.append(sample_record(number))
    filler = fill_disk(small_disk)
    # open() works on a full disk, and appends are dropped until space returns.
    spool = Spool(spool_dir, segment_max_bytes=16 * 1024, max_total_bytes=1 << 20).open()
    try:
        assert spool.append(sample_record(20)) is None
        assert spool.append(sample_record(21)) is None
        filler.unlink()
        assert spool.append(sample_record(22)) == 23
    finally:
        spool.close()
    with Spool(spool_dir) as spool:
        assert spool.append(sample_record(23)) == 24
    assert read_seqs(spool_dir) == list(range(1, 21)) + [23, 24]
    assert_spool_valid(spool_dir)


def test_full_disk_restart_keeps_dropped_numbers(small_disk):
    # The state file could not be replaced on a full disk, so the next start gave the
    # dropped sequence numbers out again and the gap vanished downstream.
    spool_dir = small_disk / "spool"
    spool_dir.mkdir()
    spool = Spool(spool_dir, segment_max_bytes=16 * 1024, max_total_bytes=1 << 20,
                  fsync_interval_s=0).open()
    assert spool.append(sample_record(0)) == 1
    filler = fill_disk(small_disk)
    results = [spool.append(sample_record(number)) for number in range(1, 50)]
    dropped = results.count(None)
    assert dropped > 0
    spool.close()                       # the disk is still full here
    filler.unlink()

    reopened = Spool(spool_dir, segment_max_bytes=16 * 1024, max_total_bytes=1 << 20,
                     fsync_interval_s=0).open()
    try:
        assert reopened.append(sample_record(50)) == 51
    finally:
        reopened.close()
    assert stats.load_state(spool_dir)["records_dropped"] == dropped
    assert_spool_valid(spool_dir)


def test_full_disk_shown_in_loop_state(small_disk):
    # While a full disk dropped every record, the systemd status line read "inverter ok".
    from bessai_edge.scanloop import ScanLoop
    from bessai_edge.service.notify import status_text
    from bessai_edge.state import GatewayState

    state = GatewayState(site="s", version="0")
    (small_disk / "spool").mkdir()
    with Spool(small_disk / "spool", fsync_interval_s=0) as spool:
        loop = ScanLoop(period_s=1.0, pollers=[], factories=[], spool=spool, state=state,
                        notifier=None)
        record = {**sample_record(1), "device": "inverter", "cycle": 1}
        loop._append(record)
        loop._update_state(1, 0, 0.0, [])
        assert state.spool_dropping is False

        filler = fill_disk(small_disk)
        for _ in range(100):   # the segment's last page may still take a few records
            loop._append(record)
            if spool.dropping:
                break
        loop._update_state(2, 0, 1.0, [])
        assert state.spool_dropping is True
        assert status_text(state).endswith("; spool dropping records (disk full or failing)")

        filler.unlink()
        loop._append(record)
        loop._update_state(3, 0, 2.0, [])
        assert state.spool_dropping is False


def test_full_disk_seals_open_segment(small_disk):
    # The forwarder deletes only sealed segments. The open segment held every record
    # and stayed open on the full disk, so delivering it freed nothing until it aged.
    spool_dir = small_disk / "spool"
    spool_dir.mkdir()
    spool = Spool(spool_dir, segment_max_bytes=1 << 20, max_total_bytes=4 << 20,
                  fsync_interval_s=0).open()
    try:
        written = [spool.append(sample_record(number)) for number in range(20)]
        fill_disk(small_disk)
        dropped = next(number for number in range(20, 300)
                       if spool.append(sample_record(number)) is None)
        full, newest = list_segments(spool_dir)
        assert full.sealed
        assert newest.size == 0
        # What the forwarder does once the sealed segment is delivered.
        full.path.unlink()
        seq = spool.append(sample_record(300))
    finally:
        spool.close()
    assert seq is not None, "the spool still drops with the delivered segment deleted"
    assert None not in written
    assert read_seqs(spool_dir) == [seq]
    assert seq > dropped + 1
    assert_spool_valid(spool_dir)
