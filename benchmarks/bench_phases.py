"""Thread CPU time per step of a cycle, for ``bessai run`` and for bare pymodbus.

A diagnostic for the scan loop benchmark, not a figure with a target. Each side runs as
a child process at a 0.05 s period against the same simulator and unpaced profile as
``bench_loop``. The child reads its thread CPU time (``time.thread_time_ns``) before
and after each step of every cycle after the warm-up and prints the means per cycle
as JSON. Steps nest: ``poll`` includes ``link reads``, and ``cycle`` includes every
gateway step but ``wait``. Each reading of the clock is a system call (about 0.25 µs
in a warm loop on the development machine), and the wrappers add a Python call per
step, so the gateway's figures are slightly high.

Usage: ``python -m benchmarks.bench_phases``.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

from benchmarks.bench_loop import CPU_PERIOD_S, PROFILE, _gateway_env, unpaced_simulator
from bessai_edge.profile import load_profile

WARMUP = 40
MEASURED = 400


def main(argv):
    if argv[:1] == ["gateway-child"]:
        return _gateway_child()
    if argv[:1] == ["bare-child"]:
        return _bare_child(*argv[1:])
    with unpaced_simulator("bench-phases-", PROFILE) as (work, profile, host, port):
        environ, _spool = _gateway_env(work, profile, host, port, CPU_PERIOD_S, "phases")
        gateway = _child(["gateway-child"], environ)
        blocks = [[request.function, request.address, request.count, request.unit_id]
                  for request in load_profile(profile).plan().requests]
        bare = _child(["bare-child", host, str(port), json.dumps(blocks)], os.environ)
    for side, steps in (("gateway", gateway), ("bare", bare)):
        print(json.dumps({"bench": "phases", "side": side, "cycles": MEASURED,
                          "period_s": CPU_PERIOD_S, "cpu_us_per_cycle": steps}))
    return 0


def _child(arguments, environ):
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench_phases", *arguments],
                            env=environ, capture_output=True, check=True,
                            cwd=pathlib.Path(__file__).resolve().parent.parent)
    return json.loads(result.stdout.splitlines()[-1])


class _Steps:
    """Thread CPU time per named step, counted only while ``on`` is set."""

    def __init__(self):
        self.totals = {}
        self.on = False

    def wrap(self, owner, attribute, name):
        original = getattr(owner, attribute)
        clock = time.thread_time_ns

        def timed(*args, **kwargs):
            started = clock()
            try:
                return original(*args, **kwargs)
            finally:
                if self.on:
                    self.totals[name] = self.totals.get(name, 0) + clock() - started
        setattr(owner, attribute, timed)

    def per_cycle_us(self):
        return {name: round(total / MEASURED / 1000, 1) for name, total in self.totals.items()}


def _gateway_child():
    from bessai_edge import link, poller, records, scanloop
    from bessai_edge.cli import main as bessai_main
    from bessai_edge.spool import writer

    steps = _Steps()
    for owner, attribute, name in (
            (scanloop.ScanLoop, "_wait_until", "wait"),
            (scanloop.ScanLoop, "run_cycle", "cycle"),
            (poller.DevicePoller, "poll", "poll"),
            (link.DeviceLink, "read_checked", "link reads"),
            (poller.DevicePoller, "_finish", "decode, limits, result"),
            (records.RecordFactory, "build", "record"),
            (writer.Spool, "append", "spool append"),
            (scanloop.ScanLoop, "_update_state", "state")):
        steps.wrap(owner, attribute, name)
    run_cycle = scanloop.ScanLoop.run_cycle

    def counting_cycle(loop, number, *args, **kwargs):
        steps.on = WARMUP < number <= WARMUP + MEASURED
        return run_cycle(loop, number, *args, **kwargs)
    scanloop.ScanLoop.run_cycle = counting_cycle
    status = bessai_main(["run", "--cycles", str(WARMUP + MEASURED + 1)])
    print(json.dumps(steps.per_cycle_us()))
    return status


def _bare_child(host, port, blocks):
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(host, port=int(port), timeout=5, retries=0)
    if not client.connect():
        raise RuntimeError(f"cannot connect to the simulator at {host}:{port}")
    reads = [(client.read_holding_registers if function == 3 else client.read_input_registers,
              address, count, unit_id) for function, address, count, unit_id in json.loads(blocks)]
    clock = time.thread_time_ns
    totals = {"sleep": 0, "reads": 0}
    start = time.monotonic()
    for index in range(WARMUP + MEASURED + 1):
        before_sleep = clock()
        delay = start + index * CPU_PERIOD_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        before_reads = clock()
        for read, address, count, unit_id in reads:
            read(address, count=count, device_id=unit_id)
        if index > WARMUP:
            totals["sleep"] += before_reads - before_sleep
            totals["reads"] += clock() - before_reads
    client.close()
    print(json.dumps({name: round(total / MEASURED / 1000, 1) for name, total in totals.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
