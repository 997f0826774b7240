"""The size cap: oldest sealed segments evicted first, counted, logged, and the cap held."""

import logging
import re

from bessai_edge.spool import Spool, SpoolReader
from bessai_edge.spool.segments import list_segments
from bessai_edge.spool.stats import load_state
from tests.spool.helpers import assert_spool_valid, read_seqs, sample_record

SEGMENT = 2000
CAP = 5 * SEGMENT


def total_bytes(directory):
    return sum(segment.size for segment in list_segments(directory))


def test_cap_never_exceeded_and_oldest_evicted_first(tmp_path):
    with Spool(tmp_path, segment_max_bytes=SEGMENT, max_total_bytes=CAP) as spool:
        for number in range(400):
            spool.append(sample_record(number))
            assert total_bytes(tmp_path) <= CAP
        figures = spool.stats()
    seqs = read_seqs(tmp_path)
    assert seqs == list(range(seqs[0], 401))
    assert figures["segments_evicted"] > 0
    assert figures["records_evicted"] == seqs[0] - 1
    assert figures["records_appended"] == 400
    assert_spool_valid(tmp_path)


def test_eviction_logged_with_range_and_count(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="bessai_edge.spool")
    with Spool(tmp_path, segment_max_bytes=SEGMENT, max_total_bytes=CAP) as spool:
        for number in range(200):
            spool.append(sample_record(number))
        figures = spool.stats()
    messages = [r.getMessage() for r in caplog.records if "evicted segment" in r.getMessage()]
    assert len(messages) == figures["segments_evicted"]
    logged_records = 0
    expected_first = 1
    for message in messages:
        match = re.search(r"sequence numbers (\d+)-(\d+) \((\d+) records, (\d+) bytes", message)
        assert match, message
        first, last, records = (int(match.group(index)) for index in (1, 2, 3))
        assert first == expected_first
        assert records == last - first + 1
        expected_first = last + 1
        logged_records += records
    assert logged_records == figures["records_evicted"]


def test_eviction_counts_segments_of_earlier_runs(tmp_path):
    with Spool(tmp_path, segment_max_bytes=SEGMENT, max_total_bytes=CAP) as spool:
        for number in range(100):
            spool.append(sample_record(number))
        evicted_before = spool.stats()["records_evicted"]
    oldest_before = read_seqs(tmp_path)[0]
    with Spool(tmp_path, segment_max_bytes=SEGMENT, max_total_bytes=CAP) as spool:
        for number in range(100):
            spool.append(sample_record(number))
            assert total_bytes(tmp_path) <= CAP
        figures = spool.stats()
    oldest_after = read_seqs(tmp_path)[0]
    # Every record from before the restart that is gone now was counted by the second run.
    assert figures["records_evicted"] == oldest_after - oldest_before
    state = load_state(tmp_path)
    assert state["records_evicted"] == evicted_before + figures["records_evicted"]
    assert state["last_seq"] == 200


def test_segments_deleted_by_reader_are_not_evicted(tmp_path):
    reader = SpoolReader(tmp_path)
    with Spool(tmp_path, segment_max_bytes=SEGMENT, max_total_bytes=CAP) as spool:
        for number in range(400):
            spool.append(sample_record(number))
            for segment in reader.segments():
                if segment.sealed:
                    reader.delete_segment(segment.first_seq)
        figures = spool.stats()
    assert figures["records_evicted"] == 0
    assert figures["segments_evicted"] == 0


def test_lifetime_counters_survive_restart(tmp_path):
    for _run in range(2):
        with Spool(tmp_path, segment_max_bytes=SEGMENT, max_total_bytes=CAP) as spool:
            for number in range(150):
                spool.append(sample_record(number))
    state = load_state(tmp_path)
    assert state["records_evicted"] == read_seqs(tmp_path)[0] - 1
    assert state["segments_evicted"] >= 2
