"""Helpers shared by the spool tests: sample records, reading a spool back, the writer child."""

import os
import pathlib
import subprocess
import sys

import orjson

from bessai_edge.records import RecordFactory
from bessai_edge.spool.check import check_spool
from bessai_edge.spool.segments import list_segments

WRITER_CHILD = pathlib.Path(__file__).with_name("writer_child.py")


def sample_record(number):
    """Return a small record shaped like the scan loop's, about 150 bytes as JSON."""
    return {"v": 1, "site": "test", "device": "inv1", "time_ms": 1_700_000_000_000 + number,
            "values": {"soc_pct": 50.0 + number % 40, "battery_power_kw": -1.25},
            "quality": {"soc_pct": "ok", "battery_power_kw": "ok"}}


def layout_record(number):
    """Return a record in the full layout of ``records.py``, as ``bessai run`` writes it."""
    factory = RecordFactory("test", "inv1", "huawei_sun2000", "boot-1")
    return factory.build(
        cycle=number + 1, wall_ms=1_700_000_000_000 + number, monotonic_s=100.0 + number,
        cycle_ms=12.5, state="ok", error=None, values={"soc_pct": 50.0 + number % 40},
        quality={"soc_pct": "ok"}, alarms=[], alarm_changes=[], clock_synced=True)


def read_records(directory):
    """Return every record of every segment, parsed, in file order."""
    records = []
    for segment in list_segments(directory):
        with open(segment.path, "rb") as stream:
            for line in stream.read().splitlines():
                records.append(orjson.loads(line))
    return records


def read_seqs(directory):
    return [record["seq"] for record in read_records(directory)]


def assert_spool_valid(directory):
    """Assert that a full validation pass finds no bad line, no set-aside file, no torn tail.

    The record layout is not checked, because ``sample_record`` has only some of its keys.
    """
    report = check_spool(directory, check_layout=False)
    assert report.bad_lines == []
    assert report.set_aside == []
    assert report.incomplete_tail is None
    return report


def start_writer(directory, *, segment_bytes=32 * 1024, fsync_interval_s=0.002, records=0,
                 max_total_bytes=1 << 30):
    """Start ``writer_child.py`` in its own process with its stdout on a pipe."""
    command = [sys.executable, str(WRITER_CHILD), os.fspath(directory),
               "--segment-bytes", str(segment_bytes), "--fsync-interval", str(fsync_interval_s),
               "--records", str(records), "--max-total-bytes", str(max_total_bytes)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def parse_writer_output(output):
    """Return ``(ready_seq, highest_synced_seq, done_seq)`` from the child's stdout."""
    ready = synced = done = None
    for line in output.decode("ascii", "replace").splitlines():
        word, _, value = line.partition(" ")
        if not value.isdigit():
            continue        # a line cut short by kill -9
        if word == "ready":
            ready = int(value)
        elif word == "synced":
            synced = int(value)
        elif word == "done":
            done = int(value)
    return ready, synced, done
