"""Health server benchmark: how late ``serve_until`` returns while clients attack it.

The scan loop waits for its next cycle in ``HealthServer.serve_until(deadline)``, so
the time by which that call overshoots its deadline is the delay clients can add to a
cycle start. This benchmark serves from this process, as the scan loop does, and
calls ``serve_until`` with short deadlines back to back:

* ``serve_until_late_p99_ms``: 99th percentile of the overshoot under attack, against
  the same figure with no client at all (the selector's own wake-up jitter). The
  attack runs in a child process: 300 idle connections, 20 clients sending one byte
  a second, 1 MB requests, random bytes and a scraper fetching ``/metrics`` in a loop.
* ``metrics_render_us``: one ``/metrics`` page (prometheus_client, one device with 25
  values), against one ``/health`` JSON document of the same state.

Usage: ``python -m benchmarks health``; ``main(["--quick"])`` runs a shorter version.
"""

import argparse
import json
import select
import statistics
import subprocess
import sys
import textwrap
import time

import orjson

from bessai_edge.service import health, metrics
from bessai_edge.state import DeviceState, GatewayState

SLICE_S = 0.02
FIELDS = ("soc_pct", "battery_power_kw", "battery_temp_c", "pv_power_kw", "grid_power_kw",
          "grid_frequency_hz", "battery_voltage_v", "battery_current_a", "inverter_temp_c",
          "daily_energy_kwh", "total_energy_kwh", "phase_a_voltage_v", "phase_b_voltage_v",
          "phase_c_voltage_v", "phase_a_current_a", "phase_b_current_a", "phase_c_current_a",
          "reactive_power_kvar", "power_factor", "battery_soh_pct", "charge_energy_kwh",
          "discharge_energy_kwh", "max_charge_power_kw", "max_discharge_power_kw",
          "insulation_resistance_mohm")

ATTACKER = textwrap.dedent("""
    import os, socket, sys, threading, time
    port = int(sys.argv[1])
    stop = threading.Event()

    def connect():
        return socket.create_connection(("127.0.0.1", port), timeout=5)

    def flood():
        idle_connections = []
        for _ in range(300):
            try:
                idle_connections.append(connect())
            except OSError:
                pass
        stop.wait()

    def slow():
        while not stop.is_set():
            try:
                with connect() as sock:
                    for byte in b"GET /metrics HTTP/1.1\\r\\n\\r\\n":
                        if stop.wait(1.0):
                            return
                        sock.sendall(bytes([byte]))
            except OSError:
                pass

    def repeat(payload):
        def run():
            while not stop.is_set():
                try:
                    with connect() as sock:
                        sock.sendall(payload())
                        sock.recv(65536)
                except OSError:
                    pass
        return run

    big = b"GET /health HTTP/1.1\\r\\nX: " + b"a" * 1_000_000 + b"\\r\\n\\r\\n"
    threads = [threading.Thread(target=flood)]
    threads += [threading.Thread(target=slow) for _ in range(20)]
    threads += [threading.Thread(target=repeat(lambda: big)),
                threading.Thread(target=repeat(lambda: os.urandom(512))),
                threading.Thread(target=repeat(lambda: b"GET /metrics HTTP/1.1\\r\\n\\r\\n"))]
    for thread in threads:
        thread.daemon = True
        thread.start()
    print("attacking", flush=True)
    sys.stdin.readline()
    stop.set()
""")


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_health")
    parser.add_argument("--quick", action="store_true",
                        help="fewer slices and renders: a smoke test, not a measurement")
    args = parser.parse_args(argv)
    slices = 100 if args.quick else 1500
    renders = 200 if args.quick else 2000
    state = _state()
    server = health.HealthServer(("127.0.0.1", 0), state)
    try:
        idle = _lateness(server, slices)
        attack = _under_attack(server, slices)
    finally:
        server.close()
    idle_p99 = _p99(idle) * 1000
    attack_p99 = _p99(attack) * 1000
    _emit({"figure": "serve_until_late_p99_ms", "attack": round(attack_p99, 3),
           "baseline_idle": round(idle_p99, 3), "ratio": round(attack_p99 / idle_p99, 2),
           "slices": slices, "slice_ms": SLICE_S * 1000})
    metrics_us, health_us = _render_costs(state, renders)
    _emit({"figure": "metrics_render_us", "metrics": round(metrics_us, 1),
           "baseline_health_json": round(health_us, 1),
           "ratio": round(metrics_us / health_us, 2)})
    return 0


def _state():
    state = GatewayState(site="bench-site", version="bench")
    device = DeviceState(name="inverter", profile="huawei_sun2000", endpoint="127.0.0.1:502",
                         unit_id=1, state="ok")
    device.values = {field: float(index) for index, field in enumerate(FIELDS)}
    device.quality_counts.update({"ok": 25000})
    device.request_errors.update({"timeout": 3})
    state.devices.append(device)
    state.cycles = 1000
    state.last_cycle_wall_ms = int(time.time() * 1000)
    state.last_cycle_monotonic = time.monotonic()
    state.spool = {"bytes": 123456, "segments": 3, "records_appended": 1000,
                   "records_dropped": 0, "dropping": False}
    return state


def _lateness(server, slices):
    late = []
    for _ in range(slices):
        deadline = time.monotonic() + SLICE_S
        server.serve_until(deadline)
        late.append(time.monotonic() - deadline)
    return late


def _under_attack(server, slices):
    attacker = subprocess.Popen([sys.executable, "-c", ATTACKER, str(server.address[1])],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        # Serve while the attacker starts, so its connections do not pile up unserved.
        while not _ready(attacker):
            server.serve_until(time.monotonic() + SLICE_S)
        _lateness(server, 50)  # let the flood reach the connection limit
        return _lateness(server, slices)
    finally:
        attacker.stdin.write("stop\n")
        attacker.stdin.flush()
        attacker.wait(30)


def _ready(process):
    readable, _, _ = select.select([process.stdout], [], [], 0)
    return bool(readable) and process.stdout.readline().strip() == "attacking"


def _render_costs(state, renders):
    registry = metrics.make_registry(state)
    metrics_s = _best_of(lambda: metrics.render(registry), renders)
    health_s = _best_of(lambda: orjson.dumps(health.health_document(state, time.monotonic()),
                                             option=orjson.OPT_INDENT_2), renders)
    return metrics_s * 1e6, health_s * 1e6


def _best_of(function, count, rounds=5):
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            function()
        best = min(best, (time.perf_counter() - started) / count)
    return best


def _p99(values):
    return statistics.quantiles(values, n=100)[98]


def _emit(figure):
    print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
