"""Scan loop benchmark: CPU per cycle against bare pymodbus, start-time error, memory.

Every figure comes from ``bessai run`` as a child process polling ``bessai simulate``
over Modbus TCP on 127.0.0.1, both started here:

* ``cpu_per_cycle_ratio``: CPU time per cycle of ``bessai run`` divided by that of a
  bare pymodbus ``ModbusTcpClient`` reading the same requests. Both sides are child
  processes started the same way. Both start their cycles on a fixed grid of the
  monotonic clock at the same period and sleep in between. This process reads each
  child's CPU time (``/proc/PID/task/*/schedstat``, in nanoseconds) in the middle of
  the wait after cycle ``WARMUP_CYCLES`` and again ``N`` cycles later, so start-up and
  warm-up are left out. It divides by the cycles that started in between, taken from
  the records' ``mono_s`` and from the start times that the bare child prints when it
  ends. The profile is a copy of the bundled one without
  quiet time and request spacing, so cycles are short and both sides send the same
  requests back to back. The sides alternate over several rounds; the figure is the
  median of the rounds' ratios.
* ``cycle_start_error_p99_ms``: how far cycle starts land from the grid
  ``start + k * period`` at the default 1 s period, from the records' ``mono_s``.
* ``steady_rss_mb``: the gateway's VmRSS sampled once per second over the second half
  of that run (the simulator is another process and not counted).

Usage: ``python -m benchmarks loop`` (or ``make bench``); ``main(["--quick"])`` runs a
shorter version for a smoke test.
"""

import argparse
import contextlib
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import orjson

from bessai_edge.profile import load_profile
from bessai_edge.profile.registry import resolve_profile_path
from bessai_edge.simulator_process import SimulatorProcess
from bessai_edge.spool import SpoolReader

TARGET_CPU_RATIO = 1.25
TARGET_START_ERROR_MS = 5.0
TARGET_RSS_MB = 40.0
PROFILE = "huawei_sun2000"
CPU_PERIOD_S = 0.05  # the shortest SCAN_INTERVAL_S the settings accept
WARMUP_CYCLES = 40
TAIL_CYCLES = 4      # cycles after the second CPU reading, so it falls between two cycles
START_TIMEOUT_S = 30.0


def main(argv):
    if argv[:1] == ["bare-child"]:
        return _bare_child(argv[1:])
    parser = argparse.ArgumentParser(prog="bench_loop")
    parser.add_argument("--profile", default=PROFILE)
    parser.add_argument("--quick", action="store_true",
                        help="fewer cycles: a smoke test, not a measurement")
    args = parser.parse_args(argv)
    cpu_cycles, rounds = (60, 1) if args.quick else (600, 3)
    timing_cycles = 8 if args.quick else 60
    with unpaced_simulator("bench-loop-", args.profile) as (work, fast_profile, host, port):
        _emit(_cpu_ratio(work, fast_profile, host, port, cpu_cycles, rounds))
        for figure in _timing_and_memory(work, args.profile, host, port, timing_cycles):
            _emit(figure)
    return 0


def _emit(figure):
    print(json.dumps(figure), flush=True)


@contextlib.contextmanager
def unpaced_simulator(prefix, profile_name):
    """Yield ``(work dir, unpaced profile path, host, port)`` with the simulator running.

    The simulator serves the bundled profile; the unpaced copy in the temporary work
    directory is the one the measured processes read.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        work = pathlib.Path(work)
        profile = _unpaced_profile(profile_name, work)
        simulator = SimulatorProcess(["--profile", profile_name])
        host, port = simulator.start()
        try:
            yield work, profile, host, port
        finally:
            simulator.stop()


def _unpaced_profile(name, work):
    """Write a copy of profile ``name`` without quiet time and request spacing."""
    document = json.loads(resolve_profile_path(name).read_text(encoding="utf-8"))
    document["device"]["quiet_after_connect_s"] = 0.0
    document["device"]["min_request_interval_s"] = 0.0
    document.pop("$schema", None)
    path = work / f"{name}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def _gateway_env(work, profile, host, port, period_s, run_name):
    spool = work / run_name
    spool.mkdir()
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
        "SITE_ID": "bench", "BESSAI_MODE": "modbus", "INVERTER_IP": host,
        "INVERTER_PORT": str(port), "DRIVER_PROFILE_PATH": profile,
        "SCAN_INTERVAL_S": str(period_s), "SPOOL_DIR": str(spool), "LOG_LEVEL": "warning",
        "HEALTH_LISTEN": f"127.0.0.1:{_free_port()}",  # served between cycles, as installed
    }
    return environ, spool


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bessai():
    script = pathlib.Path(sys.executable).parent / "bessai"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bessai_edge"]


def _cpu_ratio(work, profile_path, host, port, measured, rounds):
    requests = load_profile(profile_path).plan().requests
    blocks = [[request.function, request.address, request.count, request.unit_id]
              for request in requests]
    gateway, bare = [], []
    for number in range(rounds):
        sides = [lambda: _gateway_cpu(work, profile_path, host, port, measured, number),
                 lambda: _bare_cpu(host, port, blocks, measured)]
        if number % 2:
            sides.reverse()  # alternate, so a slow stretch of the machine hits both sides
        results = [side() for side in sides]
        if number % 2:
            results.reverse()
        gateway.append(results[0])
        bare.append(results[1])
    ratios = [g / b for g, b in zip(gateway, bare)]
    return {
        "bench": "loop", "figure": "cpu_per_cycle_ratio",
        "value": round(statistics.median(ratios), 3), "target": TARGET_CPU_RATIO,
        "round_ratios": [round(ratio, 3) for ratio in ratios],
        "gateway_cpu_us_per_cycle": [round(value * 1e6, 1) for value in gateway],
        "bare_pymodbus_cpu_us_per_cycle": [round(value * 1e6, 1) for value in bare],
        "requests_per_cycle": len(requests), "cycles_per_round": measured, "rounds": rounds,
        "period_s": CPU_PERIOD_S,
    }


def _gateway_cpu(work, profile_path, host, port, measured, number):
    """Return the CPU seconds per cycle of ``bessai run`` after its warm-up."""
    environ, spool = _gateway_env(work, profile_path, host, port, CPU_PERIOD_S,
                                  f"cpu-{number}")
    cycles = WARMUP_CYCLES + measured + TAIL_CYCLES
    process = subprocess.Popen([*_bessai(), "run", "--cycles", str(cycles)], env=environ,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first_start = _first_record_start(spool, process)
        window = _sample_cpu(process.pid, first_start, measured)
        _stdout, stderr = process.communicate(timeout=START_TIMEOUT_S + cycles * CPU_PERIOD_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"bessai run failed: {stderr.decode(errors='replace')}")
    starts = [orjson.loads(line)["mono_s"] for _position, line in SpoolReader(str(spool)).read()]
    return _per_cycle(window, starts)


def _first_record_start(spool, process):
    """Wait for the gateway's first record and return its cycle start (``mono_s``)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bessai run exited with {process.returncode} before cycle 1")
        for _position, line in SpoolReader(str(spool)).read():
            return orjson.loads(line)["mono_s"]
        time.sleep(0.01)
    raise RuntimeError(f"bessai run wrote no record within {START_TIMEOUT_S:g} s")


def _bare_cpu(host, port, blocks, measured):
    """Return the CPU seconds per cycle of bare pymodbus reads in a child, after warm-up."""
    cycles = WARMUP_CYCLES + measured + TAIL_CYCLES
    command = [sys.executable, "-m", "benchmarks.bench_loop", "bare-child", host, str(port),
               json.dumps(blocks), str(cycles), str(CPU_PERIOD_S)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=pathlib.Path(__file__).resolve().parent.parent)
    try:
        first_line = process.stdout.readline()
        if not first_line:
            raise RuntimeError(f"bare pymodbus child failed: {process.stderr.read().decode()}")
        window = _sample_cpu(process.pid, float(first_line), measured)
        stdout, stderr = process.communicate(timeout=START_TIMEOUT_S + cycles * CPU_PERIOD_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"bare pymodbus child failed: {stderr.decode(errors='replace')}")
    return _per_cycle(window, json.loads(stdout))


def _bare_child(argv):
    """The baseline, run as a child: plain pymodbus reads of ``blocks`` on a fixed grid.

    Prints the grid's start (monotonic seconds) once the first cycle is due, and every
    cycle's start as a JSON list when it ends, so the parent can count cycles exactly.
    """
    from pymodbus.client import ModbusTcpClient

    host, port, blocks, cycles, period_s = argv
    blocks, cycles, period_s = json.loads(blocks), int(cycles), float(period_s)
    client = ModbusTcpClient(host, port=int(port), timeout=5, retries=0)
    if not client.connect():
        raise RuntimeError(f"cannot connect to the simulator at {host}:{port}")
    reads = [(client.read_holding_registers if function == 3 else client.read_input_registers,
              address, count, unit_id) for function, address, count, unit_id in blocks]
    starts = []
    start = time.monotonic()
    print(start, flush=True)
    for index in range(cycles):
        delay = start + index * period_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        starts.append(time.monotonic())
        for read, address, count, unit_id in reads:
            result = read(address, count=count, device_id=unit_id)
            if result.isError():
                raise RuntimeError(f"bare read of {count} registers at {address} failed: {result}")
    client.close()
    print(json.dumps(starts), flush=True)
    return 0


def _sample_cpu(pid, first_start, measured):
    """Read ``pid``'s CPU time mid-wait after cycle WARMUP and ``measured`` cycles later.

    Returns ``((t1, cpu1), (t2, cpu2))`` in monotonic seconds and CPU seconds.
    """
    samples = []
    for cycle in (WARMUP_CYCLES, WARMUP_CYCLES + measured):
        moment = first_start + (cycle - 0.5) * CPU_PERIOD_S
        delay = moment - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        samples.append((time.monotonic(), _cpu_seconds(pid)))
    return samples


def _cpu_seconds(pid):
    """Return the CPU time of every thread of ``pid`` from the scheduler's nanosecond counts."""
    total_ns = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stream:
                total_ns += int(stream.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended
    return total_ns / 1e9


def _per_cycle(window, starts):
    """Return CPU seconds per cycle over ``window``, counting the cycles that started in it."""
    (t1, cpu1), (t2, cpu2) = window
    cycles = sum(1 for start in starts if t1 < start <= t2)
    if cycles == 0:
        raise RuntimeError("no cycle started between the two CPU readings")
    return (cpu2 - cpu1) / cycles


def _timing_and_memory(work, profile, host, port, cycles):
    environ, spool = _gateway_env(work, profile, host, port, 1.0, "timing")
    process = subprocess.Popen([*_bessai(), "run", "--cycles", str(cycles)], env=environ,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    started = time.monotonic()
    while process.poll() is None:
        rss_kb = _rss_kb(process.pid)
        if rss_kb is not None:
            samples.append((time.monotonic() - started, rss_kb))
        time.sleep(1.0)
    if process.returncode != 0:
        raise RuntimeError(f"bessai run exited with {process.returncode}")
    starts = [orjson.loads(line)["mono_s"] for _position, line in SpoolReader(str(spool)).read()]
    # Cycle 1 starts the grid. A cycle after an overrun (the profile's quiet time after
    # connect makes cycle 1 long) lands on a later grid point, so each start is compared
    # with its nearest grid point.
    errors_ms = sorted(abs((start - starts[0] + 0.5) % 1.0 - 0.5) * 1000 for start in starts[1:])
    p99 = errors_ms[min(len(errors_ms) - 1, round(0.99 * (len(errors_ms) - 1)))]
    yield {
        "bench": "loop", "figure": "cycle_start_error_p99_ms", "value": round(p99, 3),
        "target": TARGET_START_ERROR_MS, "max_ms": round(errors_ms[-1], 3),
        "median_ms": round(statistics.median(errors_ms), 3), "cycles": len(errors_ms),
        "period_s": 1.0,
    }
    half = samples[len(samples) // 2:] or samples
    yield {
        "bench": "loop", "figure": "steady_rss_mb",
        "value": round(max(kb for _t, kb in half) / 1024, 1), "target": TARGET_RSS_MB,
        "first_sample_mb": round(samples[0][1] / 1024, 1) if samples else None,
        "samples": len(half),
    }


def _rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
