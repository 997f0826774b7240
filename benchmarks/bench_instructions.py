"""User-space instructions per steady cycle, ``bessai run`` against bare pymodbus (callgrind).

CPU time on a shared machine moves with the host's load; instruction counts do not.
Each side runs under ``valgrind --tool=callgrind --instr-atstart=no`` at a 0.1 s period
against the same simulator and an unpaced copy of the profile (as in ``bench_loop``).
In the middle of the wait before cycle ``WARMUP + 1`` the benchmark turns
instrumentation on with ``callgrind_control``, and ``MEASURED`` periods later off
again. The figure is the instructions counted in between, divided by the cycles that
started in between, so start-up is left out of both sides.

Figures: ``gateway_instructions_per_cycle``, ``bare_instructions_per_cycle`` and their
ratio. ``--stock-decode`` adds the gateway with pymodbus's own register decode
(``benchmarks.stock_decode``), which shows what the array register replies save.
Needs valgrind (``apt install valgrind``); ``--quick`` runs fewer cycles.
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import orjson

from benchmarks.bench_loop import _free_port, unpaced_simulator
from bessai_edge.profile import load_profile
from bessai_edge.spool import SpoolReader

PROFILE = "huawei_sun2000"
PERIOD_S = 0.1        # long enough that a cycle under valgrind never overruns
WARMUP = 30
START_TIMEOUT_S = 120.0


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_instructions")
    parser.add_argument("--stock-decode", action="store_true",
                        help="also measure the gateway with pymodbus's stock register decode")
    parser.add_argument("--quick", action="store_true", help="20 cycles: a smoke test")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print(json.dumps({"bench": "instructions", "skipped": "valgrind is not installed"}))
        return 0
    measured = 20 if args.quick else 100
    with unpaced_simulator("bench-instructions-", PROFILE) as (work, profile, host, port):
        gateway = _gateway(work, profile, host, port, measured, "gateway", [])
        bare = _bare(work, profile, host, port, measured)
        figures = {"gateway_instructions_per_cycle": gateway,
                   "bare_instructions_per_cycle": bare}
        if args.stock_decode:
            figures["gateway_stock_decode_instructions_per_cycle"] = _gateway(
                work, profile, host, port, measured, "stock", ["-m", "benchmarks.stock_decode"])
    for name, value in figures.items():
        print(json.dumps({"bench": "instructions", "figure": name, "value": round(value),
                          "cycles": measured, "period_s": PERIOD_S}))
    print(json.dumps({"bench": "instructions", "figure": "gateway_to_bare_ratio",
                      "value": round(gateway / bare, 3)}))
    return 0


def _callgrind(out):
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}"]


def _gateway(work, profile, host, port, measured, name, module):
    """Return the gateway's instructions per cycle; ``module`` replaces the bessai script."""
    spool = work / f"spool-{name}"
    spool.mkdir()
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0", "SITE_ID": "bench", "BESSAI_MODE": "modbus",
        "INVERTER_IP": host, "INVERTER_PORT": str(port), "DRIVER_PROFILE_PATH": profile,
        "SCAN_INTERVAL_S": str(PERIOD_S), "SPOOL_DIR": str(spool), "LOG_LEVEL": "warning",
        "HEALTH_LISTEN": f"127.0.0.1:{_free_port()}",
    }
    program = module or [str(pathlib.Path(sys.executable).parent / "bessai")]
    out = work / f"{name}.callgrind"
    command = [*_callgrind(out), sys.executable, *program, "run",
               "--cycles", str(WARMUP + measured + 10)]
    process = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               cwd=pathlib.Path(__file__).resolve().parent.parent)

    def starts():
        return [orjson.loads(line)["mono_s"] for _position, line in SpoolReader(str(spool)).read()]

    window = _measure(process, starts, measured)
    return _per_cycle(out, window, starts())


def _bare(work, profile, host, port, measured):
    blocks = [[request.function, request.address, request.count, request.unit_id]
              for request in load_profile(profile).plan().requests]
    out = work / "bare.callgrind"
    printed = work / "bare-starts"
    command = [*_callgrind(out), sys.executable, "-m", "benchmarks.bench_loop", "bare-child",
               host, str(port), json.dumps(blocks), str(WARMUP + measured + 10),
               str(PERIOD_S)]
    with open(printed, "w", encoding="ascii") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONHASHSEED": "0"},
                                   cwd=pathlib.Path(__file__).resolve().parent.parent)

        def starts():
            # The child prints its grid start first and every cycle's start at the end.
            lines = printed.read_text(encoding="ascii").splitlines()
            if not lines:
                return []
            first = float(lines[0])
            reached = int((time.monotonic() - first) / PERIOD_S) + 1
            return [first + index * PERIOD_S for index in range(max(reached, 0))]

        window = _measure(process, starts, measured)
    lines = printed.read_text(encoding="ascii").splitlines()
    return _per_cycle(out, window, json.loads(lines[1]))


def _measure(process, starts, measured):
    """Turn instrumentation on and off around ``measured`` cycles; return the two moments."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(starts()) < WARMUP:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the measured process ended or stalled before its warm-up")
        time.sleep(0.05)
    first = starts()[0]
    moments = []
    for cycle, switch in ((WARMUP + 1, "on"), (WARMUP + 1 + measured, "off")):
        time.sleep(max(0.0, first + (cycle - 0.5) * PERIOD_S - time.monotonic()))
        moments.append(time.monotonic())
        subprocess.run(["callgrind_control", "-i", switch, str(process.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if process.wait(timeout=START_TIMEOUT_S) != 0:
        raise RuntimeError(f"the measured process exited with {process.returncode}")
    return moments


def _per_cycle(out, window, cycle_starts):
    start, end = window
    cycles = sum(1 for cycle_start in cycle_starts if start < cycle_start <= end)
    for line in out.read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1]) / cycles
    raise RuntimeError(f"no totals line in {out}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
