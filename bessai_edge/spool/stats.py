"""Lifetime counters of a spool directory and the summary that ``bessai spool stats`` prints.

The writer's ``stats()`` counts since its ``open()``. The totals since the directory was
created live in ``spool-state.json``, written by the writer after recovery, after each
eviction, every few seconds and at the end of a drop episode, and at ``close()``, so
other processes (the CLI) can show them. A lost or damaged state file resets those
totals, and the next sequence number then follows the last record on disk.
"""

import contextlib
import errno
import logging
import os

import orjson

from bessai_edge import proc_locks
from bessai_edge.spool.segments import (
    CORRUPT_SUFFIX, STATE_FILE, iter_lines, list_segments, record_seq)

log = logging.getLogger(__name__)

LIFETIME_COUNTERS = ("records_dropped", "records_evicted", "segments_evicted",
                     "segments_set_aside", "bytes_cut")
TIME_FIELD = "time_ms"


def load_state(directory):
    """Return the lifetime counters, ``last_seq`` and the spool identity in ``directory``.

    Counters are zeros, and ``spool_id`` is None, when the file is missing or damaged.
    """
    state = dict.fromkeys(LIFETIME_COUNTERS, 0)
    state["last_seq"] = 0
    state.update(spool_id=None, spool_id_first_seq=0)
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
    for key in (*LIFETIME_COUNTERS, "last_seq", "spool_id_first_seq"):
        value = stored.get(key)
        if type(value) is int and value >= 0:
            state[key] = value
    if isinstance(stored.get("spool_id"), str) and stored["spool_id"]:
        state["spool_id"] = stored["spool_id"]
    return state


def load_identity(directory):
    """Return ``(spool_id, first_seq)`` from the state file, or ``(None, 0)`` without one.

    ``first_seq`` is the first sequence number the writer handed out under that id:
    1 for a spool that started empty. Unlike ``load_state`` this logs nothing, for
    readers such as the forwarder.
    """
    try:
        with open(os.path.join(directory, STATE_FILE), "rb") as stream:
            stored = orjson.loads(stream.read())
    except (OSError, orjson.JSONDecodeError):
        return None, 0
    if not isinstance(stored, dict):
        return None, 0
    spool_id, first_seq = stored.get("spool_id"), stored.get("spool_id_first_seq")
    if not isinstance(spool_id, str) or not spool_id or type(first_seq) is not int:
        return None, 0
    return spool_id, first_seq


def save_state(directory, state):
    """Write the state file, atomically where the disk allows it, or raise ``OSError``.

    The normal way is a temporary file renamed over the old one. On a full disk that
    fails, so the old file is overwritten in place: a state file is far smaller than
    one file system block, so it needs no new block. That write is not atomic, and a
    power cut during it leaves a file that ``load_state`` reads as zeros.
    """
    path = os.path.join(directory, STATE_FILE)
    temporary = path + ".tmp"
    data = orjson.dumps(state, option=orjson.OPT_APPEND_NEWLINE)
    try:
        with open(temporary, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        try:
            _overwrite(path, data)
        except FileNotFoundError:
            raise error from None  # no file to overwrite: the full disk is the cause


def _overwrite(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # no O_CREAT: a new file needs a block
    try:
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(errno.ENOSPC, f"short write of {path}")
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def count_lines(path):
    """Return the number of newline-terminated lines in a file."""
    count = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def summarize(directory):
    """Return the figures of ``bessai spool stats`` for a spool directory.

    Reads and parses every line, so it costs one pass over the spool. ``records``
    counts valid records only; ``damaged_lines`` counts the lines that are not (as
    ``bessai spool check`` reports them), leaving out the open segment's last line
    while the writer may still be writing it. ``open_segment`` is the newest segment
    while a writer runs (``writer_running``, see ``writer_status``), else None.
    """
    segments = list_segments(directory)
    records, damaged, first_line, last_line = _count_records(segments)
    oldest = orjson.loads(first_line) if first_line is not None else {}
    newest = orjson.loads(last_line) if last_line is not None else {}
    newest_segment = segments[-1].path.name if segments else None
    running, pid = writer_status(directory)
    return {
        "directory": os.fspath(directory),
        "segments": len(segments),
        "sealed_segments": sum(segment.sealed for segment in segments),
        "newest_segment": newest_segment,
        "open_segment": newest_segment if running else None,
        "writer_running": running,
        "writer_pid": pid,
        "records": records,
        "damaged_lines": damaged,
        "bytes": sum(segment.size for segment in segments),
        "first_seq": oldest.get("seq"),
        "last_seq": newest.get("seq"),
        "oldest_time_ms": oldest.get(TIME_FIELD),
        "newest_time_ms": newest.get(TIME_FIELD),
        "set_aside": sorted(name for name in os.listdir(directory) if CORRUPT_SUFFIX in name),
        **{f"lifetime_{key}": value for key, value in load_state(directory).items()
           if key != "last_seq"},
    }


def writer_status(directory):
    """Return ``(running, pid)`` for the writer of the spool ``directory``.

    A writer holds an exclusive flock on the directory from ``Spool.open()`` to
    ``close()``. Both values are None when /proc/locks cannot be read.
    """
    # NOTE: /proc/locks leaves out locks held by processes in another PID namespace,
    # so a writer in a container shows as not running to a reader outside it.
    if not os.access(proc_locks.LOCKS_FILE, os.R_OK):
        return None, None
    pid = proc_locks.lock_holder(directory)
    return pid is not None, pid


def _count_records(segments):
    """Return ``(records, damaged lines, first record line, last record line)``."""
    records = damaged = 0
    first_line = last_line = None
    for segment in segments:
        try:
            stream = open(segment.path, "rb")
        except FileNotFoundError:
            continue        # delivered and deleted while counting
        with stream:
            for _offset, line, complete in iter_lines(stream):
                if complete and record_seq(line) is not None:
                    records += 1
                    if first_line is None:
                        first_line = line
                    last_line = line
                elif complete or segment.sealed or b"\0" in line:
                    damaged += 1
    return records, damaged, first_line, last_line
