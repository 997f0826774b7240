"""A reader that closes stdout early stops the command quietly with status 141."""

import os
import shutil
import subprocess

from bessai_edge.cli import EXIT_BROKEN_PIPE
from tests.conftest import bessai_command, require_commands


def _run_into_closed_pipe(args):
    """Run bessai with stdout on a real pipe whose read end is closed before it starts.

    Closing the read end first makes every write fail with EPIPE, whatever the timing,
    like ``| head -1`` once head has exited.
    """
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([*bessai_command(), *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    finally:
        os.close(write_end)


def test_profiles_list_closed_pipe():
    result = _run_into_closed_pipe(["profiles"])
    assert result.stderr == ""
    assert result.returncode == EXIT_BROKEN_PIPE


def test_profiles_show_closed_pipe():
    result = _run_into_closed_pipe(["profiles", "show", "sunspec"])
    assert result.stderr == ""
    assert result.returncode == EXIT_BROKEN_PIPE


def test_profiles_show_json_closed_pipe():
    result = _run_into_closed_pipe(["profiles", "show", "huawei_sun2000", "--json"])
    assert result.stderr == ""
    assert result.returncode == EXIT_BROKEN_PIPE


def test_profiles_show_into_head_pipeline():
    # The shell pipeline of the user report: head exits after one line while bessai may
    # still be writing, so both 0 (all written in time) and 141 are correct outcomes.
    require_commands("bash", "head")
    command = " ".join(bessai_command()) + " profiles show sunspec | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.stdout.startswith("sunspec: ")
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""
    assert result.returncode in (0, EXIT_BROKEN_PIPE)


def test_spool_tail_closed_pipe(tmp_path):
    from bessai_edge.spool import Spool

    spool = Spool(str(tmp_path)).open()
    for number in range(200):
        spool.append({"time_ms": 1_700_000_000_000 + number, "site_id": "test"})
    spool.close()
    result = _run_into_closed_pipe(["spool", "tail", "-n", "200", "--dir", str(tmp_path)])
    assert result.stderr == ""
    assert result.returncode == EXIT_BROKEN_PIPE
