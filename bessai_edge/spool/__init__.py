"""Append-only segment store for telemetry records: the writer, its recovery and the reader."""

from bessai_edge.errors import SpoolError
from bessai_edge.spool.reader import SpoolReader
from bessai_edge.spool.segments import Segment
from bessai_edge.spool.writer import MIB, Spool

__all__ = ["MIB", "Segment", "Spool", "SpoolError", "SpoolReader"]
