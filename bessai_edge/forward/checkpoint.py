"""The forwarder's checkpoint: how far into the spool the broker has acknowledged.

The checkpoint is the spool position just after the last record of an unbroken run
of acknowledged records, plus that record's sequence number, so that after a restart
the forwarder resumes there and can tell a sequence gap from a normal step. It lives
in its own small JSON file in the state directory, never in the spool, and is
replaced atomically: a temporary file is written and fsynced, renamed over the old
one, and the directory is fsynced, so a crash or power cut leaves either the old or
the new checkpoint, never a torn one.

A full disk must not stop the saves, because only a saved checkpoint lets the
forwarder delete delivered segments, which frees the disk. Every checkpoint is padded
to CHECKPOINT_SIZE bytes, and after each save the temporary file for the next one is
created at that size, so that space is taken while the disk has it. When the disk is
full all the same (no temporary file could be reserved), the save overwrites the
checkpoint file in place, which needs no new block. A power cut during that one write
may tear the checkpoint. The forwarder then sets it aside and sends the spool again
from its oldest record, which duplicates records but loses none.
"""

import dataclasses
import errno
import logging
import os

import orjson

from bessai_edge.access import user_name
from bessai_edge.errors import ConfigError
from bessai_edge.forward.stamp import MAX_BOOT_ID_CHARS, RecordStamp
from bessai_edge.i18n import _, os_error_text

logger = logging.getLogger(__name__)

FILE_NAME = "forward-checkpoint.json"
FORMAT_VERSION = 1
# Every checkpoint file has this size: the JSON (at most about 230 bytes) padded with spaces.
CHECKPOINT_SIZE = 256
# Errors of a file system without free space, on which a save overwrites in place.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A spool position and the sequence number of the record that ends just before it."""

    segment: int      # first sequence number of the segment, which names it
    offset: int       # byte offset in that segment just after the last delivered line
    seq: int | None   # sequence number of the last delivered record, None if unknown
    spool_id: str | None = None   # the spool's id from its state file; None if unknown
    # boot_id and mono_s of record ``seq``, None when unknown (see forward.stamp).
    boot_id: str | None = None
    mono_s: float | None = None

    @property
    def position(self):
        """The ``(segment, offset)`` pair that ``SpoolReader.read`` takes."""
        return (self.segment, self.offset)

    @property
    def stamp(self):
        """The RecordStamp of record ``seq``, or None when ``seq`` is unknown."""
        if self.seq is None:
            return None
        return RecordStamp(self.seq, self.boot_id, self.mono_s)


class CheckpointFile:
    """Loads and atomically replaces the checkpoint file in ``directory``."""

    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME)
        self._temporary_path = self.path + ".tmp"
        self._directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.saves = 0

    def load(self):
        """Return the saved Checkpoint, or None when there is none or it is unreadable.

        An unreadable checkpoint is renamed to ``*.bad`` and reported: the forwarder
        then starts from the oldest record in the spool, which resends but loses nothing.
        """
        try:
            with open(self.path, "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            return None
        except PermissionError as error:
            # Left by a forwarder run as root before it switched user: restarting cannot
            # fix it, and starting from the oldest record would resend the whole spool.
            raise ConfigError([_(
                "cannot read the checkpoint {path}: {error}: give it to the user that runs "
                "the forwarder ({user}): chown {user}: {path}").format(
                    path=self.path, error=os_error_text(error), user=user_name())]) from error
        try:
            return _parse(data)
        except ValueError as error:
            bad_path = self.path + ".bad"
            os.replace(self.path, bad_path)
            logger.error("checkpoint %s is unreadable (%s): moved it to %s and starting from "
                         "the oldest record in the spool", self.path, error, bad_path)
            return None

    def save(self, checkpoint):
        """Replace the checkpoint file and return True when a full disk made it save in place.

        Any other OSError leaves the old checkpoint as it was.
        """
        data = _encode(checkpoint)
        try:
            self._replace(data)
        except OSError as error:
            if error.errno not in _NO_SPACE:
                raise
            self._overwrite(data, error)
            self.saves += 1
            return True
        self.saves += 1
        self.reserve()
        return False

    def reserve(self):
        """Give the temporary file of the next save its full size, if there is space.

        A save that failed on a full disk may have left the file shorter, even empty.
        """
        try:
            fd = os.open(self._temporary_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError:
            return  # not a file, or the directory is full: the save reports the problem
        try:
            if os.fstat(fd).st_size < CHECKPOINT_SIZE:
                os.pwrite(fd, b" " * CHECKPOINT_SIZE, 0)
        except OSError:
            pass  # the disk is full, so the next save overwrites the checkpoint in place
        finally:
            os.close(fd)

    def _replace(self, data):
        # Written over the reserved bytes without truncating first, so that a save on a
        # full disk finds its space taken already.
        fd = os.open(self._temporary_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            _write_all(fd, data, self._temporary_path)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._temporary_path, self.path)
        os.fsync(self._directory_fd)

    def _overwrite(self, data, no_space):
        """Write ``data`` over the checkpoint file in place, or raise ``no_space`` without it."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise no_space from None
        try:
            _write_all(fd, data, self.path)
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self):
        if self._directory_fd >= 0:
            os.close(self._directory_fd)
            self._directory_fd = -1


def _encode(checkpoint):
    """Return the checkpoint's JSON padded with spaces to CHECKPOINT_SIZE bytes."""
    data = orjson.dumps({
        "version": FORMAT_VERSION,
        "segment": checkpoint.segment,
        "offset": checkpoint.offset,
        "seq": checkpoint.seq,
        "spool_id": checkpoint.spool_id,
        "boot_id": checkpoint.boot_id,
        "mono_s": checkpoint.mono_s,
    })
    return data.ljust(CHECKPOINT_SIZE - 1) + b"\n"


def _write_all(fd, data, path):
    """Write ``data`` whole from the file's start, or raise OSError with its errno.

    A short write is continued; only the write after it returns the cause (ENOSPC,
    EDQUOT, EFBIG).
    """
    written = 0
    while written < len(data):
        try:
            count = os.pwrite(fd, data[written:], written)
        except OSError as error:
            raise OSError(error.errno, f"{error.strerror} (short write to {path}: {written} "
                                       f"of {len(data)} bytes)") from error
        if count == 0:
            raise OSError(errno.EIO, f"write to {path} made no progress after {written} of "
                                     f"{len(data)} bytes")
        written += count


def _parse(data):
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise ValueError(f"expected an object with version {FORMAT_VERSION}")
    segment, offset, seq = document.get("segment"), document.get("offset"), document.get("seq")
    if not _is_count(segment) or not _is_count(offset) or not (seq is None or _is_count(seq)):
        raise ValueError("segment and offset must be integers >= 0, seq an integer >= 0 or null")
    # Checkpoints written before the spool had an id have no spool_id key.
    spool_id = document.get("spool_id")
    if not (spool_id is None or isinstance(spool_id, str)):
        raise ValueError("spool_id must be a string or null")
    # Checkpoints saved before the record stamp have neither boot_id nor mono_s.
    boot_id, mono_s = document.get("boot_id"), document.get("mono_s")
    if not (boot_id is None or isinstance(boot_id, str) and len(boot_id) <= MAX_BOOT_ID_CHARS):
        raise ValueError(f"boot_id must be a string of at most {MAX_BOOT_ID_CHARS} "
                         "characters or null")
    if not (mono_s is None or isinstance(mono_s, (int, float)) and not isinstance(mono_s, bool)):
        raise ValueError("mono_s must be a number or null")
    return Checkpoint(segment, offset, seq, spool_id or None, boot_id or None, mono_s)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
