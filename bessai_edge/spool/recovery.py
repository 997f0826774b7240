"""Start-up repair of the spool directory after a crash or a power cut.

kill -9 leaves whole lines behind, because each line is one ``write``, but a power cut
can leave a line cut short, or blocks of zero bytes where the file had grown but its
data never reached the disk. Only data written after the last fdatasync is at risk, so
damage is expected at the end of the newest segment. The rules:

- bytes after the last newline are a torn tail, the rest of a write cut short, and are
  cut off, together with any lines before them that hold no data (empty, or zero bytes
  only) and follow the last record. This holds for every segment, because a sealed segment can end in a torn
  write too. Its fsync at sealing may have failed before a power cut, the writer may
  have left it after another process changed it, or cutting back a failed write may
  have failed on a full disk. A segment of nothing but a torn tail is deleted;
- a complete line (one that ends in a newline) that is not a valid record is damaged.
  Damaged lines are set aside in ``NAME.jsonl.corrupt`` for a person to inspect,
  also those at the end of a segment, so recovery deletes no complete line with data
  in it.
  Every valid record stays deliverable: the segment keeps the valid lines before the
  first damaged one (their offsets, which a forwarder checkpoint may point into, do
  not change), and each later run of valid lines moves to a new segment named by its
  first sequence number, so the names still sort in sequence order. When a file
  cannot be written (full disk), everything from the first damaged line on is set
  aside instead, or the whole segment when its first line is already damaged;
- an empty segment is deleted.

The newest segment is checked line by line. Sealed segments were fsynced when they
were sealed, so by default only their last block is checked, and a full check follows
when it looks wrong; ``check_all`` checks every segment line by line.
"""

import contextlib
import dataclasses
import logging
import os
import re
import shutil

from bessai_edge.spool.segments import (
    CORRUPT_SUFFIX, RECORD_FILE_MODE, iter_lines, list_segments, record_seq, segment_name)

log = logging.getLogger(__name__)

TAIL_CHECK_BYTES = 64 * 1024
_CORRUPT_NAME = re.compile(r"^(\d+)\.jsonl\.corrupt(\.\d+)?$")


@dataclasses.dataclass
class SegmentScan:
    """Result of reading one segment line by line."""

    size: int
    good_end: int = 0            # offset just after the last line of the valid prefix
    records: int = 0             # lines in the valid prefix
    last_seq: int = 0            # highest valid sequence number anywhere in the file
    bad_offset: int = -1         # offset of the first complete invalid line, -1 if none
    torn_offset: int = -1        # offset of the bytes after the last newline, -1 if none


@dataclasses.dataclass
class RecoveryReport:
    """Findings and changes of one recovery run over a spool directory."""

    last_seq: int = 0            # highest sequence number the directory shows as used
    bytes_cut: int = 0
    set_aside: list = dataclasses.field(default_factory=list)   # new .corrupt file names
    removed_empty: list = dataclasses.field(default_factory=list)


def scan_segment(path):
    """Read a segment line by line and classify its lines (see ``SegmentScan``).

    Sequence numbers must rise from line to line. A line whose ``seq`` does not is
    invalid like one that does not parse.
    """
    blank_from = -1  # start of the lines without data since the last other line
    with open(path, "rb") as stream:
        scan = SegmentScan(size=os.fstat(stream.fileno()).st_size)
        for offset, line, complete in iter_lines(stream):
            if not complete:
                scan.torn_offset = offset
                break
            if line.strip(b"\0"):
                blank_from = -1
            elif blank_from < 0:
                blank_from = offset
            seq = record_seq(line)
            if seq is not None and seq > scan.last_seq:
                scan.last_seq = seq
                if scan.bad_offset < 0:
                    scan.records += 1
                    scan.good_end = offset + len(line) + 1
            elif scan.bad_offset < 0:
                scan.bad_offset = offset
    if blank_from >= 0:
        # Lines without data at the end come from a power cut, as a torn tail does.
        scan.torn_offset = blank_from
        if scan.bad_offset >= blank_from:
            scan.bad_offset = -1
    return scan


def tail_last_seq(path, size):
    """Return the ``seq`` of a segment's last line when it is valid and complete, else None."""
    if size == 0:
        return None
    with open(path, "rb") as stream:
        stream.seek(max(0, size - TAIL_CHECK_BYTES))
        tail = stream.read()
    if not tail.endswith(b"\n"):
        return None
    start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
    if start == 0 and size > len(tail):
        return None     # the last line is longer than the block read: check it in full
    return record_seq(tail[start:-1])


def recover(directory, dir_fd, check_all=False):
    """Repair every segment of ``directory`` by the module's rules and report the result.

    ``dir_fd`` is an open descriptor of the directory, fsynced after any change. A
    segment that cannot be read or repaired is logged and left as it is.
    """
    report = RecoveryReport(last_seq=_highest_corrupt_seq(directory))
    changed = False
    for segment in list_segments(directory):
        # The name alone proves that the sequence numbers below it were handed out.
        report.last_seq = max(report.last_seq, segment.first_seq - 1)
        try:
            changed |= _recover_segment(segment, report, check_all)
        except FileNotFoundError:
            continue    # the forwarder deleted this delivered segment meanwhile
        except OSError as error:
            log.error("cannot check or repair spool segment %s (%s), so it was left as "
                      "it is", segment.path, error)
    _fsync_newest(directory)
    if changed:
        os.fsync(dir_fd)
    return report


def _fsync_newest(directory):
    """Fsync the newest segment, the only one that a crash can leave unsynced.

    Every older one was fsynced when it was sealed, so afterwards every record in the
    directory is on disk.
    """
    segments = list_segments(directory)
    if not segments:
        return
    try:
        fd = os.open(segments[-1].path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except FileNotFoundError:
        return
    except OSError as error:
        log.warning("fsync of spool segment %s failed (%s), so its last records may be "
                    "lost in a power cut", segments[-1].path.name, error)


def _recover_segment(segment, report, check_all):
    """Check one segment, repair it if needed and return True if it changed."""
    if segment.size == 0:
        os.unlink(segment.path)
        report.removed_empty.append(segment.path.name)
        return True
    if segment.sealed and not check_all:
        last_seq = tail_last_seq(segment.path, segment.size)
        if last_seq is not None:
            report.last_seq = max(report.last_seq, last_seq)
            return False
    scan = scan_segment(segment.path)
    report.last_seq = max(report.last_seq, scan.last_seq)
    if scan.torn_offset < 0 and scan.bad_offset < 0:
        return False
    if scan.torn_offset >= 0 and not _cut_torn_tail(segment, scan, report):
        return True     # the segment held nothing but the torn tail and is gone
    if scan.bad_offset >= 0 and not _split_around_damage(segment, scan, report):
        _set_aside(segment, scan, report)
    return True


def _cut_torn_tail(segment, scan, report):
    """Cut the bytes after the last newline, and return False when that deleted the segment.

    Afterwards ``scan.size`` is the new size.
    """
    name = segment.path.name
    cut = scan.size - scan.torn_offset
    report.bytes_cut += cut
    if scan.torn_offset == 0:
        os.unlink(segment.path)
        report.removed_empty.append(name)
        log.warning("segment %s held no complete record: deleted it (%d bytes of torn "
                    "data)", name, cut)
        return False
    with open(segment.path, "r+b") as stream:
        stream.truncate(scan.torn_offset)
        os.fsync(stream.fileno())
    scan.size = scan.torn_offset
    log.warning("cut %d bytes of torn tail (no complete record after the last one) from "
                "segment %s at offset %d", cut, name, scan.torn_offset)
    return True


def _split_lines(path, start):
    """Return ``(runs, damaged)`` for the lines of ``path`` from offset ``start`` on.

    ``runs`` lists ``(first_seq, bytes)`` for each run of valid lines, ``damaged`` the
    bytes of the invalid ones, each ending with a newline. A line is valid as in
    ``scan_segment``: complete, a record, and a sequence number above every earlier one.
    """
    runs, damaged = [], []
    last_seq = 0
    current = None
    with open(path, "rb") as stream:
        for _offset, line, complete in iter_lines(stream):
            seq = record_seq(line) if complete else None
            valid = seq is not None and seq > last_seq
            if valid:
                last_seq = seq
            if _offset < start:
                continue
            if valid:
                if current is None:
                    current = (seq, [])
                    runs.append(current)
                current[1].append(line + b"\n")
            else:
                current = None
                damaged.append(line + b"\n")
    return [(first, b"".join(lines)) for first, lines in runs], b"".join(damaged)


def _split_around_damage(segment, scan, report):
    """Set aside the damaged lines of a segment and keep its valid records. True when done.

    The damaged lines go to a new ``.corrupt`` file and each run of valid lines after
    the first damaged one to a new segment, all fsynced, before the segment is cut
    back to its valid prefix. A failed write removes what was written, and the caller
    sets the rest of the segment aside in one piece.
    """
    if scan.good_end == 0:
        return False    # nothing to keep in place: the whole segment is set aside
    runs, damaged = _split_lines(segment.path, scan.good_end)
    directory = os.path.dirname(segment.path)
    target = _free_corrupt_name(segment.path)
    written = []
    try:
        _write_new(target, damaged)
        written.append(target)
        for first_seq, data in runs:
            name = os.path.join(directory, segment_name(first_seq))
            if os.path.exists(name) and not _same_content(name, data):
                raise OSError(f"{os.path.basename(name)} exists with other records")
            written.append(name + ".tmp")
            _write_new(name + ".tmp", data)
            os.replace(name + ".tmp", name)
            written[-1] = name
    except OSError as error:
        log.warning("cannot split segment %s around its unreadable lines (%s), so the "
                    "rest of it is set aside", segment.path.name, error)
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return False
    with open(segment.path, "r+b") as stream:
        stream.truncate(scan.good_end)
        os.fsync(stream.fileno())
    _log_split(segment.path.name, len(damaged), os.path.basename(target), runs,
               [os.path.basename(name) for name in written[1:]])
    report.set_aside.append(os.path.basename(target))
    return True


def _log_split(name, damaged_bytes, target, runs, new_segments):
    if not runs:
        log.error("segment %s ends with unreadable lines (%d bytes): moved them to %s "
                  "(inspect it, then delete it)", name, damaged_bytes, target)
        return
    log.error("segment %s has unreadable lines (%d bytes) among valid records: moved "
              "them to %s (inspect it, then delete it) and the %d records after them to "
              "%s", name, damaged_bytes, target,
              sum(data.count(b"\n") for _first, data in runs), ", ".join(new_segments))


def _same_content(path, data):
    """Return True when the file at ``path`` contains exactly ``data``."""
    with open(path, "rb") as stream:
        return stream.read() == data


def _write_new(path, data):
    """Write ``data`` to ``path`` (replacing a leftover of an interrupted repair), fsynced.

    A new file gets the writer's mode, because it contains records as a segment does.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, RECORD_FILE_MODE)
    with open(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _set_aside(segment, scan, report):
    name = segment.path.name
    target = _free_corrupt_name(segment.path)
    if scan.good_end > 0 and _copy_tail(segment.path, scan.good_end, target):
        with open(segment.path, "r+b") as stream:
            stream.truncate(scan.good_end)
            os.fsync(stream.fileno())
        log.error("segment %s has an unreadable line at offset %d: kept its first %d "
                  "records and moved the %d bytes from there on to %s (inspect it, then "
                  "delete it)", name, scan.bad_offset, scan.records,
                  scan.size - scan.good_end, os.path.basename(target))
    else:
        os.rename(segment.path, target)
        log.error("segment %s has an unreadable line at offset %d: renamed it to %s and "
                  "went on without it (inspect it, then delete it)", name, scan.bad_offset,
                  os.path.basename(target))
    report.set_aside.append(os.path.basename(target))


def _copy_tail(path, start, target):
    """Copy ``path`` from ``start`` on into a new file ``target`` and return True on success."""
    try:
        copy = open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                            RECORD_FILE_MODE), "wb")
    except OSError as error:
        log.warning("cannot create %s: %s", target, error)
        return False
    try:
        with copy, open(path, "rb") as source:
            source.seek(start)
            shutil.copyfileobj(source, copy)
            copy.flush()
            os.fsync(copy.fileno())
    except OSError as error:
        log.warning("cannot copy the unreadable part of %s to %s: %s", path, target, error)
        with contextlib.suppress(OSError):
            os.unlink(target)
        return False
    return True


def _free_corrupt_name(path):
    target = f"{path}{CORRUPT_SUFFIX}"
    number = 1
    while os.path.exists(target):
        target = f"{path}{CORRUPT_SUFFIX}.{number}"
        number += 1
    return target


def _highest_corrupt_seq(directory):
    """Return the highest first sequence number among set-aside segments, minus one."""
    highest = 0
    for name in os.listdir(directory):
        match = _CORRUPT_NAME.match(name)
        if match:
            highest = max(highest, int(match.group(1)) - 1)
    return highest
