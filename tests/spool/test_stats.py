"""``stats.summarize``: the figures of ``bessai spool stats``, read in this process."""

from bessai_edge import proc_locks
from bessai_edge.spool import Spool
from bessai_edge.spool.segments import segment_name
from bessai_edge.spool.stats import summarize
from tests.spool.helpers import sample_record


def test_summarize_writer_unknown_without_proc_locks(tmp_path, monkeypatch):
    with Spool(tmp_path) as spool:
        spool.append(sample_record(0))
        monkeypatch.setattr(proc_locks, "LOCKS_FILE", str(tmp_path / "missing-locks"))
        figures = summarize(tmp_path)
    assert figures["writer_running"] is None
    assert figures["writer_pid"] is None
    assert figures["open_segment"] is None
    assert figures["newest_segment"] == segment_name(1)
