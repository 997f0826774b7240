"""Recovery at open(): torn and zero-filled tails, unreadable middles, empty segments."""

import logging
import os

import hypothesis
import hypothesis.strategies as st
import orjson
import pytest

from bessai_edge.spool import Spool
from bessai_edge.spool.check import check_spool
from bessai_edge.spool.segments import list_segments, segment_name
from bessai_edge.spool.stats import STATE_FILE, load_state
from tests.spool.helpers import assert_spool_valid, read_seqs, sample_record


def assert_spool_valid_except_set_aside(directory):
    report = check_spool(directory, check_layout=False)     # sample records lack keys
    assert report.bad_lines == []
    assert report.incomplete_tail is None


def write_spool(directory, records, segment_max_bytes=16 * 1024 * 1024):
    with Spool(directory, segment_max_bytes=segment_max_bytes) as spool:
        for number in range(records):
            spool.append(sample_record(number))


def line_ends(path):
    """Return the offset just after each line of a segment."""
    data = path.read_bytes()
    return [index + 1 for index, byte in enumerate(data) if byte == ord("\n")]


def reopen(directory):
    spool = Spool(directory).open()
    figures = spool.stats()
    seq = spool.append(sample_record(999))
    spool.close()
    return figures, seq


# Each case damages the end of a segment of 10 records, the way a power cut can, and
# leaves no newline at the end.
POWER_CUT_TAILS = {
    "truncated mid-line": lambda data, ends: data[:ends[6] + 40],
    "truncated after the first byte of a line": lambda data, ends: data[:ends[6] + 1],
    "zero block after last line": lambda data, ends: data[:ends[6]] + b"\0" * 4096,
    "zero block over the tail": lambda data, ends: data[:ends[6]] + b"\0" * (len(data) - ends[6]),
    "zeros then part of a line": lambda data, ends: (
        data[:ends[6]] + b"\0" * 512 + data[ends[7]:ends[7] + 30]),
    "newline alone at the end": lambda data, ends: data[:ends[6]] + b"\n",
    "zero lines at the end": lambda data, ends: data[:ends[6]] + b"\0" * 90 + b"\n\n\0\n",
    "zero line before a torn tail": lambda data, ends: (
        data[:ends[6]] + b"\0" * 50 + b"\n" + data[ends[7]:ends[7] + 30]),
}


@pytest.mark.parametrize("damage", POWER_CUT_TAILS.values(), ids=POWER_CUT_TAILS.keys())
def test_power_cut_tail_cut_back_to_last_line(tmp_path, caplog, damage):
    write_spool(tmp_path, 10)
    path = tmp_path / segment_name(1)
    data = path.read_bytes()
    ends = line_ends(path)
    path.write_bytes(damage(data, ends))
    damaged_size = path.stat().st_size
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")

    figures, seq = reopen(tmp_path)

    assert path.stat().st_size == ends[6]
    assert figures["bytes_cut"] == damaged_size - ends[6]
    assert figures["segments_set_aside"] == 0
    assert f"cut {damaged_size - ends[6]} bytes of torn tail" in caplog.text
    assert seq == 11         # numbering goes on after the highest complete record ever
    assert read_seqs(tmp_path) == [1, 2, 3, 4, 5, 6, 7, 11]
    assert_spool_valid(tmp_path)


# Each case ends a segment of 10 records with complete lines (newline-terminated) that
# are not valid records, after the first 7 records.
DAMAGED_LAST_LINES = {
    "text inserted into the last line": lambda data, ends: (
        data[:ends[6] + 5] + b"GARBAGE" + data[ends[6] + 5:ends[7]]),
    "zeros inside the last line": lambda data, ends: (
        data[:ends[6] + 10] + b"\0" * 100 + data[ends[6] + 110:ends[7]]),
    "two damaged lines at the end": lambda data, ends: (
        data[:ends[6]] + b"#" * 20 + data[ends[6] + 20:ends[7]] + b"junk\n"),
}


@pytest.mark.parametrize("damage", DAMAGED_LAST_LINES.values(), ids=DAMAGED_LAST_LINES.keys())
def test_damaged_last_lines_set_aside(tmp_path, caplog, damage):
    write_spool(tmp_path, 10)
    path = tmp_path / segment_name(1)
    data = path.read_bytes()
    ends = line_ends(path)
    damaged = damage(data, ends)
    path.write_bytes(damaged)
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")

    figures, seq = reopen(tmp_path)

    assert (tmp_path / (segment_name(1) + ".corrupt")).read_bytes() == damaged[ends[6]:]
    assert path.read_bytes() == data[:ends[6]]
    assert figures["bytes_cut"] == 0
    assert figures["segments_set_aside"] == 1
    assert "torn tail" not in caplog.text
    assert "ends with unreadable lines" in caplog.text
    assert seq == 11
    assert_spool_valid_except_set_aside(tmp_path)


def test_sealed_segment_damaged_last_line_set_aside(tmp_path, caplog):
    for _run in range(3):
        write_spool(tmp_path, 5)        # segments 1-5, 6-10 and 11-15
    path = tmp_path / segment_name(6)
    data = path.read_bytes()
    last_start = line_ends(path)[3]
    damaged = data[:last_start + 5] + b"GARBAGE" + data[last_start + 5:]
    path.write_bytes(damaged)
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")

    figures, seq = reopen(tmp_path)     # the start-up check of a sealed segment's tail

    assert (tmp_path / (segment_name(6) + ".corrupt")).read_bytes() == damaged[last_start:]
    assert path.read_bytes() == data[:last_start]
    assert figures["bytes_cut"] == 0
    assert figures["segments_set_aside"] == 1
    assert "torn tail" not in caplog.text
    assert seq == 16
    assert read_seqs(tmp_path) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16]


def test_segment_of_one_damaged_line_set_aside(tmp_path, caplog):
    write_spool(tmp_path, 3)
    write_spool(tmp_path, 1)            # segment 4 contains one record
    write_spool(tmp_path, 3)
    path = tmp_path / segment_name(4)
    damaged = b"GARBAGE" + path.read_bytes()
    path.write_bytes(damaged)
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")

    figures, seq = reopen(tmp_path)

    assert not path.exists()
    assert (tmp_path / (segment_name(4) + ".corrupt")).read_bytes() == damaged
    assert figures["bytes_cut"] == 0
    assert figures["segments_set_aside"] == 1
    assert "held no complete record" not in caplog.text
    assert seq == 8
    assert read_seqs(tmp_path) == [1, 2, 3, 5, 6, 7, 8]


def test_damaged_line_before_torn_tail(tmp_path):
    write_spool(tmp_path, 10)
    path = tmp_path / segment_name(1)
    data = path.read_bytes()
    ends = line_ends(path)
    damaged_line = b"junk\n"
    path.write_bytes(data[:ends[6]] + damaged_line + data[ends[7]:ends[7] + 30])

    figures, seq = reopen(tmp_path)

    assert (tmp_path / (segment_name(1) + ".corrupt")).read_bytes() == damaged_line
    assert path.read_bytes() == data[:ends[6]]
    assert figures["bytes_cut"] == 30
    assert figures["segments_set_aside"] == 1
    assert seq == 11
    assert read_seqs(tmp_path) == [1, 2, 3, 4, 5, 6, 7, 11]


def test_segment_of_only_torn_data_is_deleted(tmp_path, caplog):
    write_spool(tmp_path, 3)
    write_spool(tmp_path, 3)        # second segment starts at 4
    path = tmp_path / segment_name(4)
    path.write_bytes(path.read_bytes()[:25])
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")
    figures, seq = reopen(tmp_path)
    assert not path.exists()
    assert figures["bytes_cut"] == 25
    assert "held no complete record" in caplog.text
    assert seq == 7         # the state file remembers that 6 was handed out
    assert read_seqs(tmp_path) == [1, 2, 3, 7]


def test_numbering_without_state_file_follows_segment_names(tmp_path):
    write_spool(tmp_path, 3)
    write_spool(tmp_path, 3)
    (tmp_path / STATE_FILE).unlink()
    path = tmp_path / segment_name(4)
    path.write_bytes(path.read_bytes()[:25])
    _figures, seq = reopen(tmp_path)
    assert seq == 4


def test_unreadable_middle_set_aside_and_records_kept(tmp_path, caplog):
    write_spool(tmp_path, 5)        # an older segment, 1-5, must stay as it is
    write_spool(tmp_path, 10)
    path = tmp_path / segment_name(6)
    data = path.read_bytes()
    ends = line_ends(path)
    damaged = data[:ends[3]] + b"\0" * 20 + data[ends[3] + 20:]     # line 5 unreadable
    path.write_bytes(damaged)
    caplog.set_level(logging.ERROR, logger="bessai_edge.spool")

    figures, seq = reopen(tmp_path)

    aside = tmp_path / (segment_name(6) + ".corrupt")
    assert aside.read_bytes() == damaged[ends[3]:ends[4]]      # only the damaged line
    assert path.read_bytes() == data[:ends[3]]                  # the prefix, same offsets
    assert (tmp_path / segment_name(11)).read_bytes() == data[ends[4]:]
    assert figures["segments_set_aside"] == 1
    assert "unreadable lines (%d bytes)" % (ends[4] - ends[3]) in caplog.text
    assert seq == 16
    assert read_seqs(tmp_path) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16]
    assert load_state(tmp_path)["segments_set_aside"] == 1


def test_unreadable_lines_split_into_runs(tmp_path):
    write_spool(tmp_path, 8)
    path = tmp_path / segment_name(1)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + [b"junk\n"] + lines[2:5] + [b"more junk\n"]
                              + lines[5:]))
    figures, seq = reopen(tmp_path)
    assert (tmp_path / (segment_name(1) + ".corrupt")).read_bytes() == b"junk\nmore junk\n"
    assert (tmp_path / segment_name(3)).read_bytes() == b"".join(lines[2:5])
    assert (tmp_path / segment_name(6)).read_bytes() == b"".join(lines[5:])
    assert figures["segments_set_aside"] == 1
    assert seq == 9
    assert read_seqs(tmp_path) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_split_falls_back_when_name_taken(tmp_path):
    write_spool(tmp_path, 6)
    path = tmp_path / segment_name(1)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + [b"junk\n"] + lines[2:]))
    other = tmp_path / segment_name(3)
    other.write_bytes(lines[2])      # another segment already has the run's name
    Spool(tmp_path).open(check_all=True).close()    # segment 1 is sealed now
    assert other.read_bytes() == lines[2]                       # never overwritten
    assert path.read_bytes() == b"".join(lines[:2])
    assert (tmp_path / (segment_name(1) + ".corrupt")).read_bytes() == b"".join(
        [b"junk\n"] + lines[2:])


def test_zero_line_in_middle_set_aside(tmp_path):
    # Only lines without data at the end are power-cut debris; one before records is not.
    write_spool(tmp_path, 10)
    path = tmp_path / segment_name(1)
    data = path.read_bytes()
    ends = line_ends(path)
    damaged = data[:ends[3]] + b"\0" * (ends[4] - ends[3] - 1) + data[ends[4] - 1:]
    path.write_bytes(damaged)

    figures, _seq = reopen(tmp_path)

    assert (tmp_path / (segment_name(1) + ".corrupt")).read_bytes() == damaged[ends[3]:ends[4]]
    assert path.read_bytes() == data[:ends[3]]
    assert (tmp_path / segment_name(6)).read_bytes() == data[ends[4]:]
    assert figures["bytes_cut"] == 0


def test_sealed_middle_damage_needs_check_all(tmp_path):
    write_spool(tmp_path, 10)
    write_spool(tmp_path, 5)
    path = tmp_path / segment_name(1)
    data = path.read_bytes()
    ends = line_ends(path)
    path.write_bytes(data[:ends[3]] + b"#" * 20 + data[ends[3] + 20:])
    reopen(tmp_path)    # a sealed segment's tail is whole, so a plain open() leaves it
    assert path.stat().st_size == len(data)
    spool = Spool(tmp_path).open(check_all=True)
    figures = spool.stats()
    spool.close()
    assert figures["segments_set_aside"] == 1
    assert path.read_bytes() == data[:ends[3]]
    assert_spool_valid_except_set_aside(tmp_path)


def test_unreadable_first_line_renames_whole_segment(tmp_path):
    write_spool(tmp_path, 10)
    path = tmp_path / segment_name(1)
    data = path.read_bytes()
    path.write_bytes(b"garbage\n" + data)
    figures, seq = reopen(tmp_path)
    assert (tmp_path / (segment_name(1) + ".corrupt")).read_bytes() == b"garbage\n" + data
    assert not path.exists()
    assert figures["segments_set_aside"] == 1
    assert seq == 11


def test_set_aside_name_does_not_overwrite_earlier_one(tmp_path):
    write_spool(tmp_path, 4)
    path = tmp_path / segment_name(1)
    (tmp_path / (segment_name(1) + ".corrupt")).write_bytes(b"earlier")
    path.write_bytes(b"x\n" + path.read_bytes())
    reopen(tmp_path)
    assert (tmp_path / (segment_name(1) + ".corrupt")).read_bytes() == b"earlier"
    assert (tmp_path / (segment_name(1) + ".corrupt.1")).exists()


def test_out_of_order_sequence_is_unreadable(tmp_path):
    write_spool(tmp_path, 5)
    path = tmp_path / segment_name(1)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], lines[1], lines[0], lines[3], lines[4]]))
    figures, _seq = reopen(tmp_path)
    assert figures["segments_set_aside"] == 1
    assert read_seqs(tmp_path)[:2] == [1, 2]


def test_sealed_segment_with_torn_tail_repaired(tmp_path):
    write_spool(tmp_path, 5)
    write_spool(tmp_path, 5)
    path = tmp_path / segment_name(1)
    data = path.read_bytes()
    path.write_bytes(data + b"\0" * 4096)
    figures, _seq = reopen(tmp_path)
    assert path.read_bytes() == data
    assert figures["bytes_cut"] == 4096
    assert_spool_valid(tmp_path)


def test_empty_segments_removed(tmp_path):
    write_spool(tmp_path, 3)
    (tmp_path / segment_name(4)).write_bytes(b"")
    (tmp_path / segment_name(9)).write_bytes(b"")
    _figures, seq = reopen(tmp_path)
    # Segment names prove numbers up to 8 were handed out, even if never written.
    assert seq == 9
    assert not (tmp_path / segment_name(4)).exists()


def test_numbering_continues_after_everything_was_delivered(tmp_path):
    write_spool(tmp_path, 7)
    for segment in list_segments(tmp_path):
        os.unlink(segment.path)
    _figures, seq = reopen(tmp_path)
    assert seq == 8


def test_damaged_state_file_counts_from_zero(tmp_path, caplog):
    write_spool(tmp_path, 3)
    (tmp_path / STATE_FILE).write_bytes(b"\0\0\0")
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")
    _figures, seq = reopen(tmp_path)
    assert "so the spool totals count from zero" in caplog.text
    assert seq == 4
    assert orjson.loads((tmp_path / STATE_FILE).read_bytes())["last_seq"] == 4


@hypothesis.settings(max_examples=150, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(records=st.integers(1, 40), synced_fraction=st.floats(0, 1),
                  cut_fraction=st.floats(0, 1), zero_bytes=st.integers(0, 9000),
                  zero_fill=st.booleans())
def test_power_cut_keeps_every_synced_record(tmp_path_factory, records, synced_fraction,
                                             cut_fraction, zero_bytes, zero_fill):
    """Damage only what follows the last sync point, as a power cut can, and recover."""
    directory = tmp_path_factory.mktemp("spool")
    write_spool(directory, records)
    path = directory / segment_name(1)
    data = path.read_bytes()
    ends = [0] + line_ends(path)
    synced_lines = int(synced_fraction * records)
    synced_end = ends[synced_lines]
    cut = synced_end + int(cut_fraction * (len(data) - synced_end))
    if zero_fill:
        damaged = data[:cut] + b"\0" * max(zero_bytes, len(data) - cut)
    else:
        damaged = data[:cut] + b"\0" * zero_bytes
    path.write_bytes(damaged)

    _figures, seq = reopen(directory)

    recovered = [stored for stored in read_seqs(directory) if stored != seq]
    assert recovered == list(range(1, len(recovered) + 1))
    assert len(recovered) >= synced_lines
    assert seq > len(recovered)
    assert_spool_valid(directory)
