"""Write failures without root: RLIMIT_FSIZE makes the kernel refuse writes like a full disk.

The tmpfs test in test_full_disk.py needs root to mount; this one runs everywhere. A
write that crosses the limit is cut short by the kernel (a partial line), and every
later write fails with EFBIG, so both failure paths of ``append`` run for real.
"""

import subprocess
import sys
import textwrap

import orjson

from tests.conftest import REPO
from tests.spool.helpers import assert_spool_valid, read_seqs

CHILD = textwrap.dedent("""
    import resource, signal, sys
    import orjson
    from bessai_edge.spool import Spool
    from tests.spool.helpers import sample_record

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    spool = Spool(sys.argv[1], segment_max_bytes=1 << 20, fsync_interval_s=0).open()
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, hard))
    limited = [spool.append(sample_record(number)) for number in range(100)]
    during = spool.stats()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    after = [spool.append(sample_record(number)) for number in range(100, 110)]
    spool.close()
    print(orjson.dumps({"limited": limited, "during": during, "after": after,
                        "final": spool.stats()}).decode())
""")


def test_refused_writes_dropped_and_resumed(tmp_path):
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True,
                            text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    outcome = orjson.loads(result.stdout)
    accepted = [seq for seq in outcome["limited"] if seq is not None]
    dropped = outcome["limited"].count(None)

    assert 0 < len(accepted) < 100
    assert outcome["during"]["records_dropped"] == dropped
    assert outcome["during"]["dropping"] is True
    assert outcome["after"] == list(range(101, 111))
    assert outcome["final"]["drop_episodes"] == 1
    assert outcome["final"]["dropping"] is False
    assert "short write" in result.stderr      # the write that crossed the limit was cut
    assert "[Errno 27] File too large (short write: " in result.stderr   # EFBIG, not ENOSPC
    assert result.stderr.count("dropping records") == 1
    assert read_seqs(tmp_path) == accepted + list(range(101, 111))
    assert_spool_valid(tmp_path)    # the partial line at the limit was cut back


TRUNCATED_CHILD = textwrap.dedent("""
    import os, resource, signal, sys
    from bessai_edge.spool import Spool
    from tests.spool.helpers import sample_record

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    spool = Spool(sys.argv[1], segment_max_bytes=1 << 20, fsync_interval_s=0).open()
    for number in range(20):
        spool.append(sample_record(number))
    segment, = [name for name in os.listdir(sys.argv[1]) if name.endswith(".jsonl")]
    os.truncate(os.path.join(sys.argv[1], segment), 0)   # another process empties it
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    for number in range(20, 30):
        spool.append(sample_record(number))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    for number in range(30, 35):
        spool.append(sample_record(number))
    spool.close()
""")


def test_partial_write_after_truncation_adds_no_nul(tmp_path):
    # The cut after a partial write went back to the size the writer remembered, which
    # was larger than the truncated file, so the file was padded with NUL bytes.
    result = subprocess.run([sys.executable, "-c", TRUNCATED_CHILD, str(tmp_path)],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "short write" in result.stderr
    segment, = tmp_path.glob("*.jsonl")
    data = segment.read_bytes()
    assert b"\0" not in data
    assert data.endswith(b"\n")
    assert [orjson.loads(line)["seq"] for line in data.splitlines()][-5:] == list(range(31, 36))
