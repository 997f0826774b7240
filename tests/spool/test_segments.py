"""Segment names, the line check and the line splitter."""

import io
import os
import shutil
import tempfile

import pytest

from bessai_edge.errors import SpoolError
from bessai_edge.spool.reader import SpoolReader
from bessai_edge.spool.segments import (iter_lines, list_segments, parse_segment_name,
                                        record_seq, segment_name)
from tests.settings.helpers import NOBODY, call_as_nobody


@pytest.mark.parametrize("first_seq, name", [
    (1, "00000000000000000001.jsonl"),
    (12345, "00000000000000012345.jsonl"),
    (2 ** 64 - 1, "18446744073709551615.jsonl"),
])
def test_segment_name_round_trip(first_seq, name):
    assert segment_name(first_seq) == name
    assert parse_segment_name(name) == first_seq


@pytest.mark.parametrize("name", [
    "1.jsonl", "00000000000000000001.jsonl.corrupt", "00000000000000000001.json",
    "spool-state.json", "0000000000000000000a.jsonl", "000000000000000000001.jsonl",
])
def test_parse_segment_name_rejects_other_files(name):
    assert parse_segment_name(name) is None


def test_segment_names_sort_in_sequence_order():
    seqs = [1, 9, 10, 99, 100, 123456789]
    names = sorted(segment_name(seq) for seq in reversed(seqs))
    assert [parse_segment_name(name) for name in names] == seqs


def test_list_segments_marks_only_newest_open(tmp_path):
    for seq in (30, 1, 12):
        (tmp_path / segment_name(seq)).write_bytes(b'{"seq":%d}\n' % seq)
    (tmp_path / "spool-state.json").write_text("{}")
    (tmp_path / (segment_name(5) + ".corrupt")).write_text("x")
    segments = list_segments(tmp_path)
    assert [segment.first_seq for segment in segments] == [1, 12, 30]
    assert [segment.sealed for segment in segments] == [True, True, False]
    assert segments[0].size == len(b'{"seq":1}\n')


@pytest.mark.parametrize("line, seq", [
    (b'{"seq":7,"a":1}', 7),
    (b'{"a":1,"seq":1}', 1),
    (b'{"seq":0}', None),
    (b'{"seq":-3}', None),
    (b'{"seq":1.0}', None),
    (b'{"seq":true}', None),
    (b'{"seq":"5"}', None),
    (b'{"a":1}', None),
    (b'[1,2]', None),
    (b'{"seq":7,"a":"\x00"}', None),
    (b'\x00\x00\x00\x00', None),
    (b'{"seq":7,"a":', None),
    (b'', None),
])
def test_record_seq_cases(line, seq):
    assert record_seq(line) == seq


def test_iter_lines_offsets_and_incomplete_tail():
    data = b"ab\n\ncdef\nxyz"
    lines = list(iter_lines(io.BytesIO(data), chunk_size=3))
    assert lines == [(0, b"ab", True), (3, b"", True), (4, b"cdef", True), (9, b"xyz", False)]


def test_iter_lines_from_start_offset():
    data = b"ab\ncd\nef\n"
    assert list(iter_lines(io.BytesIO(data), start=3)) == [(3, b"cd", True), (6, b"ef", True)]


def list_spool_error(directory):
    """Return the message of the SpoolError that listing ``directory`` raises, or None."""
    try:
        SpoolReader(directory).segments()
    except SpoolError as error:
        return str(error)
    return None


@pytest.mark.root
@pytest.mark.parametrize("owner, mode, advice", [
    # An administrator outside group bessai: the caller lacks access, not the service.
    (0, 0o750, "cannot be opened by nobody (uid 65534): run the command as the bessai user "
               "(sudo -u bessai bessai ...), or add nobody to group bessai for read access "
               "(sudo adduser nobody bessai, then log in again)"),
    # The owner itself, as the service would be, lacks access.
    (NOBODY, 0o000, "cannot be opened by nobody (uid 65534): give the bessai user access "
                    "to it"),
])
def test_directory_permission_names_fix(needs_root, owner, mode, advice):
    # The directory goes to /tmp, which the user nobody can reach, unlike pytest's tmp_path.
    parent = tempfile.mkdtemp(prefix="bessai-spool-", dir="/tmp")
    directory = os.path.join(parent, "spool")
    try:
        os.chmod(parent, 0o755)
        os.mkdir(directory)
        os.chown(directory, owner, 0)
        os.chmod(directory, mode)
        message = call_as_nobody(list_spool_error, directory)
    finally:
        shutil.rmtree(parent)

    assert message == f"spool directory {directory} {advice}"
