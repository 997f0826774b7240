"""Scan loop benchmark: CPU per cycle against bare pymodbus, start-time error, memory.

Every figure comes from ``bessai run`` as a child process polling ``bessai simulate``
over Modbus TCP on 127.0.0.1, both started here:

* ``cpu_per_cycle_ratio``: CPU time (user + system) per cycle of ``bessai run``,
  divided by the CPU time of bare pymodbus ``ModbusTcpClient`` reads of the same
  requests in this process. Start-up cost cancels out: the gateway runs twice, with
  ``--cycles`` N1 and N2, and the difference is divided by N2 - N1. The profile is a
  copy of the bundled one without quiet time and request spacing, so cycles are short
  and both sides send the same requests back to back.
* ``cycle_start_error_p99_ms``: how far cycle starts land from the grid
  ``start + k * period`` at the default 1 s period, from the records' ``mono_s``.
* ``steady_rss_mb``: the gateway's VmRSS sampled once per second over the second half
  of that run (the simulator is another process and not counted).

Usage: ``python -m benchmarks loop`` (or ``make bench``); ``main(["--quick"])`` runs a
shorter version for a smoke test.
"""

import argparse
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


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_loop")
    parser.add_argument("--profile", default=PROFILE)
    parser.add_argument("--quick", action="store_true",
                        help="fewer cycles: a smoke test, not a measurement")
    args = parser.parse_args(argv)
    cpu_cycles = (40, 120) if args.quick else (100, 700)
    timing_cycles = 8 if args.quick else 60
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as work:
        work = pathlib.Path(work)
        fast_profile = _unpaced_profile(args.profile, work)
        simulator = SimulatorProcess(["--profile", args.profile])
        host, port = simulator.start()
        try:
            _emit(_cpu_ratio(work, fast_profile, host, port, cpu_cycles))
            for figure in _timing_and_memory(work, args.profile, host, port, timing_cycles):
                _emit(figure)
        finally:
            simulator.stop()
    return 0


def _emit(figure):
    print(json.dumps(figure), flush=True)


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


def _run_cpu_seconds(environ, cycles):
    """Run ``bessai run --cycles N`` and return its CPU seconds (user + system)."""
    process = subprocess.Popen([*_bessai(), "run", "--cycles", str(cycles)], env=environ,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"bessai run failed: {stderr}")
    return usage.ru_utime + usage.ru_stime


def _cpu_ratio(work, profile_path, host, port, cycles):
    short, long = cycles
    cpu = {}
    for count in (short, long):
        environ, _spool = _gateway_env(work, profile_path, host, port, CPU_PERIOD_S,
                                       f"cpu-{count}")
        cpu[count] = _run_cpu_seconds(environ, count)
    gateway_per_cycle = (cpu[long] - cpu[short]) / (long - short)
    requests = load_profile(profile_path).plan().requests
    bare_per_cycle = _bare_pymodbus_cpu(host, port, requests, long - short, CPU_PERIOD_S)
    return {
        "bench": "loop", "figure": "cpu_per_cycle_ratio",
        "value": round(gateway_per_cycle / bare_per_cycle, 3), "target": TARGET_CPU_RATIO,
        "gateway_cpu_us_per_cycle": round(gateway_per_cycle * 1e6, 1),
        "bare_pymodbus_cpu_us_per_cycle": round(bare_per_cycle * 1e6, 1),
        "requests_per_cycle": len(requests), "cycles": long - short,
    }


def _bare_pymodbus_cpu(host, port, requests, cycles, period_s):
    """Return the CPU seconds per cycle of plain pymodbus reads of ``requests``."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(host, port=port, timeout=5, retries=0)
    if not client.connect():
        raise RuntimeError(f"cannot connect to the simulator at {host}:{port}")
    try:
        def one_cycle():
            for request in requests:
                read = (client.read_holding_registers if request.function == 3
                        else client.read_input_registers)
                result = read(request.address, count=request.count, device_id=request.unit_id)
                if result.isError():
                    raise RuntimeError(f"bare read of {request} failed: {result}")

        for _ in range(20):
            one_cycle()  # warm up, as the gateway's first cycles are excluded too
        # Paced like the gateway: a process that sleeps between cycles finds its caches
        # colder than one that loops, and both sides should pay that alike.
        started = time.process_time()
        deadline = time.monotonic()
        for _ in range(cycles):
            one_cycle()
            deadline += period_s
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return (time.process_time() - started) / cycles
    finally:
        client.close()


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
