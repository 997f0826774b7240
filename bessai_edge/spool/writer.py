"""The scan loop's side of the spool: append records as orjson lines to segment files.

Policies, all on the monotonic clock:

- rotation: a new segment starts when the next line would take the open one past
  ``segment_max_bytes``, or when it is ``segment_max_age_s`` old. Sealing fsyncs the
  segment, and creating the next one fsyncs the directory;
- durability: fdatasync once the oldest unsynced line is ``fsync_interval_s`` old,
  checked at each append, so a power cut loses at most that window plus one append
  period; 0 syncs after every line;
- retention: when all segments together exceed ``max_total_bytes``, the oldest sealed
  segments are deleted, logged and counted, so the total never exceeds the cap by more
  than the open segment alone can;
- full disk: the ``OSError`` of a failed write is not raised, and the record is counted
  as dropped. Any partial line is cut off before the next write, and writing resumes
  by itself.

Every ``open()`` recovers the directory and starts a new segment at the first append,
so a segment is never appended to by two processes.
"""

import errno
import fcntl
import logging
import os
import time
import uuid

import orjson

from bessai_edge.errors import SpoolError
from bessai_edge.i18n import _
from bessai_edge.spool import recovery, stats
from bessai_edge.spool.segments import (RECORD_FILE_MODE, directory_error, list_segments,
                                        not_writable_text, segment_name)

log = logging.getLogger(__name__)

MIB = 1024 * 1024
SIZE_REFRESH_INTERVAL_S = 30.0
DROP_STATE_INTERVAL_S = 5.0  # how often the state file is saved while records are dropped


class _OpenSegment:
    """State of the segment that appends go to."""

    def __init__(self, first_seq, fd, size, opened_at):
        self.first_seq = first_seq
        self.fd = fd
        self.size = size
        self.records = 0
        self.last_seq = 0
        self.opened_at = opened_at


class Spool:
    """Append-only segment store in one directory, written by one process at a time.

    ``append`` never raises ``OSError``. A record that cannot be written is dropped and
    counted, and its sequence number stays unused, so the loss shows downstream as a
    gap. After kill -9, the numbers of records dropped since the state file was last
    written can be handed out again. After a power cut, so can the numbers of records
    lost with the page cache. A reader may have taken those records before the cut, so
    it sees the same numbers twice, and the records' boot id tells them apart.
    """

    def __init__(self, directory, segment_max_bytes=16 * MIB, segment_max_age_s=3600,
                 fsync_interval_s=5, max_total_bytes=512 * MIB, *, clock=time.monotonic):
        _check_positive("segment_max_bytes", segment_max_bytes)
        _check_positive("segment_max_age_s", segment_max_age_s)
        _check_positive("max_total_bytes", max_total_bytes)
        if fsync_interval_s < 0:
            raise ValueError(f"fsync_interval_s is {fsync_interval_s!r}: use 0 (after every "
                             "record) or a positive number of seconds")
        if max_total_bytes < segment_max_bytes:
            raise ValueError(f"max_total_bytes ({max_total_bytes}) is below segment_max_bytes "
                             f"({segment_max_bytes}): the cap must hold at least one segment")
        self.directory = os.fspath(directory)
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_s = segment_max_age_s
        self.fsync_interval_s = fsync_interval_s
        self.max_total_bytes = max_total_bytes
        self._clock = clock
        self._dir_fd = None
        self._open = None
        self._sealed = []               # [first_seq, size, records or None], oldest first
        self._total_bytes = 0
        self._next_seq = 1
        self._synced_seq = 0
        self._dirty_since = None        # clock time of the oldest unsynced line
        self._truncate_pending = False  # a failed write left bytes that must be cut
        self._foreign_lock = False      # the replaced directory is locked by another process
        self._next_refresh = 0.0
        self._drop_first_seq = None     # first dropped sequence number of the current episode
        self._drop_started = 0.0
        self._next_drop_save = 0.0
        self._fsync_failing = False
        self._lifetime = {}
        self._counters = dict.fromkeys((
            "records_appended", "records_dropped", "drop_episodes", "records_evicted",
            "segments_evicted", "fsyncs", "fsync_errors", "bytes_cut",
            "segments_set_aside"), 0)

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc_info):
        self.close()

    def open(self, check_all=False):
        """Lock and recover the directory, or raise ``SpoolError`` when it cannot be used.

        Recovery reads the newest segment line by line and only the tail of older ones,
        unless ``check_all`` is true.
        """
        if self._dir_fd is not None:
            raise SpoolError(f"spool {self.directory} is already open")
        self._dir_fd = _lock_directory(self.directory)
        try:
            report = recovery.recover(self.directory, self._dir_fd, check_all)
        except OSError as error:
            self._release()
            raise SpoolError(_("cannot recover spool directory {directory} ({error}): check "
                               "the disk and the directory's permissions").format(
                                   directory=self.directory, error=error)) from error
        self._lifetime = stats.load_state(self.directory)
        self._next_seq = max(report.last_seq, self._lifetime["last_seq"]) + 1
        if self._lifetime["spool_id"] is None:
            # A new or emptied spool, or one that lost its state file, gets a new id with
            # the number it starts from, so the forwarder can tell whether its
            # checkpoint belongs to this spool.
            self._lifetime["spool_id"] = uuid.uuid4().hex
            self._lifetime["spool_id_first_seq"] = self._next_seq
        self._synced_seq = self._next_seq - 1
        self._counters["bytes_cut"] = report.bytes_cut
        self._counters["segments_set_aside"] = len(report.set_aside)
        self._refresh_sizes(self._clock())
        self._save_state()
        log.info("spool %s opened: %d segments, %d bytes, next sequence number %d",
                 self.directory, len(self._sealed), self._total_bytes, self._next_seq)
        return self

    def append(self, record):
        """Set ``record["seq"]``, append it as one line and return the seq, or None if dropped.

        A record that orjson cannot serialize raises ``orjson.JSONEncodeError`` (a
        ``TypeError``) and does not use up its sequence number.
        """
        if self._dir_fd is None:
            raise SpoolError(f"spool {self.directory} is not open: call open() first")
        seq = self._next_seq
        record["seq"] = seq
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        self._next_seq = seq + 1
        now = self._clock()
        try:
            self._prepare_segment(seq, len(line), now)
            self._write(line)
        except OSError as error:
            self._count_drop(seq, error, now)
            return None
        self._after_write(seq, len(line), now)
        return seq

    def flush(self):
        """Fdatasync the open segment now if it has unsynced lines."""
        if self._open is not None and self._dirty_since is not None:
            self._sync(self._clock())

    def close(self):
        """Flush and close the open segment, store the lifetime counters, release the lock."""
        if self._dir_fd is None:
            return
        if self._open is not None:
            self._seal_open_segment()
        self._save_state()
        self._release()
        log.info("spool %s closed at sequence number %d", self.directory, self._next_seq - 1)

    def stats(self):
        """Return the counters since ``open()`` and the current size of the spool."""
        figures = dict(self._counters)
        figures.update(
            directory=self.directory,
            segments=len(self._sealed) + (self._open is not None),
            bytes=self._total_bytes,
            open_segment=self._open.first_seq if self._open else None,
            next_seq=self._next_seq,
            synced_seq=self._synced_seq,
            dropping=self._drop_first_seq is not None,
        )
        return figures

    @property
    def dropping(self):
        """True while appends are dropped because writing fails (a full disk)."""
        return self._drop_first_seq is not None

    @property
    def synced_seq(self):
        """Highest sequence number known to be on disk (fdatasync returned success)."""
        return self._synced_seq

    # Writing

    def _prepare_segment(self, seq, line_size, now):
        if now >= self._next_refresh:
            self._refresh_sizes(now)  # before the write: it notices a changed open segment
        if self._foreign_lock:
            raise OSError(errno.EBUSY,
                          f"spool directory {self.directory} is locked by another process")
        if self._truncate_pending and self._open is not None:
            self._cut_to(self._open.size)
            self._truncate_pending = False
        segment = self._open
        if segment is not None and segment.size > 0 and (
                segment.size + line_size > self.segment_max_bytes
                or now - segment.opened_at >= self.segment_max_age_s):
            self._seal_open_segment()
        if self._open is None:
            self._create_segment(seq, now)

    def _write(self, line):
        """Write one line, or cut back the part of it that was written and raise.

        A short write is continued, because only the next ``os.write`` returns the cause
        (ENOSPC when the disk is full, EDQUOT, or EFBIG at RLIMIT_FSIZE). The raised
        error carries that cause and how many bytes of the line were written.
        """
        written = 0
        while written < len(line):
            try:
                count = os.write(self._open.fd, line[written:])
            except OSError as error:
                self._cut_partial_write(written)
                if not written:
                    raise
                raise OSError(error.errno, f"{error.strerror} (short write: {written} of "
                                           f"{len(line)} bytes)") from error
            if count == 0:
                # A write that makes no progress would repeat forever, so it fails the line.
                self._cut_partial_write(written)
                raise OSError(errno.EIO, f"write made no progress after {written} of "
                                         f"{len(line)} bytes")
            written += count

    def _cut_partial_write(self, written):
        """Cut the ``written`` bytes of a failed write, which O_APPEND put at the file's end.

        The size comes from the file rather than from the book-keeping, because another
        process may have truncated the segment, and cutting to a larger size would
        pad the file with NUL bytes.
        """
        segment = self._open
        try:
            end = os.fstat(segment.fd).st_size - written
            self._total_bytes += end - segment.size
            segment.size = end
            if written:
                os.ftruncate(segment.fd, end)
        except OSError:
            self._truncate_pending = True

    def _cut_to(self, size):
        """Truncate the open segment to ``size`` bytes; never make it longer."""
        if os.fstat(self._open.fd).st_size > size:
            os.ftruncate(self._open.fd, size)

    def _after_write(self, seq, line_size, now):
        segment = self._open
        segment.size += line_size
        segment.records += 1
        segment.last_seq = seq
        self._total_bytes += line_size
        self._counters["records_appended"] += 1
        if self._drop_first_seq is not None:
            self._end_drop_episode(seq, now)
        if self._dirty_since is None:
            self._dirty_since = now
        if now - self._dirty_since >= self.fsync_interval_s:
            self._sync(now)
        if self._total_bytes > self.max_total_bytes:
            self._enforce_cap(now)

    def _sync(self, now):
        try:
            os.fdatasync(self._open.fd)
        except OSError as error:
            # NOTE: after a failed fdatasync Linux may drop the dirty pages, and a later
            # call can succeed without them, so synced_seq can overstate after an error.
            self._count_fsync_error(error, segment_name(self._open.first_seq))
            self._dirty_since = now
            return
        self._counters["fsyncs"] += 1
        self._synced_seq = self._open.last_seq
        self._dirty_since = None
        if self._fsync_failing:
            self._fsync_failing = False
            log.info("fsync in spool %s works again", self.directory)

    def _count_fsync_error(self, error, name):
        self._counters["fsync_errors"] += 1
        if not self._fsync_failing:
            self._fsync_failing = True
            log.warning("fsync of %s in spool %s failed (%s), so records since the last "
                        "successful sync may be lost in a power cut", name, self.directory,
                        error)

    # Segments

    def _create_segment(self, seq, now):
        path = os.path.join(self.directory, segment_name(seq))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                     RECORD_FILE_MODE)
        try:
            size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        self._open = _OpenSegment(seq, fd, size, now)
        self._total_bytes += size
        try:
            os.fsync(self._dir_fd)
        except OSError as error:
            self._count_fsync_error(error, "the directory")
        log.debug("started segment %s", segment_name(seq))

    def _seal_open_segment(self):
        """Fsync and close the open segment, which stays on disk as the newest sealed one."""
        segment = self._open
        try:
            os.fsync(segment.fd)
            self._counters["fsyncs"] += 1
            if segment.last_seq:
                self._synced_seq = segment.last_seq
        except OSError as error:
            self._count_fsync_error(error, segment_name(segment.first_seq))
        try:
            os.close(segment.fd)    # releases the descriptor even when it fails
        except OSError as error:
            log.warning("closing spool segment %s failed: %s",
                        segment_name(segment.first_seq), error)
        self._open = None
        self._dirty_since = None
        self._truncate_pending = False
        self._sealed.append([segment.first_seq, segment.size, segment.records])
        log.debug("sealed segment %s: %d records, %d bytes",
                  segment_name(segment.first_seq), segment.records, segment.size)

    def _refresh_sizes(self, now):
        """Re-read the sealed segments from disk, because the forwarder deletes delivered ones."""
        self._next_refresh = now + SIZE_REFRESH_INTERVAL_S
        self._relock_replaced_directory()
        try:
            listed = list_segments(self.directory)
        except OSError as error:
            log.debug("cannot list spool directory %s: %s", self.directory, error)
            return
        known = {first_seq: records for first_seq, _size, records in self._sealed}
        open_seq = self._open.first_seq if self._open else None
        if open_seq is not None:
            change = self._open_segment_change()
            if change:
                self._leave_changed_segment(change)
                open_seq = None
        self._sealed = [[segment.first_seq, segment.size, known.get(segment.first_seq)]
                        for segment in listed if segment.first_seq != open_seq]
        self._total_bytes = sum(size for _seq, size, _records in self._sealed)
        if self._open is not None:
            self._total_bytes += self._open.size

    def _relock_replaced_directory(self):
        """Move the lock to the spool directory when another process replaced it.

        After ``rm -rf`` and ``mkdir`` the lock would stay on the deleted directory, and
        a second writer could start on the new one. While another process holds the
        new directory's lock, appends fail and the records are counted as dropped.
        """
        try:
            current = os.stat(self.directory)
            locked = os.fstat(self._dir_fd)
        except OSError:
            return  # a missing directory shows as failing writes
        if (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino):
            self._foreign_lock = False
            return
        try:
            dir_fd = _lock_directory(self.directory)
        except SpoolError as error:
            if not self._foreign_lock:
                log.error("spool directory %s was replaced while open, and its new lock "
                          "cannot be taken: %s", self.directory, error)
            self._foreign_lock = True
            return
        os.close(self._dir_fd)
        self._dir_fd = dir_fd
        self._foreign_lock = False
        log.error("spool directory %s was replaced by another process while open: the "
                  "lock moved to the new directory", self.directory)

    def _open_segment_change(self):
        """Return how another process changed the open segment, or None when it did not."""
        segment = self._open
        try:
            on_disk = os.stat(os.path.join(self.directory, segment_name(segment.first_seq)))
            opened = os.fstat(segment.fd)
        except FileNotFoundError:
            return "deleted"
        except OSError:
            return None  # the write that follows reports a failing disk
        if (on_disk.st_dev, on_disk.st_ino) != (opened.st_dev, opened.st_ino):
            return "replaced"
        if opened.st_size != segment.size and not self._truncate_pending:
            return "truncated" if opened.st_size < segment.size else "extended"
        return None

    def _leave_changed_segment(self, change):
        """Stop writing to an open segment that another process changed; start a new one.

        The next append creates the new segment, so no record joins a line cut short.
        """
        segment = self._open
        log.error("spool segment %s was %s by another process while open: the spool may "
                  "have lost records %d-%d; the next record starts a new segment",
                  segment_name(segment.first_seq), change, segment.first_seq,
                  segment.last_seq or segment.first_seq)
        try:
            os.close(segment.fd)
        except OSError:
            pass  # the descriptor is released anyway
        self._open = None
        self._dirty_since = None
        self._truncate_pending = False

    def _enforce_cap(self, now):
        self._refresh_sizes(now)
        evicted = False
        while self._total_bytes > self.max_total_bytes and self._sealed:
            self._evict_oldest()
            evicted = True
        if evicted:
            self._save_state()

    def _evict_oldest(self):
        first_seq, size, records = self._sealed.pop(0)
        self._total_bytes -= size
        path = os.path.join(self.directory, segment_name(first_seq))
        if self._sealed:
            last_seq = self._sealed[0][0] - 1
        else:
            last_seq = (self._open.first_seq if self._open else self._next_seq) - 1
        try:
            if records is None:
                records = stats.count_lines(path)
            os.unlink(path)
        except FileNotFoundError:
            return          # the forwarder delivered and deleted it meanwhile
        except OSError as error:
            log.warning("cannot evict spool segment %s: %s", path, error)
            return
        self._counters["records_evicted"] += records
        self._counters["segments_evicted"] += 1
        log.warning("spool is over its cap of %d bytes: evicted segment %s with sequence "
                    "numbers %d-%d (%d records, %d bytes lost)", self.max_total_bytes,
                    segment_name(first_seq), first_seq, last_seq, records, size)

    # Drops and state

    def _count_drop(self, seq, error, now):
        self._counters["records_dropped"] += 1
        if (error.errno in (errno.ENOSPC, errno.EDQUOT) and self._open is not None
                and self._open.size > 0):
            # The forwarder deletes only sealed segments, those with a newer one beside
            # them. Sealed now, this one frees the disk once delivered; open, it would
            # hold the disk until it ages. An empty file needs no data block.
            self._seal_open_segment()
            try:
                self._create_segment(self._next_seq, now)
            except OSError:
                pass  # the next append tries again
        if self._drop_first_seq is None:
            self._drop_first_seq = seq
            self._drop_started = now
            self._next_drop_save = now
            self._counters["drop_episodes"] += 1
            log.warning("cannot write to spool %s (%s): dropping records, starting with "
                        "sequence number %d, until writing works again%s",
                        self.directory, error, seq, _drop_hint(error, self.directory))
        if now >= self._next_drop_save:
            # The dropped numbers are used up: after a restart, the next record must
            # not take them again, or the gap would vanish downstream.
            self._next_drop_save = now + DROP_STATE_INTERVAL_S
            self._save_state()

    def _end_drop_episode(self, seq, now):
        first, count = self._drop_first_seq, seq - self._drop_first_seq
        dropped = (f"1 record (sequence number {first})" if count == 1 else
                   f"{count} records (sequence numbers {first}-{seq - 1})")
        log.warning("spool %s accepts writes again after %.1f s: dropped %s", self.directory,
                    now - self._drop_started, dropped)
        self._drop_first_seq = None
        self._save_state()

    def _save_state(self):
        state = {key: self._lifetime.get(key, 0) + self._counters[key]
                 for key in stats.LIFETIME_COUNTERS}
        state["last_seq"] = self._next_seq - 1
        state["spool_id"] = self._lifetime["spool_id"]
        state["spool_id_first_seq"] = self._lifetime["spool_id_first_seq"]
        try:
            stats.save_state(self.directory, state)
        except OSError as error:
            # A full disk was reported already when the drops began.
            level = logging.DEBUG if self._drop_first_seq is not None else logging.WARNING
            log.log(level, "cannot write the spool state file in %s: %s", self.directory, error)

    def _release(self):
        if self._open is not None:
            os.close(self._open.fd)
            self._open = None
        os.close(self._dir_fd)      # also releases the flock
        self._dir_fd = None


def _drop_hint(error, directory):
    """Return what a technician can do about a failed write, or "" when it is unclear."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"; free space on its file system (df -h {directory} shows it)"
    return ""


def _check_positive(name, value):
    if not value > 0:
        raise ValueError(f"{name} is {value!r}: it must be a positive number")


def _lock_directory(directory):
    """Open ``directory``, check that it is writable and lock it against a second writer."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise directory_error(directory, error) from None
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=True):
        os.close(dir_fd)
        raise SpoolError(not_writable_text(directory))
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(dir_fd)
        if os.environ.get("INVOCATION_ID"):
            # The service lost to a process started by hand, which must end first.
            text = _("spool directory {directory} is in use by another bessai process, "
                     "probably one started by hand: end it (pgrep -af 'bessai(_edge)? run'), "
                     "then start the service again (systemctl start bessai)")
        else:
            text = _("spool directory {directory} is in use by another bessai process: stop "
                     "the service first (systemctl stop bessai), or end the other process "
                     "(pgrep -af 'bessai(_edge)? run')")
        raise SpoolError(text.format(directory=directory)) from None
    return dir_fd
