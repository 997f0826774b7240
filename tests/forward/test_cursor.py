"""SpoolCursor over a real spool: order, polling for new lines, rewind, reader errors."""

import pytest

from bessai_edge.errors import SpoolError
from bessai_edge.forward.cursor import SpoolCursor
from bessai_edge.spool import SpoolReader
from bessai_edge.spool.segments import record_seq
from tests.forward.conftest import RecordWriter


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def drain(cursor):
    seqs = []
    while (item := cursor.next()) is not None:
        seqs.append(record_seq(item[1]))
    return seqs


@pytest.fixture
def writer(spool_dir):
    writer = RecordWriter(spool_dir, segment_max_bytes=4096)
    yield writer
    writer.close()


def test_cursor_reads_across_segments_in_order(writer, spool_dir):
    writer.append(50)
    writer.spool.flush()
    cursor = SpoolCursor(SpoolReader(spool_dir), clock=FakeClock())
    assert drain(cursor) == list(range(1, 51))
    assert cursor.caught_up


def test_cursor_polls_for_new_lines(writer, spool_dir):
    clock = FakeClock()
    writer.append(5)
    cursor = SpoolCursor(SpoolReader(spool_dir), poll_interval_s=0.5, clock=clock)
    assert drain(cursor) == [1, 2, 3, 4, 5]
    writer.append(3)
    assert cursor.next() is None   # the poll is not due yet
    assert cursor.idle
    clock.now += 0.5
    assert not cursor.idle
    assert drain(cursor) == [6, 7, 8]


def test_cursor_rewind_reads_again(writer, spool_dir):
    writer.append(10)
    cursor = SpoolCursor(SpoolReader(spool_dir), clock=FakeClock())
    positions = []
    for _ in range(4):
        positions.append(cursor.next()[0])
    cursor.rewind(positions[1])
    assert not cursor.caught_up
    assert drain(cursor) == [3, 4, 5, 6, 7, 8, 9, 10]
    cursor.rewind(None)
    assert drain(cursor)[:2] == [1, 2]


def test_cursor_resumes_from_checkpoint_position(writer, spool_dir):
    writer.append(30)
    first = SpoolCursor(SpoolReader(spool_dir), clock=FakeClock())
    for _ in range(12):
        position, _line = first.next()
    second = SpoolCursor(SpoolReader(spool_dir), position, clock=FakeClock())
    assert drain(second) == list(range(13, 31))


def test_cursor_reader_error_retried_later(tmp_path):
    clock = FakeClock()
    missing = tmp_path / "gone"
    cursor = SpoolCursor(SpoolReader(missing), poll_interval_s=0.5, clock=clock)
    with pytest.raises(SpoolError, match="does not exist"):
        cursor.next()
    assert cursor.next() is None   # no new attempt before the poll interval
    missing.mkdir()
    clock.now += 0.5
    assert cursor.next() is None   # an empty spool
    assert cursor.caught_up
