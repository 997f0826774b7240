"""Full validation pass over a spool directory, for ``bessai spool check``."""

import dataclasses
import os

from bessai_edge.i18n import _
from bessai_edge.records import layout_problem
from bessai_edge.spool.segments import (
    CORRUPT_SUFFIX, BadLine, describe_damage, iter_lines, json_object, list_segments,
    record_seq)
from bessai_edge.spool.set_aside import files_for_gap, lines_for_gap


@dataclasses.dataclass
class GapCause:
    """The places that hold the records of one sequence gap, as far as the spool shows them."""

    set_aside: list = dataclasses.field(default_factory=list)   # .corrupt file names
    bad_lines: list = dataclasses.field(default_factory=list)   # BadLine items of the gap


@dataclasses.dataclass
class CheckReport:
    """Findings of one validation pass."""

    segments: int = 0
    records: int = 0
    bytes: int = 0
    bad_lines: list = dataclasses.field(default_factory=list)
    gaps: list = dataclasses.field(default_factory=list)     # (first missing, last missing)
    gap_causes: list = dataclasses.field(default_factory=list)  # a GapCause for each gap
    incomplete_tail: BadLine = None     # open segment's last line, maybe still being written
    set_aside: list = dataclasses.field(default_factory=list)

    @property
    def ok(self):
        """True when there is no bad line and no set-aside file."""
        return not self.bad_lines and not self.set_aside


def check_spool(directory, check_layout=True):
    """Read every line of every segment and report bad lines, gaps and set-aside files.

    Gaps are sequence numbers missing between two records: dropped on a full disk,
    on a bad line, set aside by the repair, or deleted from the middle. They are not
    errors, because the writer makes them on purpose. A record that breaks the layout
    of ``records.py`` but has a rising seq is a bad line and still counts as a record,
    because the forwarder sends it. ``check_layout`` False skips that layout check.
    """
    report = CheckReport()
    report.set_aside = sorted(name for name in os.listdir(directory) if CORRUPT_SUFFIX in name)
    checker = _LineChecker(directory, report, check_layout)
    for segment in list_segments(directory):
        report.segments += 1
        report.bytes += segment.size
        try:
            stream = open(segment.path, "rb")
        except FileNotFoundError:
            continue        # delivered and deleted during the pass
        with stream:
            for offset, line, complete in iter_lines(stream):
                checker.check_line(segment, offset, line, complete)
    return report


class _LineChecker:
    """Checks the lines of the spool in order and adds what it finds to a report."""

    def __init__(self, directory, report, check_layout):
        self.directory = directory
        self.report = report
        self.check_layout = check_layout
        self.previous_seq = None
        self.previous_segment = None    # first seq of the segment of the previous record
        self.bad_since_record = []      # (BadLine, line) after the previous record

    def check_line(self, segment, offset, line, complete):
        name = segment.path.name
        if not complete:
            bad = BadLine(name, offset, describe_damage(line, complete))
            if segment.sealed or b"\0" in line:
                self._add_bad(bad, line)
            else:
                self.report.incomplete_tail = bad
            return
        seq = record_seq(line)
        reason = self._seq_problem(seq, segment) if seq else describe_damage(line)
        if reason:
            self._add_bad(BadLine(name, offset, reason), line)
            return
        if self.previous_seq is not None and seq > self.previous_seq + 1:
            self._add_gap(self.previous_seq + 1, seq - 1)
        self.previous_seq = seq
        self.previous_segment = segment.first_seq
        self.bad_since_record = []
        self.report.records += 1
        problem = layout_problem(json_object(line)) if self.check_layout else None
        if problem:
            self.report.bad_lines.append(BadLine(name, offset, _(
                "{problem}: the record does not match the record layout, but the forwarder "
                "sends it and check --repair keeps it").format(problem=problem)))

    def _seq_problem(self, seq, segment):
        if self.previous_seq is not None and seq <= self.previous_seq:
            return _("sequence number {seq} does not follow {previous}").format(
                seq=seq, previous=self.previous_seq)
        if seq < segment.first_seq:
            return _("sequence number {seq} is below the segment's first, {first}").format(
                seq=seq, first=segment.first_seq)
        return None

    def _add_bad(self, bad, line):
        self.report.bad_lines.append(bad)
        self.bad_since_record.append((bad, line))

    def _add_gap(self, first, last):
        cause = GapCause(bad_lines=lines_for_gap(self.bad_since_record, first, last))
        if not cause.bad_lines:
            cause.set_aside = files_for_gap(self.directory, first, last, self.previous_segment)
        self.report.gaps.append((first, last))
        self.report.gap_causes.append(cause)
