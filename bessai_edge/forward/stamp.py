"""Write order of two spool records whose sequence numbers cannot show it.

The spool numbers records in the order it writes them. After a power cut, though, it
hands out the numbers of the records lost with the page cache again, and the forwarder
may have delivered those records before the cut (see ``spool.writer.Spool``). A record's
``boot_id`` and ``mono_s`` (CLOCK_MONOTONIC at its cycle's start, which counts within
one boot) still order two records written in the same boot.
"""

import dataclasses

# /proc/sys/kernel/random/boot_id is a UUID in text form, 36 characters. A longer value
# is not stored, so that the checkpoint keeps its fixed size.
MAX_BOOT_ID_CHARS = 36


@dataclasses.dataclass(frozen=True)
class RecordStamp:
    """A record's sequence number with the boot and the monotonic time of its cycle."""

    seq: int
    boot_id: str | None = None   # None when the record has no usable boot_id
    mono_s: float | None = None  # None when the record has no usable mono_s


def stamp_of(record):
    """Return the RecordStamp of a parsed record (``messages.parse_record``)."""
    boot_id = record.get("boot_id")
    if not isinstance(boot_id, str) or not boot_id or len(boot_id) > MAX_BOOT_ID_CHARS:
        boot_id = None
    mono_s = record.get("mono_s")
    if not isinstance(mono_s, (int, float)) or isinstance(mono_s, bool):
        mono_s = None
    return RecordStamp(record["seq"], boot_id, mono_s)


def written_by(stamp, mark):
    """Return True when record ``stamp`` was written no later than record ``mark``.

    Only records of one boot can be ordered, so False also means "unknown". Records
    of one cycle share ``mono_s``, and the spool writes them in ``seq`` order.
    """
    if mark is None or stamp.boot_id is None or stamp.mono_s is None:
        return False
    if stamp.boot_id != mark.boot_id or mark.mono_s is None:
        return False
    return stamp.mono_s < mark.mono_s or (stamp.mono_s == mark.mono_s and stamp.seq <= mark.seq)



def describe_newer(stamp, mark):
    """Return how record ``stamp``, which ``written_by`` did not place before ``mark``, relates.

    The text completes "record N ...", or is None when the records lack what orders them.
    """
    if mark is None or None in (stamp.boot_id, stamp.mono_s, mark.boot_id, mark.mono_s):
        return None
    if stamp.boot_id == mark.boot_id:
        return f"was written after record {mark.seq} in the same boot"
    return f"was written in another boot than record {mark.seq} (boot_id {stamp.boot_id})"
