"""Read the spool in order from a checkpoint while the writer appends (the forwarder's side).

The reader takes no lock and never writes a segment. It only deletes sealed segments
when asked. A writer in another process cannot make it yield a partial record:

- the writer appends whole lines with one ``os.write`` each, and a line becomes a
  record only once its newline is in the file;
- it creates a newer segment only after the older one is complete and fsynced;
- it cuts a file back only at start-up. A torn tail it cuts is bytes after the last
  newline, which a reader never yields. Damaged lines that it sets aside, and the
  valid lines after them that move to a new segment, can have been read already. A
  checkpoint beyond the new end then goes on with the next segment.
"""

import collections
import logging
import os

from bessai_edge.errors import SpoolError
from bessai_edge.i18n import _
from bessai_edge.spool.segments import (
    BadLine, describe_damage, directory_error, iter_lines, list_segments, segment_error)

log = logging.getLogger(__name__)


class SpoolReader:
    """Reader of spool records in sequence order (``read`` explains positions)."""

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self.skipped_lines = 0  # lines read() skipped: cut ends of sealed segments, NUL bytes
        # (segment name, offset) of the line with NUL bytes in the open segment where the
        # last read() stopped, or None. Delivery waits there for the start-up repair.
        self.waiting_for_repair = None
        self._reported_damage = None   # the last such line logged, so it is logged once

    def segments(self):
        """Return the current ``Segment`` list in sequence order (the last one is open).

        Raises ``SpoolError`` when the directory is missing or cannot be listed.
        """
        try:
            return list_segments(self.directory)
        except OSError as error:
            raise directory_error(self.directory, error) from None

    def read(self, checkpoint=None):
        """Yield ``(position, line_bytes)`` for every complete record after ``checkpoint``.

        ``position`` is ``(segment first seq, offset just after the line)`` and can be
        passed back as the next checkpoint. Reading stops at the end of the data in the
        files when the call gets there, so call again later for more.
        """
        checkpoint_seq, checkpoint_offset = checkpoint or (0, 0)
        self.waiting_for_repair = None
        for segment in self.segments():
            if segment.first_seq < checkpoint_seq:
                continue
            start = checkpoint_offset if segment.first_seq == checkpoint_seq else 0
            yield from self._read_segment(segment, start)

    def scan(self, checkpoint=None):
        """Yield ``(position, line_bytes, damage)`` for every line after ``checkpoint``.

        ``damage`` is None for a valid record, else a ``BadLine`` that describes the
        damage. Unlike ``read``, every line is checked as ``bessai spool check`` does
        (sequence order aside), and scanning goes on after a damaged line, also in the
        open segment. Only the open segment's last line without a newline, which the
        writer may still be writing, is left out. For tools that show the spool to a
        person, such as ``bessai spool tail``.
        """
        checkpoint_seq, checkpoint_offset = checkpoint or (0, 0)
        for segment in self.segments():
            if segment.first_seq < checkpoint_seq:
                continue
            start = checkpoint_offset if segment.first_seq == checkpoint_seq else 0
            yield from self._scan_segment(segment, start)

    def last_scanned(self, count):
        """Return the last ``count`` valid records as ``scan`` items, oldest first.

        The damaged lines after the first of those records come with them, in file
        order. When the spool contains fewer records, every damaged line comes with them.
        """
        found = []
        records = 0
        for segment in reversed(self.segments()):
            needed = count - records
            if needed <= 0:
                break
            items = list(self._scan_segment(segment, 0))
            starts = [index for index, item in enumerate(items) if item[2] is None]
            if len(starts) >= needed:
                items = items[starts[-needed]:]
            found[:0] = items
            records += min(len(starts), needed)
        return found

    def delete_segment(self, first_seq):
        """Delete a sealed segment and return True, or False when it is already gone.

        Raises ``SpoolError`` for the open segment, which the writer still appends to.
        """
        for segment in self.segments():
            if segment.first_seq == first_seq:
                return self.delete_sealed(segment)
        return False

    def delete_sealed(self, segment):
        """Delete ``segment`` of a listing just made, and return True, or False when gone.

        A segment sealed in a listing stays sealed, so deleting the sealed segments of
        one listing needs no listing per segment. Raises ``SpoolError`` for the open one.
        """
        if not segment.sealed:
            raise SpoolError(
                _("segment {name} is the open segment: only sealed segments can be "
                  "deleted").format(name=segment.path.name))
        try:
            os.unlink(segment.path)
        except FileNotFoundError:
            return False
        log.debug("deleted delivered segment %s", segment.path.name)
        return True

    def last_lines(self, count):
        """Return the last ``count`` record lines as ``(position, line_bytes)``, oldest first."""
        found = []
        for segment in reversed(self.segments()):
            needed = count - len(found)
            if needed <= 0:
                break
            found[:0] = collections.deque(self._read_segment(segment, 0), maxlen=needed)
        return found

    def newest_lines(self, max_bytes):
        """Return the complete lines in the last ``max_bytes`` of the spool, newest first.

        Reads back across segments until ``max_bytes`` are read, so the cost does not
        grow with the spool. A line cut by that limit, an incomplete last line and lines
        with NUL bytes are left out. The lines are not parsed or checked further.
        """
        found = []
        remaining = max_bytes
        for segment in reversed(self.segments()):
            if remaining <= 0:
                break
            stream = _open_segment(segment)
            if stream is None:
                continue
            with stream:
                size = os.fstat(stream.fileno()).st_size
                start = max(0, size - remaining)
                remaining -= size - start
                if start > 0:
                    stream.seek(start - 1)
                    # Unless a line starts at ``start``, the first line read is a part.
                    whole_first = stream.read(1) == b"\n"
                lines = list(iter_lines(stream, start))
            if start > 0 and not whole_first:
                lines = lines[1:]
            found.extend(line for _offset, line, complete in reversed(lines)
                         if complete and b"\0" not in line)
        return found

    def _read_segment(self, segment, start):
        for offset, line, complete in _segment_lines(segment, start):
            position = (segment.first_seq, offset + len(line) + 1)
            if not complete:
                if segment.sealed:
                    self.skipped_lines += 1
                    log.warning("segment %s ends with %d bytes without a newline at "
                                "offset %d, which are skipped",
                                segment.path.name, len(line), offset)
                return
            if b"\0" in line:
                if not segment.sealed:
                    # A power cut left zeroed blocks: the writer cuts them at start-up.
                    self._wait_for_repair(segment, offset)
                    return
                self.skipped_lines += 1
                log.warning("segment %s has a line with NUL bytes at offset %d, which "
                            "is skipped", segment.path.name, offset)
                continue
            yield position, line

    def _wait_for_repair(self, segment, offset):
        """Note the damaged line of the open segment where reading stops; log it once."""
        self.waiting_for_repair = (segment.path.name, offset)
        if self._reported_damage == self.waiting_for_repair:
            return
        self._reported_damage = self.waiting_for_repair
        log.warning("the open spool segment %s has a line with NUL bytes at offset %d: "
                    "delivery waits there until bessai run repairs the segment when it "
                    "next starts; if it is stopped or keeps failing, check systemctl status "
                    "bessai", segment.path.name, offset)

    def _scan_segment(self, segment, start):
        for offset, line, complete in _segment_lines(segment, start):
            if not complete and not segment.sealed and b"\0" not in line:
                return      # the writer may still be writing this line
            position = (segment.first_seq, offset + len(line) + 1)
            reason = describe_damage(line, complete)
            damage = BadLine(segment.path.name, offset, reason) if reason else None
            yield position, line, damage


def _segment_lines(segment, start):
    """Yield ``iter_lines`` items of a segment from the first line at or after ``start``.

    Yields nothing when the segment was deleted or ``start`` lies past its end.
    """
    stream = _open_segment(segment)
    if stream is None:
        return
    with stream:
        start = _align_to_line(stream, segment, start)
        if start is None:
            return
        yield from iter_lines(stream, start)


def _open_segment(segment):
    """Open a segment for reading, or return None when it was deleted since the listing."""
    try:
        return open(segment.path, "rb")
    except FileNotFoundError:
        log.info("segment %s was deleted before it could be read, so reading goes on "
                 "with the next one", segment.path.name)
        return None
    except PermissionError as error:
        raise segment_error(str(segment.path), error) from error


def _align_to_line(stream, segment, start):
    """Return ``start`` if a line begins there, else the start of the next line or None.

    A checkpoint past the end of the file (cut back at recovery) gives None.
    """
    if start == 0:
        return 0
    stream.seek(start - 1)
    before = stream.read(1)
    if before == b"\n":
        return start
    if before == b"":
        return None
    rest = stream.readline()
    if not rest.endswith(b"\n"):
        return None
    log.warning("checkpoint offset %d of segment %s is not at a line start, so reading "
                "resumes at the next line, offset %d", start, segment.path.name,
                start + len(rest))
    return start + len(rest)
