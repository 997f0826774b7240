"""The forwarder's checkpoint: how far into the spool the broker has acknowledged.

The checkpoint is the spool position just after the last record of an unbroken run
of acknowledged records, plus that record's sequence number, so that after a restart
the forwarder resumes there and can tell a sequence gap from a normal step. It lives
in its own small JSON file in the state directory, never in the spool, and is
replaced atomically: a temporary file is written and fsynced, renamed over the old
one, and the directory is fsynced, so a crash or power cut leaves either the old or
the new checkpoint, never a torn one.
"""

import dataclasses
import errno
import logging
import os

import orjson

from bessai_edge.access import user_name
from bessai_edge.errors import ConfigError
from bessai_edge.i18n import _, os_error_text

logger = logging.getLogger(__name__)

FILE_NAME = "forward-checkpoint.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A spool position and the sequence number of the record that ends just before it."""

    segment: int      # first sequence number of the segment, which names it
    offset: int       # byte offset in that segment just after the last delivered line
    seq: int | None   # sequence number of the last delivered record, None if unknown
    spool_id: str | None = None   # the spool's id from its state file; None if unknown

    @property
    def position(self):
        """The ``(segment, offset)`` pair that ``SpoolReader.read`` takes."""
        return (self.segment, self.offset)


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
        """Replace the checkpoint file atomically; OSError (a full disk) leaves the old one."""
        data = orjson.dumps({
            "version": FORMAT_VERSION,
            "segment": checkpoint.segment,
            "offset": checkpoint.offset,
            "seq": checkpoint.seq,
            "spool_id": checkpoint.spool_id,
        }) + b"\n"
        fd = os.open(self._temporary_path,
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            _write_all(fd, data, self._temporary_path)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._temporary_path, self.path)
        os.fsync(self._directory_fd)
        self.saves += 1

    def close(self):
        if self._directory_fd >= 0:
            os.close(self._directory_fd)
            self._directory_fd = -1


def _write_all(fd, data, path):
    """Write ``data`` whole, continuing a short write, or raise OSError with its errno.

    Only the write after a short one returns the cause (ENOSPC, EDQUOT, EFBIG).
    """
    written = 0
    while written < len(data):
        try:
            count = os.write(fd, data[written:])
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
    return Checkpoint(segment, offset, seq, spool_id or None)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
