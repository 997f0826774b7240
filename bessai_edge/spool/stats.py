"""Lifetime counters of a spool directory and the summary that ``bessai spool stats`` prints.

The writer's ``stats()`` counts since its ``open()``. The totals since the directory was
created live in ``spool-state.json``, written by the writer after recovery, after each
eviction, at the end of each drop episode and at ``close()``, so other processes (the
CLI) can show them. A lost or damaged state file only resets those totals.
"""

import logging
import os

import orjson

from bessai_edge.spool.recovery import TAIL_CHECK_BYTES
from bessai_edge.spool.segments import CORRUPT_SUFFIX, STATE_FILE, iter_lines, list_segments

log = logging.getLogger(__name__)

LIFETIME_COUNTERS = ("records_dropped", "records_evicted", "segments_evicted",
                     "segments_set_aside", "bytes_cut")
TIME_FIELD = "time_ms"


def load_state(directory):
    """Return the lifetime counters and ``last_seq`` stored in ``directory`` (zeros if none)."""
    state = dict.fromkeys(LIFETIME_COUNTERS, 0)
    state["last_seq"] = 0
    path = os.path.join(directory, STATE_FILE)
    try:
        with open(path, "rb") as stream:
            stored = orjson.loads(stream.read())
    except FileNotFoundError:
        return state
    except (OSError, orjson.JSONDecodeError) as error:
        log.warning("cannot read %s (%s), so the spool totals count from zero", path, error)
        return state
    if not isinstance(stored, dict):
        log.warning("%s does not contain a JSON object, so the spool totals count from zero",
                    path)
        return state
    for key in state:
        value = stored.get(key)
        if type(value) is int and value >= 0:
            state[key] = value
    return state


def save_state(directory, state):
    """Write the state file atomically (temporary file, then rename) or raise ``OSError``."""
    path = os.path.join(directory, STATE_FILE)
    temporary = path + ".tmp"
    with open(temporary, "wb") as stream:
        stream.write(orjson.dumps(state, option=orjson.OPT_APPEND_NEWLINE))
    os.replace(temporary, path)


def count_lines(path):
    """Return the number of newline-terminated lines in a file."""
    count = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def summarize(directory):
    """Return the figures of ``bessai spool stats`` for a spool directory.

    Reads every segment to count its lines, so it costs one pass over the spool.
    """
    segments = list_segments(directory)
    records = 0
    for segment in segments:
        try:
            records += count_lines(segment.path)
        except FileNotFoundError:
            continue        # delivered and deleted while counting
    oldest = _first_record(segments)
    newest = _last_record(segments)
    return {
        "directory": os.fspath(directory),
        "segments": len(segments),
        "sealed_segments": sum(segment.sealed for segment in segments),
        "open_segment": segments[-1].path.name if segments else None,
        "records": records,
        "bytes": sum(segment.size for segment in segments),
        "first_seq": oldest.get("seq"),
        "last_seq": newest.get("seq"),
        "oldest_time_ms": oldest.get(TIME_FIELD),
        "newest_time_ms": newest.get(TIME_FIELD),
        "set_aside": sorted(name for name in os.listdir(directory) if CORRUPT_SUFFIX in name),
        **{f"lifetime_{key}": value for key, value in load_state(directory).items()
           if key != "last_seq"},
    }


def _first_record(segments):
    for segment in segments:
        try:
            with open(segment.path, "rb") as stream:
                for _offset, line, complete in iter_lines(stream):
                    record = _parse(line) if complete else None
                    if record is not None:
                        return record
        except FileNotFoundError:
            continue
    return {}


def _last_record(segments):
    """Return the last complete, valid record, skipping a line still being written."""
    for segment in reversed(segments):
        try:
            with open(segment.path, "rb") as stream:
                stream.seek(max(0, segment.size - TAIL_CHECK_BYTES))
                tail = stream.read(segment.size - stream.tell())
        except FileNotFoundError:
            continue
        end = tail.rfind(b"\n")
        if end < 0:
            continue
        start = tail.rfind(b"\n", 0, end) + 1
        record = _parse(tail[start:end])
        if record is not None:
            return record
    return {}


def _parse(line):
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None
