"""The bounded window of records that are published but not yet in the saved checkpoint.

Records enter the window in spool order, each with the MQTT packet ids (mids) of the
messages it was published as. The broker acknowledges messages in any order; the
window hands out only the unbroken run of fully acknowledged records at its head, so
the checkpoint never moves past a record that the broker might not hold. A message
that the broker rejected (``reject``) stays pending, so its record and every record
after it stay in the window until the connection is dropped and they are sent again.

The capacity bounds the records published after the saved checkpoint: records still
waiting for their acknowledgement plus acknowledged ones not yet saved. That is the
most a crash can make the forwarder send twice.
"""

import collections
import dataclasses


class _Entry:
    __slots__ = ("position", "seq", "pending", "published", "sent_at", "messages", "stamp")

    def __init__(self, position, seq, pending, sent_at, messages, stamp):
        self.position = position
        self.seq = seq
        self.stamp = stamp         # the caller's RecordStamp of the record, or None
        self.pending = pending
        self.published = pending > 0   # False for a skipped line or a record not sent
        self.sent_at = sent_at
        self.messages = messages   # mid -> the caller's message object


@dataclasses.dataclass(frozen=True)
class RejectedMessage:
    """A message of a record in the window that the broker rejected."""

    seq: int | None   # the record's sequence number
    position: tuple   # spool position just after the record's line
    message: object   # what ``add`` was given for the message, None when nothing


class InflightWindow:
    """Published records in spool order, with their outstanding acknowledgements."""

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError(f"window capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self.unsaved = 0  # acknowledged records taken out but not yet in the saved checkpoint
        self._entries = collections.deque()
        self._by_mid = {}

    def __len__(self):
        """Number of records published and not yet taken out as acknowledged."""
        return len(self._entries)

    def has_room(self):
        return len(self._entries) + self.unsaved < self.capacity

    def add(self, position, seq, mids, sent_at=0.0, messages=(), stamp=None):
        """Append a published record; ``mids`` may be empty for a line that was skipped.

        ``sent_at`` is the monotonic time of the publish, for ``oldest_unacknowledged``.
        ``messages``, in the order of ``mids``, are handed back by ``reject``, and
        ``stamp`` by ``take_acknowledged``.
        """
        entry = _Entry(position, seq, len(mids), sent_at, dict(zip(mids, messages)), stamp)
        for mid in mids:
            if mid in self._by_mid:
                raise ValueError(f"MQTT packet id {mid} is already in flight")
            self._by_mid[mid] = entry
        self._entries.append(entry)

    def acknowledge(self, mid):
        """Mark one message acknowledged; return False for a mid that is not in flight."""
        entry = self._by_mid.pop(mid, None)
        if entry is None:
            return False
        entry.pending -= 1
        return True

    def reject(self, mid):
        """Note that the broker rejected message ``mid``; return a RejectedMessage or None.

        None means ``mid`` is not in flight. The message stays pending, so
        ``take_acknowledged`` never passes its record.
        """
        entry = self._by_mid.pop(mid, None)
        if entry is None:
            return None
        return RejectedMessage(entry.seq, entry.position, entry.messages.get(mid))

    def oldest_unacknowledged(self):
        """Return ``(seq, sent_at)`` of the oldest record still waiting for a PUBACK, or None."""
        for entry in self._entries:
            if entry.pending:
                return entry.seq, entry.sent_at
        return None

    def take_acknowledged(self):
        """Remove the fully acknowledged records at the head.

        Returns ``(published, position, seq, stamp)``, where ``published`` counts the
        removed records that were published (the broker acknowledged them) and the
        rest are of the last record removed. Returns None when the head record still
        waits for an acknowledgement. Every removed entry is added to ``unsaved``
        until ``mark_saved`` is called.
        """
        count = 0
        published = 0
        last = None
        while self._entries and self._entries[0].pending == 0:
            last = self._entries.popleft()
            count += 1
            published += last.published
        if last is None:
            return None
        self.unsaved += count
        return published, last.position, last.seq, last.stamp

    def mark_saved(self):
        """Record that the checkpoint now covers every record taken out so far."""
        self.unsaved = 0

    def clear(self):
        """Forget the records in flight, after the connection that carried them was lost.

        They will be read and published again from the last acknowledged position.
        """
        self._entries.clear()
        self._by_mid.clear()
