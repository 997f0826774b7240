"""``bessai spool stats|tail|check`` run as the installed command."""

import os
import select
import subprocess

import orjson
import pytest

from bessai_edge.errors import EX_CONFIG
from bessai_edge.spool import Spool
from bessai_edge.spool.segments import segment_name
from tests.conftest import bessai_command, require_commands
from tests.spool.helpers import layout_record, sample_record


def bessai(*arguments, env=None):
    environment = {key: value for key, value in os.environ.items() if key != "SPOOL_DIR"}
    environment.update(LANG="C", LANGUAGE="", **(env or {}))
    return subprocess.run([*bessai_command(), "spool", *arguments], capture_output=True,
                          text=True, env=environment, timeout=60)


def fill(directory, records, make_record=sample_record):
    with Spool(directory, segment_max_bytes=2000) as spool:
        for number in range(records):
            spool.append(make_record(number))


def test_stats_prints_figures(tmp_path):
    fill(tmp_path, 30)
    result = bessai("stats", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "30 (sequence numbers 1-30)" in result.stdout
    assert "2023-11-14T22:13:20.000Z" in result.stdout     # time_ms of the first record


def test_stats_json_from_spool_dir_variable(tmp_path):
    fill(tmp_path, 30)
    with Spool(tmp_path, segment_max_bytes=2000, max_total_bytes=4000) as spool:
        for number in range(30):
            spool.append(sample_record(number))
    result = bessai("stats", "--json", env={"SPOOL_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    figures = orjson.loads(result.stdout)
    assert figures["directory"] == str(tmp_path)
    assert figures["last_seq"] == 60
    assert figures["records"] == 60 - figures["first_seq"] + 1
    assert figures["lifetime_records_evicted"] == figures["first_seq"] - 1
    assert figures["lifetime_segments_evicted"] > 0
    assert figures["newest_time_ms"] == sample_record(29)["time_ms"]


def test_tail_prints_last_records(tmp_path):
    fill(tmp_path, 30)
    result = bessai("tail", "-n", "3", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["seq"] for line in result.stdout.splitlines()] == [28, 29, 30]


def test_tail_follow_prints_new_records(tmp_path):
    fill(tmp_path, 5)
    command = [*bessai_command(), "spool", "tail", "-n", "1", "-f", "--dir", str(tmp_path)]
    # Unbuffered, so that select() reports every line that the process prints.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               bufsize=0)
    try:
        assert orjson.loads(_read_line(process))["seq"] == 5
        with Spool(tmp_path) as spool:
            for number in range(3):
                spool.append(sample_record(number))
        assert [orjson.loads(_read_line(process))["seq"] for _ in range(3)] == [6, 7, 8]
    finally:
        process.kill()
        process.communicate()


def _read_line(process, timeout=20):
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "bessai spool tail -f printed nothing"
    return process.stdout.readline()


def test_check_valid_spool_exits_0(tmp_path):
    fill(tmp_path, 30, layout_record)
    result = bessai("check", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked 30 records in" in result.stdout
    assert "0 bad lines" in result.stdout


def test_check_reports_bad_line_with_segment_and_offset(tmp_path):
    fill(tmp_path, 30, layout_record)
    path = tmp_path / segment_name(1)
    data = path.read_bytes()
    offset = data.index(b"\n") + 1
    path.write_bytes(data[:offset] + b"#" * 10 + data[offset + 10:])
    result = bessai("check", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert f"{segment_name(1)} offset {offset}: not a JSON object" in result.stdout
    report = orjson.loads(bessai("check", "--json", "--dir", str(tmp_path)).stdout)
    assert report["ok"] is False
    assert report["bad_lines"] == [{"segment": segment_name(1), "offset": offset,
                                    "reason": report["bad_lines"][0]["reason"]}]
    assert report["gaps"] == [[2, 2]]
    assert "sequence number 2 is missing" in result.stdout
    assert "1 bad line," in result.stdout
    assert "1 bad line, no set-aside files" in result.stdout


def test_check_single_segment_and_record_in_singular(tmp_path):
    fill(tmp_path, 1, layout_record)
    result = bessai("check", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("checked 1 record in 1 segment ("), result.stdout


def test_check_repair_cuts_torn_tail(tmp_path):
    fill(tmp_path, 30, layout_record)
    newest = sorted(tmp_path.glob("*.jsonl"))[-1]
    with open(newest, "ab") as stream:
        stream.write(b"\0" * 4096)
    assert bessai("check", "--dir", str(tmp_path)).returncode == 1
    result = bessai("check", "--repair", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cut 4096 bytes of torn tails" in result.stdout


def fill_three_runs(directory):
    for _run in range(3):
        with Spool(directory) as spool:     # segments 1-5, 6-10 and 11-15
            for number in range(5):
                spool.append(layout_record(number))


def test_check_repair_sets_aside_damaged_last_line(tmp_path):
    fill_three_runs(tmp_path)
    path = tmp_path / segment_name(6)
    data = path.read_bytes()
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    damaged = data[:last_start + 5] + b"GARBAGE" + data[last_start + 5:]
    path.write_bytes(damaged)

    result = bessai("check", "--repair", "--dir", str(tmp_path))

    assert result.returncode == 1, result.stdout + result.stderr
    aside = segment_name(6) + ".corrupt"
    assert (tmp_path / aside).read_bytes() == damaged[last_start:]
    assert path.read_bytes() == data[:last_start]
    assert "cut 0 bytes of torn tails; segments set aside: 1" in result.stdout
    assert (f"{aside}: damaged lines set aside by the repair at start-up or by check "
            "--repair; inspect the file, then delete it") in result.stdout
    assert (f"0 bad lines, 1 set-aside file remains ({aside}): inspect it, then delete it "
            "to clear exit status 1") in result.stdout
    assert "torn tail" not in result.stderr
    # The repair's own log line, marked as the command's, names the segment.
    assert (f"bessai spool: ERROR segment {segment_name(6)} ends with unreadable lines"
            in result.stderr), result.stderr


def damage_second_line(path):
    """Put bytes before the second line of a segment so that it is no longer JSON."""
    data = path.read_bytes()
    offset = data.index(b"\n") + 1
    path.write_bytes(data[:offset] + b"GARBAGE" + data[offset:])
    return offset


def test_check_repair_files_get_writer_mode(tmp_path):
    fill_three_runs(tmp_path)
    damage_second_line(tmp_path / segment_name(6))
    old_umask = os.umask(0o022)
    try:
        result = bessai("check", "--repair", "--dir", str(tmp_path))
    finally:
        os.umask(old_umask)
    assert "segments set aside: 1" in result.stdout, result.stdout + result.stderr
    writer_mode = (tmp_path / segment_name(1)).stat().st_mode & 0o777
    assert writer_mode == 0o640
    for name in (segment_name(8), segment_name(6) + ".corrupt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_check_names_bad_line_of_missing_seq(tmp_path):
    fill_three_runs(tmp_path)
    offset = damage_second_line(tmp_path / segment_name(6))
    result = bessai("check", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert (f"sequence number 7 is missing: it is on a bad line listed above "
            f"({segment_name(6)} offset {offset})") in result.stdout
    assert "full disk" not in result.stdout
    report = orjson.loads(bessai("check", "--json", "--dir", str(tmp_path)).stdout)
    assert report["gaps"] == [[7, 7]]
    assert report["gap_causes"][0]["bad_lines"][0]["offset"] == offset


def test_check_names_corrupt_file_of_missing_seq(tmp_path):
    fill_three_runs(tmp_path)
    damage_second_line(tmp_path / segment_name(6))
    bessai("check", "--repair", "--dir", str(tmp_path))
    aside = segment_name(6) + ".corrupt"
    assert b'"seq":7' in (tmp_path / aside).read_bytes()
    result = bessai("check", "--dir", str(tmp_path))
    assert f"sequence number 7 is missing: the repair set it aside in {aside}" in result.stdout
    assert "full disk" not in result.stdout
    report = orjson.loads(bessai("check", "--json", "--dir", str(tmp_path)).stdout)
    assert report["gap_causes"] == [{"set_aside": [aside], "bad_lines": []}]


def test_check_exit_0_after_set_aside_deleted(tmp_path):
    fill_three_runs(tmp_path)
    damage_second_line(tmp_path / segment_name(6))
    repaired = bessai("check", "--repair", "--dir", str(tmp_path))
    assert repaired.returncode == 1
    aside = segment_name(6) + ".corrupt"
    assert (f"0 bad lines, 1 set-aside file remains ({aside}): inspect it, then delete it "
            "to clear exit status 1") in repaired.stdout
    (tmp_path / aside).unlink()
    result = bessai("check", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "0 bad lines, no set-aside files" in result.stdout


def test_check_help_names_exit_status_causes():
    result = subprocess.run([*bessai_command(), "spool", "--help"], capture_output=True,
                            text=True, env={**os.environ, "LANG": "C", "LANGUAGE": ""},
                            timeout=60)
    text = " ".join(result.stdout.split())
    assert ("exit 1 if a line is bad or a set-aside .corrupt file remains (sequence gaps "
            "alone give 0)") in text


def remove_profile_key(path):
    """Overwrite bytes of the first record in place so that its profile key is gone."""
    data = path.read_bytes()
    start = data.index(b'v1","profile":"h')
    garbled = b"GARBLED#########"
    path.write_bytes(data[:start] + garbled + data[start + len(garbled):])
    return data


def test_check_reports_record_without_profile(tmp_path):
    fill(tmp_path, 3, layout_record)
    path = tmp_path / segment_name(1)
    remove_profile_key(path)
    result = bessai("check", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert (f"{segment_name(1)} offset 0: key profile is missing: the record does not match "
            "the record layout, but the forwarder sends it and check --repair keeps it"
            ) in result.stdout
    assert "checked 3 records in 1 segment" in result.stdout
    assert "1 bad line," in result.stdout
    assert "missing (" not in result.stdout


def test_check_repair_keeps_record_without_profile(tmp_path):
    fill(tmp_path, 3, layout_record)
    path = tmp_path / segment_name(1)
    remove_profile_key(path)
    damaged = path.read_bytes()
    result = bessai("check", "--repair", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert path.read_bytes() == damaged
    assert list(tmp_path.glob("*.corrupt")) == []
    assert "key profile is missing" in result.stdout


def test_check_repair_while_writer_runs_exits_78(tmp_path):
    with Spool(tmp_path):
        result = bessai("check", "--repair", "--dir", str(tmp_path))
    assert result.returncode == EX_CONFIG
    assert "in use by another bessai process" in result.stderr


@pytest.mark.parametrize("action", ["stats", "tail", "check", "check --repair"])
def test_missing_directory_exits_78(tmp_path, action):
    result = bessai(*action.split(), "--dir", str(tmp_path / "missing"))
    assert result.returncode == EX_CONFIG
    assert f"spool directory {tmp_path / 'missing'} does not exist: check --dir" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_file_as_directory_names_dir_option(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a spool")
    result = bessai("stats", "--dir", str(afile))
    assert result.returncode == EX_CONFIG
    assert f"spool directory {afile} is not a directory: check --dir" in result.stderr


@pytest.mark.parametrize("env, expected", [
    ({"SPOOL_DIR": "/nonexistent/spool"}, "/nonexistent/spool does not exist: check SPOOL_DIR"),
    ({}, "/var/spool/bessai does not exist: name the spool with --dir DIR or SPOOL_DIR"),
])
def test_missing_directory_names_its_source(env, expected):
    if not env and os.path.lexists("/var/spool/bessai"):
        pytest.skip("/var/spool/bessai exists here: the default directory is not missing")
    result = bessai("stats", env=env)
    assert result.returncode == EX_CONFIG
    assert expected in result.stderr


def test_unwritable_directory_exits_78(tmp_path):
    directory = tmp_path / "spool"
    directory.mkdir()
    if os.geteuid() == 0:
        # Root may write anywhere, except on a read-only file system.
        require_commands("mount", "umount")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(directory)],
                       check=True)
    else:
        directory.chmod(0o555)
    try:
        result = bessai("check", "--repair", "--dir", str(directory))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(directory)], check=True)
        else:
            directory.chmod(0o755)
    assert result.returncode == EX_CONFIG
    assert f"spool directory {directory} is not writable" in result.stderr


def test_stats_without_writer_names_newest_segment(tmp_path):
    fill(tmp_path, 30)
    newest = segment_name(23)
    result = bessai("stats", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"segments         3 (2 sealed, newest: {newest})\n" in result.stdout
    assert "writer           none (no process holds the spool's lock)\n" in result.stdout
    assert "open:" not in result.stdout
    figures = orjson.loads(bessai("stats", "--json", "--dir", str(tmp_path)).stdout)
    assert figures["newest_segment"] == newest
    assert figures["open_segment"] is None
    assert figures["writer_running"] is False
    assert figures["writer_pid"] is None


def test_stats_with_writer_names_open_segment(tmp_path):
    fill(tmp_path, 30)
    with Spool(tmp_path, segment_max_bytes=2000) as spool:
        spool.append(sample_record(30))     # starts segment 31, the open one
        result = bessai("stats", "--dir", str(tmp_path))
        json_result = bessai("stats", "--json", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"segments         4 (3 sealed, open: {segment_name(31)})\n" in result.stdout
    assert f"writer           PID {os.getpid()} (holds the spool's lock)\n" in result.stdout
    figures = orjson.loads(json_result.stdout)
    assert figures["newest_segment"] == segment_name(31)
    assert figures["open_segment"] == segment_name(31)
    assert figures["writer_running"] is True
    assert figures["writer_pid"] == os.getpid()


@pytest.mark.parametrize("opened", [False, True], ids=["no_segment", "empty_segment"])
def test_stats_empty_spool_says_no_records_yet(tmp_path, opened):
    if opened:
        Spool(tmp_path).open().close()      # a writer that started and wrote nothing
    result = bessai("stats", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "record " in line]
    assert [line.split()[:2] for line in lines] == [["oldest", "record"], ["newest", "record"]]
    for line in lines:
        assert line.endswith("none yet (the spool holds no records)"), line
    assert "time_ms" not in result.stdout


def damage_line(path, number, filler):
    """Overwrite the start of line ``number`` (from 0) of a segment; return its offset."""
    data = path.read_bytes()
    offset = 0
    for _ in range(number):
        offset = data.index(b"\n", offset) + 1
    path.write_bytes(data[:offset] + filler * 10 + data[offset + 10:])
    return offset


def test_tail_reports_damaged_lines_and_goes_on(tmp_path):
    fill(tmp_path, 30)
    sealed, open_segment = tmp_path / segment_name(1), tmp_path / segment_name(23)
    garbage_offset = damage_line(sealed, 1, b"#")
    nul_offset = damage_line(open_segment, 1, b"\0")     # power-cut damage mid open segment
    result = bessai("tail", "-n", "30", "--dir", str(tmp_path))
    assert result.returncode == 1, result.stderr
    seqs = [orjson.loads(line)["seq"] for line in result.stdout.splitlines()]
    assert seqs == [number for number in range(1, 31) if number not in (2, 24)]
    assert result.stderr.splitlines() == [
        f"bessai: damaged line skipped: {segment_name(1)} offset {garbage_offset}: not a JSON "
        "object with an integer seq: '##########te\":\"test\",\"device\":\"inv1\",\"time_ms\""
        ":1700000000001'",
        f"bessai: damaged line skipped: {segment_name(23)} offset {nul_offset}: 10 NUL bytes "
        "in a line of 172 bytes (power-cut damage)",
    ]


def test_tail_reports_only_damage_among_printed_records(tmp_path):
    fill(tmp_path, 30)
    damage_line(tmp_path / segment_name(23), 1, b"#")
    result = bessai("tail", "-n", "2", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["seq"] for line in result.stdout.splitlines()] == [29, 30]
    assert result.stderr == ""


def test_tail_follow_reports_damaged_new_line(tmp_path):
    fill(tmp_path, 5)
    command = [*bessai_command(), "spool", "tail", "-n", "1", "-f", "--dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               bufsize=0, env={**os.environ, "LANG": "C", "LANGUAGE": ""})
    try:
        assert orjson.loads(_read_line(process))["seq"] == 5     # following from here on
        path = tmp_path / segment_name(1)
        offset = path.stat().st_size
        record = orjson.dumps({**sample_record(5), "seq": 6})
        with open(path, "ab") as stream:
            stream.write(b"garbage\n" + record + b"\n")
        assert _read_line(process) == record + b"\n"
        ready, _, _ = select.select([process.stderr], [], [], 20)
        assert ready, "bessai spool tail -f reported nothing on stderr"
        assert process.stderr.readline() == (
            f"bessai: damaged line skipped: {segment_name(1)} offset {offset}: not a JSON "
            "object with an integer seq: 'garbage'\n").encode()
    finally:
        process.kill()
        process.communicate()


@pytest.mark.parametrize("value", ["-1", "x"])
def test_tail_negative_lines_rejected(tmp_path, value):
    fill(tmp_path, 3)
    result = bessai("tail", "-n", value, "--dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert (f"argument -n/--lines: expected a whole number of at least 0, got '{value}'"
            in result.stderr)


def test_stats_counts_damaged_line_apart(tmp_path):
    fill(tmp_path, 5)
    with open(tmp_path / segment_name(1), "ab") as stream:
        stream.write(b"#" * 40 + b"\n")
    result = bessai("stats", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "records          5 (sequence numbers 1-5)\n" in result.stdout
    assert "damaged lines    1 (bessai spool check lists them)\n" in result.stdout
    figures = orjson.loads(bessai("stats", "--json", "--dir", str(tmp_path)).stdout)
    assert (figures["records"], figures["damaged_lines"]) == (5, 1)
    assert (figures["first_seq"], figures["last_seq"]) == (1, 5)
    assert figures["newest_time_ms"] == sample_record(4)["time_ms"]


def test_stats_only_damaged_lines_shows_no_range(tmp_path):
    (tmp_path / segment_name(1)).write_bytes(b"#" * 40 + b"\n" + b"\0" * 30 + b"\n")
    result = bessai("stats", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "records          0\n" in result.stdout
    assert "damaged lines    2 (bessai spool check lists them)\n" in result.stdout
    assert "sequence numbers" not in result.stdout
