"""The ``.corrupt`` files and bad lines of the spool that may explain a sequence gap.

The start-up repair of ``bessai run`` and ``bessai spool check --repair`` move the
damaged lines of segment ``N.jsonl`` to ``N.jsonl.corrupt`` (or ``.corrupt.1`` and so
on), so records on those lines never reach the forwarder. The forwarder and ``bessai
spool check`` both name these files for a gap. A file of segment ``N`` can hold the
records of a gap that starts at ``first`` only when ``N <= first``, and only when no
segment that starts later (the one the record before the gap was read from) lies
between them.
"""

import os
import re

# The "seq" of a record in a damaged line, when that part of the line is intact.
_SEQ = re.compile(rb'"seq"\s*:\s*(\d+)')
_CORRUPT_NAME = re.compile(r"^(\d+)\.jsonl\.corrupt(\.\d+)?$")


def files_for_gap(directory, first, last, previous_segment=None):
    """Return the names of the ``.corrupt`` files that hold records ``first..last``.

    A file counts when a seq still readable on one of its lines lies in the gap, or
    when none of its lines shows a seq (zeroed blocks) and it is the newest candidate.
    ``previous_segment`` is the first seq of the segment of the record before the gap,
    or None when not known. Files that cannot be read are left out.
    """
    candidates = _candidates(directory, first, previous_segment)
    found = []
    unreadable_seqs = []
    for name in candidates:
        seqs = _file_seqs(os.path.join(directory, name))
        if seqs is None:
            continue
        if any(first <= seq <= last for seq in seqs):
            found.append(name)
        elif not seqs:
            unreadable_seqs.append(name)
    if found:
        return found
    return unreadable_seqs[-1:]


def lines_for_gap(lines, first, last):
    """Return the items of ``(item, line_bytes)`` pairs whose lines hold records ``first..last``.

    By the rule of ``files_for_gap``: the lines that still show a seq in the gap, else
    the lines that show no seq at all.
    """
    found = []
    without_seq = []
    for item, line in lines:
        seqs = seqs_in(line)
        if any(first <= seq <= last for seq in seqs):
            found.append(item)
        elif not seqs:
            without_seq.append(item)
    return found or without_seq


def seqs_in(data):
    """Return the seqs still readable in ``data``, one or more damaged record lines."""
    return [int(match.group(1)) for match in _SEQ.finditer(data)]


def _candidates(directory, first, previous_segment):
    """Return the ``.corrupt`` names of segments from ``previous_segment`` to ``first``."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    lowest = previous_segment or 0
    matches = [(int(match.group(1)), name) for name in names
               if (match := _CORRUPT_NAME.match(name))]
    return [name for segment, name in sorted(matches) if lowest <= segment <= first]


def _file_seqs(path):
    """Return the seqs readable on the lines of ``path``, or None when it cannot be read.

    NOTE: this reads the whole file, up to a whole segment set aside, once per gap.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    return seqs_in(data)
