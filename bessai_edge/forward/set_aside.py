"""The ``.corrupt`` files of the spool directory that may explain a sequence gap.

The start-up repair of ``bessai run`` moves the damaged lines of segment ``N.jsonl``
to ``N.jsonl.corrupt`` (or ``.corrupt.1`` and so on), so records on those lines never
reach the forwarder. A file of segment ``N`` can hold the records of a gap that
starts at ``first`` only when ``N <= first``, and only when no segment that starts
later (the one the record before the gap was read from) lies between them.
"""

import os
import re

# What is left of a record's "seq" in a damaged line, when anything is.
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
        seqs = _seqs_in(os.path.join(directory, name))
        if seqs is None:
            continue
        if any(first <= seq <= last for seq in seqs):
            found.append(name)
        elif not seqs:
            unreadable_seqs.append(name)
    if found:
        return found
    return unreadable_seqs[-1:]


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


def _seqs_in(path):
    """Return the seqs readable on the lines of ``path``, or None when it cannot be read.

    NOTE: this reads the whole file, up to a whole segment set aside, once per gap.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    return [int(match.group(1)) for match in _SEQ.finditer(data)]
