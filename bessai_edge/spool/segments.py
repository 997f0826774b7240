"""Segment files of the spool directory: their names, the listing and line checks.

A segment is named by the first sequence number it may hold, zero-padded to 20 digits
(enough for any unsigned 64-bit number), so a plain sort of the names is sequence order.
"""

import dataclasses
import os
import pathlib
import re

import orjson

from bessai_edge import access
from bessai_edge.errors import SpoolError
from bessai_edge.i18n import _, ngettext, os_error_text

SUFFIX = ".jsonl"
CORRUPT_SUFFIX = ".corrupt"
STATE_FILE = "spool-state.json"
# Mode of every file that contains records (segments, and the repair's .corrupt files),
# before the umask: the bessai user writes, group bessai reads, others get nothing.
RECORD_FILE_MODE = 0o640
NAME_DIGITS = 20
_NAME = re.compile(r"^(\d{%d})\.jsonl$" % NAME_DIGITS)


@dataclasses.dataclass(frozen=True)
class BadLine:
    """A line that is not a valid record, or sequence numbers out of order."""

    segment: str
    offset: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Segment:
    """One segment file as listed at a moment: the newest one is open, older ones sealed."""

    first_seq: int
    path: pathlib.Path
    size: int
    sealed: bool


def segment_name(first_seq):
    """Return the file name of the segment that starts at ``first_seq``."""
    return f"{first_seq:0{NAME_DIGITS}d}{SUFFIX}"


def parse_segment_name(name):
    """Return the first sequence number encoded in a segment file name, or None."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


def list_segments(directory):
    """List the segments of ``directory`` in sequence order, the last one being open.

    A file deleted between the listing and its ``stat`` is left out, because the
    forwarder and the writer's eviction delete segments while others list them.
    """
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            first_seq = parse_segment_name(entry.name)
            if first_seq is None:
                continue
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            found.append((first_seq, pathlib.Path(entry.path), size))
    found.sort()
    last = len(found) - 1
    return [Segment(seq, path, size, sealed=index != last)
            for index, (seq, path, size) in enumerate(found)]


def directory_error(directory, error):
    """Return the ``SpoolError`` for a spool directory that cannot be opened or listed."""
    if isinstance(error, FileNotFoundError):
        text = _("spool directory {directory} does not exist: create it, owned by the bessai "
                 "user, or set SPOOL_DIR")
    elif isinstance(error, NotADirectoryError):
        text = _("spool directory {directory} is not a directory: set SPOOL_DIR to a directory")
    elif isinstance(error, PermissionError) and access.is_service_user(directory):
        text = _("spool directory {directory} cannot be opened by {user} (uid {uid}): give "
                 "the bessai user access to it")
    elif isinstance(error, PermissionError):
        # Another user, such as an administrator running bessai spool stats, needs the
        # access that the service has.
        text = _("spool directory {directory} cannot be opened by {user} (uid {uid}): run "
                 "the command as the bessai user (sudo -u bessai bessai ...), or add {user} "
                 "to group bessai for read access (sudo adduser {user} bessai, then log in "
                 "again)")
    else:
        text = _("spool directory {directory} cannot be opened ({error}): check the disk and "
                 "SPOOL_DIR")
    return SpoolError(text.format(directory=directory, uid=os.geteuid(), error=error,
                                  user=access.user_name()))


def not_writable_text(directory):
    """Return the message for a spool directory this process may not write to."""
    if access.is_service_user(directory):
        text = _("spool directory {directory} is not writable by {user} (uid {uid}) (or its "
                 "file system is read-only): make it writable by the bessai user or set "
                 "SPOOL_DIR")
    else:
        # Another user, such as a technician trying `bessai run` by hand.
        text = _("spool directory {directory} is not writable by {user} (uid {uid}): run "
                 "the command as the bessai user (sudo -u bessai bessai ...), or set "
                 "SPOOL_DIR to a directory that {user} may write to")
    return text.format(directory=directory, user=access.user_name(), uid=os.geteuid())


def segment_error(path, error):
    """Return the ``SpoolError`` for a segment file that the process may not read.

    Its ``errno`` is EACCES. A segment that a root shell created is root's: the user
    that owns the spool directory gets it back with chown.
    """
    directory = os.path.dirname(path)
    if access.is_service_user(directory):
        try:
            owner = access.owner_name(os.stat(directory).st_uid)
        except OSError:
            owner = access.SERVICE_USER
        text = _("cannot read spool segment {path}: {error}: give the spool's files to the "
                 "user that owns the spool directory: chown -R {owner}: {directory}").format(
                     path=path, error=os_error_text(error), owner=owner, directory=directory)
    else:
        text = _("cannot read spool segment {path}: {error}: run the command as the bessai "
                 "user (sudo -u bessai bessai ...), or add {user} to group bessai for read "
                 "access (sudo adduser {user} bessai, then log in again)").format(
                     path=path, error=os_error_text(error), user=access.user_name())
    spool_error = SpoolError(text)
    spool_error.errno = error.errno
    return spool_error


def json_object(line):
    """Return a line parsed as a JSON object, or None for any other line."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def record_seq(line):
    """Return the ``seq`` of one record line (without its newline), or None if invalid.

    A valid line is a JSON object with an integer ``seq`` of at least 1 and no NUL byte.
    NUL bytes are what a power cut leaves where data blocks were never written.
    """
    if b"\0" in line:
        return None
    record = json_object(line)
    if record is None:
        return None
    seq = record.get("seq")
    if type(seq) is not int or seq < 1:
        return None
    return seq


def describe_damage(line, complete=True):
    """Return what is wrong with one line (without its newline), or None for a valid record.

    ``complete`` is False for bytes after the last newline of a file.
    """
    if not complete:
        return ngettext("{count} byte without a newline at the end",
                        "{count} bytes without a newline at the end", len(line)).format(
                            count=len(line))
    if b"\0" in line:
        return _("{nul} in a line of {count} (power-cut damage)").format(
            nul=ngettext("{count} NUL byte", "{count} NUL bytes", line.count(0)).format(
                count=line.count(0)),
            count=ngettext("{count} byte", "{count} bytes", len(line)).format(count=len(line)))
    if not line:
        return _("empty line")
    if record_seq(line) is None:
        # The start as quoted text ('junk'), not as Python bytes (b'junk').
        return _("not a JSON object with an integer seq: {start}").format(
            start=repr(line[:60].decode("utf-8", "replace")))
    return None


def iter_lines(stream, start=0, chunk_size=1 << 20):
    """Yield ``(offset, line, complete)`` for each line of a binary file from ``start``.

    ``line`` has no newline, and ``offset`` is where the line starts. Only the last
    item can have ``complete`` False: bytes after the last newline, still being
    written or torn.
    """
    stream.seek(start)
    offset = start
    pending = b""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        pending += chunk
        begin = 0
        while True:
            end = pending.find(b"\n", begin)
            if end < 0:
                break
            yield offset, pending[begin:end], True
            offset += end + 1 - begin
            begin = end + 1
        pending = pending[begin:]
    if pending:
        yield offset, pending, False
