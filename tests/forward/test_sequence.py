"""SequenceCheck logs each sequence gap once, also when a reconnect reads records again."""

import logging

import pytest

from bessai_edge.forward.sequence import SequenceCheck
from bessai_edge.forward.stamp import RecordStamp

LOGGER = "bessai_edge.forward.forwarder"


class _Reader:
    skipped_lines = 0


def _gap_lines(caplog):
    messages = [record.getMessage() for record in caplog.records]
    return [message for message in messages if "sequence gap" in message]


def _read(check, seqs):
    for seq in seqs:
        check.check(seq, (1, 0))


@pytest.mark.parametrize("first,rewind_to,second,gap_text,missing", [
    # A gap read again after a rewind is logged once.
    ([1, 2, 5, 6], 1, [2, 5, 6], "records 3 to 4 (2)", 2),
    # Records 6 to 8 were read and published, the connection was lost before their
    # PUBACKs, and the spool evicted them before the reconnect read them again.
    (list(range(1, 11)), 5, [9, 10, 11], "records 6 to 8 (3)", 3),
])
def test_gap_logged_once_after_rewind(caplog, first, rewind_to, second, gap_text, missing):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    check = SequenceCheck(_Reader())
    _read(check, first)
    check.rewind(rewind_to)
    _read(check, second)

    lines = _gap_lines(caplog)
    assert len(lines) == 1
    assert gap_text in lines[0]
    assert check.gaps == 1
    assert check.missing_records == missing


def test_gap_partly_logged_before(caplog):
    # Records 3 and 4 were a logged gap. After the rewind the spool also lost 5 to 7,
    # which had been read before, so only those make a new gap line.
    caplog.set_level(logging.WARNING, logger=LOGGER)
    check = SequenceCheck(_Reader())
    _read(check, [1, 2, 5, 6, 7, 8])
    check.rewind(2)
    _read(check, [8, 9])

    lines = _gap_lines(caplog)
    assert len(lines) == 2
    assert "records 3 to 4 (2)" in lines[0]
    assert "records 5 to 7 (3)" in lines[1]
    assert check.missing_records == 5


def test_acknowledged_gaps_forgotten():
    check = SequenceCheck(_Reader())
    _read(check, [1, 2, 5, 6, 9])
    check.acknowledged(6)
    assert check._logged_gaps == [(7, 8)]


MARK = RecordStamp(300, "boot-a", 100.0)


@pytest.mark.parametrize("stamp, delivered", [
    pytest.param(RecordStamp(251, "boot-a", 90.0), True, id="same-boot-earlier"),
    pytest.param(RecordStamp(300, "boot-a", 100.0), True, id="the-mark-itself"),
    pytest.param(RecordStamp(251, "boot-a", 120.0), False, id="same-boot-later"),
    pytest.param(RecordStamp(251, "boot-b", 5.0), False, id="another-boot"),
    pytest.param(RecordStamp(251, None, None), False, id="no-boot-id"),
    pytest.param(RecordStamp(301, "boot-a", 100.0), False, id="above-the-mark"),
])
def test_repeated_seq_skipped_only_when_older(caplog, stamp, delivered):
    caplog.set_level(logging.INFO, logger=LOGGER)
    check = SequenceCheck(_Reader(), last_seq=300, mark=MARK)
    assert check.check(stamp.seq, (251, 0), stamp) is delivered
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "spool directory replaced" not in messages
    if not delivered and stamp.seq <= MARK.seq:
        assert "went back from 300 to 251" in messages
