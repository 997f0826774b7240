"""kill -9 of a writer at random moments, 200 times: recovery keeps every fsynced record."""

import random
import subprocess

import pytest

from bessai_edge.spool import Spool, SpoolReader
from bessai_edge.spool.segments import record_seq
from tests.spool.helpers import parse_writer_output, start_writer

KILLS = 200


@pytest.mark.slow
def test_kill_9_loop_loses_no_synced_record(tmp_path):
    rng = random.Random()
    seed = rng.randrange(1 << 32)
    rng.seed(seed)
    reader = SpoolReader(tmp_path)
    checkpoint = None
    next_expected = 1
    killed_while_writing = 0
    for iteration in range(KILLS):
        context = f"seed {seed}, kill {iteration}"
        writer = start_writer(tmp_path, segment_bytes=16 * 1024, fsync_interval_s=0.002)
        if iteration % 5 == 0:
            # Anywhere from interpreter start-up through recovery to the first appends.
            _wait(writer, rng.uniform(0, 0.15))
        else:
            assert writer.stdout.readline().startswith(b"ready"), context
            _wait(writer, rng.uniform(0, 0.03))
        writer.kill()
        output, errors = writer.communicate(timeout=30)
        assert writer.returncode == -9, f"{context}: {errors.decode()}"
        _ready, synced, _done = parse_writer_output(output)
        killed_while_writing += synced is not None

        # Recovery, as the next start of the gateway runs it.
        Spool(tmp_path).open().close()

        for position, line in reader.read(checkpoint):
            assert record_seq(line) == next_expected, f"{context}: {line[:80]!r}"
            next_expected += 1
            checkpoint = position
        segments = reader.segments()
        if segments:
            # Every byte on disk was read as whole, valid records: no unreadable line left.
            assert checkpoint == (segments[-1].first_seq, segments[-1].size), context
        if synced is not None:
            assert next_expected - 1 >= synced, f"{context}: lost synced record {synced}"
        for segment in segments[:-1]:
            reader.delete_segment(segment.first_seq)
    assert killed_while_writing > KILLS // 2


def _wait(process, seconds):
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass    # the usual case: the writer is still running when it gets killed
