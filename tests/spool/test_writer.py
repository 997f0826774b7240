"""The writer: lines, sequence numbers, rotation, fsync policy, locking and counters."""

import os

import orjson
import pytest

from bessai_edge.errors import SpoolError
from bessai_edge.spool import MIB, Spool, stats
from bessai_edge.spool.segments import STATE_FILE, list_segments, segment_name
from tests.spool.helpers import assert_spool_valid, read_records, read_seqs, sample_record


class FakeClock:
    """Monotonic clock that moves only when the test advances ``now``."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_append_sets_seq_and_writes_one_line(tmp_path):
    record = sample_record(0)
    with Spool(tmp_path) as spool:
        assert spool.append(record) == 1
        assert record["seq"] == 1
        assert spool.append(sample_record(1)) == 2
    lines = (tmp_path / segment_name(1)).read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert orjson.loads(lines[0]) == record
    assert len(lines) == 3


def test_reopen_continues_sequence_in_new_segment(tmp_path):
    with Spool(tmp_path) as spool:
        for number in range(5):
            spool.append(sample_record(number))
    with Spool(tmp_path) as spool:
        assert spool.append(sample_record(5)) == 6
    assert [segment.first_seq for segment in list_segments(tmp_path)] == [1, 6]
    assert read_seqs(tmp_path) == [1, 2, 3, 4, 5, 6]


def test_spool_id_kept_until_state_lost(tmp_path):
    with Spool(tmp_path) as spool:
        for number in range(5):
            spool.append(sample_record(number))
    first_id, first_from = stats.load_identity(tmp_path)
    assert first_id is not None
    assert first_from == 1

    with Spool(tmp_path) as spool:
        spool.append(sample_record(5))
    assert stats.load_identity(tmp_path) == (first_id, 1)

    # Without its state file the spool goes on numbering from its segments, under a
    # new id that starts at the next number.
    (tmp_path / STATE_FILE).unlink()
    with Spool(tmp_path) as spool:
        assert spool.append(sample_record(6)) == 7
    second_id, second_from = stats.load_identity(tmp_path)
    assert second_id not in (None, first_id)
    assert second_from == 7

    # An emptied spool numbers from 1 under a new id.
    for path in tmp_path.iterdir():
        path.unlink()
    with Spool(tmp_path) as spool:
        assert spool.append(sample_record(0)) == 1
    third_id, third_from = stats.load_identity(tmp_path)
    assert third_id not in (None, first_id, second_id)
    assert third_from == 1


def test_open_without_append_creates_no_segment(tmp_path):
    with Spool(tmp_path):
        pass
    assert list_segments(tmp_path) == []


def test_rotation_by_size_keeps_segments_under_limit(tmp_path):
    limit = 2000
    with Spool(tmp_path, segment_max_bytes=limit, max_total_bytes=MIB) as spool:
        for number in range(100):
            spool.append(sample_record(number))
    segments = list_segments(tmp_path)
    assert len(segments) > 5
    for segment in segments:
        assert segment.size <= limit
    seqs = read_seqs(tmp_path)
    assert seqs == list(range(1, 101))
    for segment in segments:
        first_line = segment.path.read_bytes().split(b"\n", 1)[0]
        assert orjson.loads(first_line)["seq"] == segment.first_seq


def test_rotation_by_age_on_monotonic_clock(tmp_path):
    clock = FakeClock()
    with Spool(tmp_path, segment_max_age_s=60, clock=clock) as spool:
        spool.append(sample_record(0))
        clock.now += 59.9
        spool.append(sample_record(1))
        clock.now += 0.1
        spool.append(sample_record(2))
        clock.now += 10
        spool.append(sample_record(3))
    assert [segment.first_seq for segment in list_segments(tmp_path)] == [1, 3]


def change_open_segment(tmp_path, caplog, change):
    """Append two records, let ``change`` alter the open segment, append a third one.

    Returns the error lines the writer logged.
    """
    clock = FakeClock()
    with Spool(tmp_path, clock=clock) as spool:
        spool.append(sample_record(0))
        spool.append(sample_record(1))
        change(tmp_path / segment_name(1))
        clock.now += 31      # past the writer's directory refresh
        assert spool.append(sample_record(2)) == 3
    return [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]


def test_deleted_open_segment_replaced_within_refresh(tmp_path, caplog):
    # Records went on into a deleted file, with no log line, until the segment rotated.
    errors = change_open_segment(tmp_path, caplog, lambda path: path.unlink())
    assert read_seqs(tmp_path) == [3]
    assert [segment.first_seq for segment in list_segments(tmp_path)] == [3]
    assert errors[0].startswith("spool segment 00000000000000000001.jsonl was deleted by "
                                "another process while open")


def test_renamed_open_segment_noticed(tmp_path, caplog):
    # A file put in place of the open segment (as log rotation does) went unnoticed.
    def rotate(path):
        path.rename(tmp_path / "moved")
        path.write_bytes(b"")
    errors = change_open_segment(tmp_path, caplog, rotate)
    assert (tmp_path / "moved").read_bytes().count(b"\n") == 2
    assert (tmp_path / segment_name(3)).read_bytes().count(b"\n") == 1
    assert "was replaced by another process while open" in errors[0]


def test_truncated_open_segment_noticed(tmp_path, caplog):
    # The next record joined the line that the truncation cut short.
    errors = change_open_segment(tmp_path, caplog, lambda path: os.truncate(path, 10))
    assert "was truncated by another process while open" in errors[0]
    assert (tmp_path / segment_name(3)).read_bytes().count(b"\n") == 1


def open_then_replace(tmp_path, clock):
    """Open a spool, append one record, then do what ``rm -rf DIR; mkdir DIR`` does.

    The old directory is kept aside for the test. Returns (spool, directory).
    """
    directory = tmp_path / "spool"
    directory.mkdir()
    spool = Spool(directory, clock=clock).open()
    spool.append(sample_record(0))
    directory.rename(tmp_path / "spool.old")
    directory.mkdir()
    return spool, directory


def test_replaced_directory_locked_again(tmp_path, caplog):
    # After rm -rf and mkdir, the lock stayed on the deleted directory, so a second
    # writer could start on the new one and hand out the same sequence numbers.
    clock = FakeClock()
    spool, directory = open_then_replace(tmp_path, clock)
    try:
        clock.now += 31      # past the writer's directory refresh
        assert spool.append(sample_record(1)) == 2
        with pytest.raises(SpoolError):
            Spool(directory).open()
    finally:
        spool.close()
    assert read_seqs(directory) == [2]
    assert any("the lock moved to the new directory" in record.getMessage()
               for record in caplog.records)


def test_replaced_directory_locked_by_other_drops(tmp_path):
    clock = FakeClock()
    spool, directory = open_then_replace(tmp_path, clock)
    try:
        with Spool(directory) as other:
            clock.now += 31
            assert spool.append(sample_record(1)) is None   # counted as dropped
            other.append(sample_record(2))
        assert spool.stats()["records_dropped"] == 1
    finally:
        spool.close()


def test_fsync_interval_bounds_unsynced_window(tmp_path):
    clock = FakeClock()
    with Spool(tmp_path, fsync_interval_s=5, clock=clock) as spool:
        spool.append(sample_record(0))          # first unsynced line at t=0
        assert spool.stats()["fsyncs"] == 0
        assert spool.synced_seq == 0
        clock.now += 4.9
        spool.append(sample_record(1))
        assert spool.stats()["fsyncs"] == 0
        clock.now += 0.1
        spool.append(sample_record(2))          # the oldest unsynced line is 5 s old
        assert spool.stats()["fsyncs"] == 1
        assert spool.synced_seq == 3
        clock.now += 100
        spool.append(sample_record(3))          # a new window starts with this line
        assert spool.stats()["fsyncs"] == 1
        assert spool.synced_seq == 3
        spool.flush()
        assert spool.stats()["fsyncs"] == 2
        assert spool.synced_seq == 4


def test_fsync_interval_zero_syncs_every_record(tmp_path):
    with Spool(tmp_path, fsync_interval_s=0) as spool:
        for number in range(10):
            seq = spool.append(sample_record(number))
            assert spool.synced_seq == seq
        assert spool.stats()["fsyncs"] == 10


def test_second_writer_gets_spool_error(tmp_path):
    with Spool(tmp_path):
        with pytest.raises(SpoolError, match="in use by another bessai process: stop the "
                                             "service first"):
            Spool(tmp_path).open()
    Spool(tmp_path).open().close()      # the lock goes with close()


def test_service_lock_conflict_names_hand_run(tmp_path, monkeypatch):
    # The service's message advised it to stop itself ("systemctl stop bessai") when a run started
    # by hand held the spool. systemd sets INVOCATION_ID for the service.
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
    with Spool(tmp_path):
        with pytest.raises(SpoolError) as raised:
            Spool(tmp_path).open()
    assert "probably one started by hand: end it (pgrep -af 'bessai(_edge)? run'), then " \
           "start the service again (systemctl start bessai)" in str(raised.value)


def test_missing_directory_gets_spool_error(tmp_path):
    with pytest.raises(SpoolError, match="does not exist.*SPOOL_DIR"):
        Spool(tmp_path / "missing").open()


def test_file_instead_of_directory_gets_spool_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(SpoolError, match="is not a directory"):
        Spool(path).open()


def test_append_before_open_gets_spool_error(tmp_path):
    with pytest.raises(SpoolError, match="not open"):
        Spool(tmp_path).append({})


@pytest.mark.parametrize("arguments, message", [
    ({"segment_max_bytes": 0}, "segment_max_bytes is 0"),
    ({"segment_max_age_s": -1}, "segment_max_age_s is -1"),
    ({"max_total_bytes": 0}, "max_total_bytes is 0"),
    ({"fsync_interval_s": -0.5}, "fsync_interval_s is -0.5"),
    ({"segment_max_bytes": 2 * MIB, "max_total_bytes": MIB}, "below segment_max_bytes"),
])
def test_invalid_parameters_name_the_parameter(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        Spool(tmp_path, **arguments)


def test_stats_counts_appends_and_size(tmp_path):
    with Spool(tmp_path, segment_max_bytes=1000, fsync_interval_s=0) as spool:
        for number in range(20):
            spool.append(sample_record(number))
        figures = spool.stats()
        on_disk = sum(segment.size for segment in list_segments(tmp_path))
    assert figures["records_appended"] == 20
    assert figures["records_dropped"] == 0
    assert figures["bytes"] == on_disk
    assert figures["segments"] == len(list_segments(tmp_path))
    assert figures["next_seq"] == 21
    assert figures["synced_seq"] == 20
    assert figures["open_segment"] == list_segments(tmp_path)[-1].first_seq
    assert figures["dropping"] is False


def test_written_records_round_trip(tmp_path):
    written = []
    with Spool(tmp_path, segment_max_bytes=4096) as spool:
        for number in range(50):
            record = sample_record(number)
            spool.append(record)
            written.append(record)
    assert read_records(tmp_path) == written
    assert_spool_valid(tmp_path)


def test_segment_files_are_not_world_readable(tmp_path):
    old_umask = os.umask(0)
    try:
        with Spool(tmp_path) as spool:
            spool.append(sample_record(0))
    finally:
        os.umask(old_umask)
    mode = (tmp_path / segment_name(1)).stat().st_mode & 0o777
    assert mode == 0o640


def test_unserializable_record_raises_and_keeps_seq(tmp_path):
    with Spool(tmp_path) as spool:
        with pytest.raises(TypeError):
            spool.append({"value": object()})
        assert spool.append(sample_record(0)) == 1
    assert read_seqs(tmp_path) == [1]
