"""Full validation pass over a spool directory, for ``bessai spool check``."""

import dataclasses
import os

from bessai_edge.i18n import _
from bessai_edge.spool.segments import (
    CORRUPT_SUFFIX, BadLine, describe_damage, iter_lines, list_segments, record_seq)


@dataclasses.dataclass
class CheckReport:
    """Findings of one validation pass."""

    segments: int = 0
    records: int = 0
    bytes: int = 0
    bad_lines: list = dataclasses.field(default_factory=list)
    gaps: list = dataclasses.field(default_factory=list)     # (first missing, last missing)
    incomplete_tail: BadLine = None     # open segment's last line, maybe still being written
    set_aside: list = dataclasses.field(default_factory=list)

    @property
    def ok(self):
        """True when there is no bad line and no set-aside segment."""
        return not self.bad_lines and not self.set_aside


def check_spool(directory):
    """Read every line of every segment and report bad lines, gaps and set-aside files.

    Gaps are sequence numbers missing between two records: dropped on a full disk,
    lost with a segment that was set aside, or deleted from the middle. They are not
    errors, because the writer makes them on purpose.
    """
    report = CheckReport()
    report.set_aside = sorted(name for name in os.listdir(directory) if CORRUPT_SUFFIX in name)
    previous_seq = None
    for segment in list_segments(directory):
        report.segments += 1
        report.bytes += segment.size
        try:
            stream = open(segment.path, "rb")
        except FileNotFoundError:
            continue        # delivered and deleted during the pass
        with stream:
            for offset, line, complete in iter_lines(stream):
                name = segment.path.name
                if not complete:
                    bad = BadLine(name, offset, describe_damage(line, complete))
                    if segment.sealed or b"\0" in line:
                        report.bad_lines.append(bad)
                    else:
                        report.incomplete_tail = bad
                    continue
                seq = record_seq(line)
                if seq is None:
                    report.bad_lines.append(BadLine(name, offset, describe_damage(line)))
                    continue
                if previous_seq is not None and seq <= previous_seq:
                    report.bad_lines.append(BadLine(
                        name, offset, _("sequence number {seq} does not follow {previous}").format(
                            seq=seq, previous=previous_seq)))
                    continue
                if seq < segment.first_seq:
                    report.bad_lines.append(BadLine(
                        name, offset, _("sequence number {seq} is below the segment's first, "
                                        "{first}").format(seq=seq, first=segment.first_seq)))
                    continue
                if previous_seq is not None and seq > previous_seq + 1:
                    report.gaps.append((previous_seq + 1, seq - 1))
                previous_seq = seq
                report.records += 1
    return report

