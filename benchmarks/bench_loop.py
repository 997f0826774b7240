"""Scan loop benchmark: CPU per cycle against bare pymodbus, start-time error, memory.

Every figure comes from ``bessai run`` as a child process polling ``bessai simulate``
over Modbus TCP on 127.0.0.1, both started here:

* ``cpu_per_cycle_ratio``: CPU time per cycle of ``bessai run`` divided by that of a
  bare pymodbus ``ModbusTcpClient`` reading the same requests. Both sides are child
  processes that run at the same time, each on its own fixed grid of the monotonic
  clock at the same period. The bare grid starts half a period after the gateway's,
  so the two take turns with the simulator, and a slow stretch of the machine hits
  both alike.
  This process reads both children's CPU time (``/proc/PID/task/*/schedstat``, in
  nanoseconds) in the same instant, a quarter period after a gateway cycle start, once
  ``WARMUP_CYCLES`` cycles into the bare grid and again ``N`` cycles later, so
  start-up and warm-up are left out. Each side's CPU time is divided by the cycles
  that started in between, taken from the records' ``mono_s`` and from the start
  times that the bare child prints when it ends. The profile is a copy of the bundled
  one without quiet time and request spacing, so cycles are short and both sides send
  the same requests back to back. The figure is the median of several rounds.
* ``cpu_per_cycle_ratio_device_apart``: the same with the simulator pinned to one CPU
  and both measured processes to the other, as when the device is another machine: the
  simulator then shares no CPU cache with them, and each reply wakes an idle CPU.
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
LEAD_CYCLES = 10     # gateway cycles before the bare grid starts: its start-up is done
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
    if len(os.sched_getaffinity(0)) >= 2:
        _emit(_device_apart(args.profile, cpu_cycles, rounds))
    return 0


def _emit(figure):
    print(json.dumps(figure), flush=True)


@contextlib.contextmanager
def unpaced_simulator(prefix, profile_name, cpu=None):
    """Yield ``(work dir, unpaced profile path, host, port)`` with the simulator running.

    The simulator serves the bundled profile; the unpaced copy in the temporary work
    directory is the one the measured processes read. ``cpu`` pins every thread of the
    simulator to that CPU.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        work = pathlib.Path(work)
        profile = _unpaced_profile(profile_name, work)
        simulator = SimulatorProcess(["--profile", profile_name])
        host, port = simulator.start()
        try:
            if cpu is not None:
                for task in os.listdir(f"/proc/{simulator.process.pid}/task"):
                    os.sched_setaffinity(int(task), {cpu})
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


def _cpu_ratio(work, profile_path, host, port, measured, rounds, figure="cpu_per_cycle_ratio"):
    requests = load_profile(profile_path).plan().requests
    blocks = [[request.function, request.address, request.count, request.unit_id]
              for request in requests]
    gateway, bare = [], []
    for number in range(rounds):
        gateway_s, bare_s = _paired_round(work, profile_path, host, port, blocks, measured,
                                          f"{figure}-{number}")
        gateway.append(gateway_s)
        bare.append(bare_s)
    ratios = [g / b for g, b in zip(gateway, bare)]
    return {
        "bench": "loop", "figure": figure,
        "value": round(statistics.median(ratios), 3), "target": TARGET_CPU_RATIO,
        "round_ratios": [round(ratio, 3) for ratio in ratios],
        "gateway_cpu_us_per_cycle": [round(value * 1e6, 1) for value in gateway],
        "bare_pymodbus_cpu_us_per_cycle": [round(value * 1e6, 1) for value in bare],
        "requests_per_cycle": len(requests), "cycles_per_round": measured, "rounds": rounds,
        "period_s": CPU_PERIOD_S,
    }


def _device_apart(profile_name, measured, rounds):
    """Measure the CPU ratio with the simulator on one CPU and the measured sides on another.

    The figure has no target of its own: the target applies to ``cpu_per_cycle_ratio``.
    """
    saved_affinity = os.sched_getaffinity(0)
    ours, simulators = sorted(saved_affinity)[:2]
    os.sched_setaffinity(0, {ours})  # the children inherit it
    try:
        with unpaced_simulator("bench-loop-apart-", profile_name, cpu=simulators) as (
                work, fast_profile, host, port):
            figure = _cpu_ratio(work, fast_profile, host, port, measured, rounds,
                                figure="cpu_per_cycle_ratio_device_apart")
    finally:
        os.sched_setaffinity(0, saved_affinity)
    del figure["target"]
    return figure


def _paired_round(work, profile_path, host, port, blocks, measured, run_name):
    """Run ``bessai run`` and the bare child at once; return their CPU seconds per cycle.

    The bare grid starts ``LEAD_CYCLES`` gateway periods after the gateway's first
    cycle, offset by half a period. Both readings fall a quarter period after a
    gateway cycle start, so both sides are waiting for their next cycle.
    """
    environ, spool = _gateway_env(work, profile_path, host, port, CPU_PERIOD_S, run_name)
    bare_cycles = WARMUP_CYCLES + measured + TAIL_CYCLES
    gateway_cycles = LEAD_CYCLES + bare_cycles + 1
    gateway = subprocess.Popen([*_bessai(), "run", "--cycles", str(gateway_cycles)],
                               env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bare = None
    try:
        bare_start = _first_record_start(spool, gateway) + (LEAD_CYCLES + 0.5) * CPU_PERIOD_S
        bare = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_loop", "bare-child", host, str(port),
             json.dumps(blocks), str(bare_cycles), str(CPU_PERIOD_S), repr(bare_start)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=pathlib.Path(__file__).resolve().parent.parent)
        windows = _sample_cpu((gateway.pid, bare.pid), bare_start - CPU_PERIOD_S / 4, measured)
        timeout = START_TIMEOUT_S + gateway_cycles * CPU_PERIOD_S
        bare_out, bare_err = bare.communicate(timeout=timeout)
        _out, gateway_err = gateway.communicate(timeout=timeout)
    finally:
        for process in (gateway, bare):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    if bare.returncode != 0:
        raise RuntimeError(f"bare pymodbus child failed: {bare_err.decode(errors='replace')}")
    if gateway.returncode != 0:
        raise RuntimeError(f"bessai run failed: {gateway_err.decode(errors='replace')}")
    gateway_starts = [orjson.loads(line)["mono_s"]
                      for _position, line in SpoolReader(str(spool)).read()]
    return _per_cycle(windows[0], gateway_starts), _per_cycle(windows[1], json.loads(bare_out.splitlines()[-1]))


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


def _bare_child(argv):
    """The baseline, run as a child: plain pymodbus reads of ``blocks`` on a fixed grid.

    The grid starts at the monotonic time given as the last argument, or once
    connected. The child prints that start first and, when it ends, every cycle's
    start as a JSON list, so the parent can count cycles exactly.
    """
    from pymodbus.client import ModbusTcpClient

    host, port, blocks, cycles, period_s, *start = argv
    blocks, cycles, period_s = json.loads(blocks), int(cycles), float(period_s)
    client = ModbusTcpClient(host, port=int(port), timeout=5, retries=0)
    if not client.connect():
        raise RuntimeError(f"cannot connect to the simulator at {host}:{port}")
    reads = [(client.read_holding_registers if function == 3 else client.read_input_registers,
              address, count, unit_id) for function, address, count, unit_id in blocks]
    start = float(start[0]) if start else time.monotonic()
    print(start, flush=True)
    starts = []
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


def _sample_cpu(pids, moment, measured):
    """Read the CPU time of ``pids`` at ``moment + WARMUP_CYCLES`` periods and N later.

    Returns one ``((t1, cpu1), (t2, cpu2))`` per pid, in monotonic and CPU seconds.
    """
    windows = [[] for _pid in pids]
    for cycle in (WARMUP_CYCLES, WARMUP_CYCLES + measured):
        delay = moment + cycle * CPU_PERIOD_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        for window, pid in zip(windows, pids):
            window.append((now, _cpu_seconds(pid)))
    return windows


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
        if rss_kb:  # None once the process is gone, 0 while it is still being exec()ed
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
