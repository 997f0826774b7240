"""The reader: order, checkpoints, sealed and open segments, deletion, racing the writer."""

import orjson
import pytest

from bessai_edge.errors import SpoolError
from bessai_edge.spool import Spool, SpoolReader
from bessai_edge.spool.segments import record_seq, segment_name
from tests.spool.helpers import parse_writer_output, sample_record, start_writer


def fill(directory, records, segment_max_bytes=1000):
    with Spool(directory, segment_max_bytes=segment_max_bytes) as spool:
        for number in range(records):
            spool.append(sample_record(number))


def seqs_of(items):
    return [orjson.loads(line)["seq"] for _position, line in items]


def test_read_from_start_yields_all_in_order(tmp_path):
    fill(tmp_path, 30)
    items = list(SpoolReader(tmp_path).read())
    assert seqs_of(items) == list(range(1, 31))
    for position, line in items:
        segment_first_seq, offset = position
        data = (tmp_path / segment_name(segment_first_seq)).read_bytes()
        assert data[offset - len(line) - 1:offset] == line + b"\n"


def test_read_from_each_checkpoint_yields_the_rest(tmp_path):
    fill(tmp_path, 20)
    reader = SpoolReader(tmp_path)
    items = list(reader.read())
    for index, (position, _line) in enumerate(items):
        assert seqs_of(reader.read(position)) == list(range(index + 2, 21))


def test_segments_lists_newest_as_open(tmp_path):
    fill(tmp_path, 20)
    segments = SpoolReader(tmp_path).segments()
    assert len(segments) > 2
    assert [segment.sealed for segment in segments] == [True] * (len(segments) - 1) + [False]
    assert segments[0].first_seq == 1


def test_partial_line_never_yielded(tmp_path):
    fill(tmp_path, 3)
    reader = SpoolReader(tmp_path)
    last = list(reader.read())[-1][0]
    path = tmp_path / segment_name(last[0])
    line = orjson.dumps({"seq": 4, "x": "y"}) + b"\n"
    with open(path, "ab") as stream:
        stream.write(line[:7])
        stream.flush()
        assert list(reader.read(last)) == []
        stream.write(line[7:])
    assert list(reader.read(last)) == [((last[0], last[1] + len(line)), line[:-1])]


def test_zeroed_tail_of_open_segment_stops_reading(tmp_path):
    fill(tmp_path, 3)
    reader = SpoolReader(tmp_path)
    path = reader.segments()[-1].path
    with open(path, "ab") as stream:
        stream.write(b"\0" * 100 + b"\n" + b'{"seq":9}\n')
    assert seqs_of(reader.read()) == [1, 2, 3]


def test_nul_line_in_sealed_segment_skipped(tmp_path, caplog):
    fill(tmp_path, 3)
    path = SpoolReader(tmp_path).segments()[-1].path
    with open(path, "ab") as stream:
        stream.write(b"\0" * 10 + b"\n" + b'{"seq":4}\n')
    (tmp_path / segment_name(5)).write_bytes(b'{"seq":5}\n')
    assert seqs_of(SpoolReader(tmp_path).read()) == [1, 2, 3, 4, 5]
    assert "NUL bytes at offset" in caplog.text


def test_checkpoint_in_evicted_segment_goes_on_with_next(tmp_path):
    fill(tmp_path, 20)
    reader = SpoolReader(tmp_path)
    first, second = reader.segments()[:2]
    checkpoint = next(iter(reader.read()))[0]
    assert checkpoint[0] == first.first_seq
    first.path.unlink()
    assert seqs_of(reader.read(checkpoint))[0] == second.first_seq


def test_checkpoint_past_end_of_sealed_segment_goes_on(tmp_path):
    fill(tmp_path, 20)
    reader = SpoolReader(tmp_path)
    first, second = reader.segments()[:2]
    assert seqs_of(reader.read((first.first_seq, first.size + 500)))[0] == second.first_seq


def test_checkpoint_inside_line_resumes_at_next_line(tmp_path, caplog):
    fill(tmp_path, 5, segment_max_bytes=1 << 20)
    reader = SpoolReader(tmp_path)
    positions = [position for position, _line in reader.read()]
    inside = (positions[1][0], positions[1][1] + 5)
    assert seqs_of(reader.read(inside)) == [4, 5]
    assert "not at a line start" in caplog.text


def test_delete_segment_only_sealed(tmp_path):
    fill(tmp_path, 20)
    reader = SpoolReader(tmp_path)
    segments = reader.segments()
    assert reader.delete_segment(segments[0].first_seq) is True
    assert not segments[0].path.exists()
    assert reader.delete_segment(segments[0].first_seq) is False
    with pytest.raises(SpoolError, match="open segment"):
        reader.delete_segment(segments[-1].first_seq)
    assert segments[-1].path.exists()


def test_delete_sealed_lists_nothing(tmp_path):
    # The forwarder listed the whole directory again for each delivered segment it
    # deleted: with thousands of small segments a backlog's deletions blocked its loop.
    fill(tmp_path, 20)
    reader = SpoolReader(tmp_path)
    segments = reader.segments()
    listings = []
    original = reader.segments
    reader.segments = lambda: listings.append(1) or original()
    assert [reader.delete_sealed(segment) for segment in segments[:-1]] == (
        [True] * (len(segments) - 1))
    assert listings == []
    exists = [segment.path.exists() for segment in segments]
    assert exists == [False] * (len(segments) - 1) + [True]
    with pytest.raises(SpoolError, match="open segment"):
        reader.delete_sealed(segments[-1])


def test_missing_directory_gets_spool_error(tmp_path):
    with pytest.raises(SpoolError, match="does not exist"):
        list(SpoolReader(tmp_path / "missing").read())


def test_last_lines_across_segments(tmp_path):
    fill(tmp_path, 30)
    reader = SpoolReader(tmp_path)
    assert seqs_of(reader.last_lines(12)) == list(range(19, 31))
    assert seqs_of(reader.last_lines(100)) == list(range(1, 31))
    assert reader.last_lines(0) == []


def test_newest_lines_reads_back_across_segments(tmp_path):
    fill(tmp_path, 30)
    reader = SpoolReader(tmp_path)
    every = reader.newest_lines(1 << 20)
    assert seqs_of((None, line) for line in every) == list(range(30, 0, -1))
    sizes = [len(line) + 1 for line in every]
    # A limit that ends inside a line leaves that line out; one at a line start keeps it.
    assert len(reader.newest_lines(sum(sizes[:5]))) == 5
    assert len(reader.newest_lines(sum(sizes[:5]) - 1)) == 4
    assert reader.newest_lines(0) == []


def test_newest_lines_skips_torn_and_nul_lines(tmp_path):
    fill(tmp_path, 3)
    path = SpoolReader(tmp_path).segments()[-1].path
    with open(path, "ab") as stream:
        stream.write(b"\0\0\0\n" + orjson.dumps({"seq": 5}) + b"\n" + b'{"seq": 6')
    lines = SpoolReader(tmp_path).newest_lines(1 << 20)
    assert seqs_of((None, line) for line in lines) == [5, 3, 2, 1]


def test_reader_racing_writer_sees_only_whole_records(tmp_path):
    """A writer process appends and rotates fast while this test reads and deletes behind it."""
    total = 20000
    writer = start_writer(tmp_path, segment_bytes=8192, fsync_interval_s=0.05, records=total)
    reader = SpoolReader(tmp_path)
    checkpoint = None
    expected = 1
    reads = 0
    try:
        while True:
            finished = writer.poll() is not None
            for position, line in reader.read(checkpoint):
                assert record_seq(line) == expected, line
                expected += 1
                checkpoint = position
            reads += 1
            for segment in reader.segments():
                if segment.sealed and checkpoint and segment.first_seq < checkpoint[0]:
                    reader.delete_segment(segment.first_seq)
            if finished:
                break
    finally:
        output, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors
    assert parse_writer_output(output)[2] == total
    assert expected == total + 1
    assert reads > 10       # the reads overlapped the writing, not only followed it
