"""Spool append cost: throughput, time added to a scan cycle, and bytes per record.

Each figure is measured against a baseline in the same run: the bare minimum an
append needs, ``orjson.dumps`` plus one ``os.write`` to a file opened with O_APPEND
(and one ``os.fdatasync`` for the fsync-every-record figure). Run with
``python -m benchmarks spool`` or ``python -m benchmarks.bench_spool --dir DIR`` to
measure on another file system (the SD card of a gateway, say).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import orjson

from bessai_edge.records import RecordFactory
from bessai_edge.spool import MIB, Spool

COMMAND = "python -m benchmarks spool"
ROUNDS = 3

# A Huawei SUN2000 inverter with a LUNA2000 battery: 25 canonical values, as the
# scan loop records them each cycle.
HUAWEI_VALUES = {
    "soc_pct": 72.4, "soh_pct": 98.0, "battery_power_kw": -1.234, "battery_voltage_v": 612.3,
    "battery_current_a": -2.01, "battery_temp_c": 35.2, "battery_charge_kwh_total": 1834.52,
    "battery_discharge_kwh_total": 1702.18, "battery_status": 2.0,
    "battery_max_charge_power_kw": 5.0, "battery_max_discharge_power_kw": 5.0,
    "pv_power_kw": 4.812, "pv1_voltage_v": 402.1, "pv1_current_a": 6.02, "pv2_voltage_v": 398.7,
    "pv2_current_a": 5.97, "ac_power_kw": 3.571, "reactive_power_kvar": 0.012,
    "grid_frequency_hz": 50.01, "grid_voltage_v": 229.8, "power_factor": 0.999,
    "inverter_temp_c": 41.3, "energy_yield_kwh_total": 23817.44, "device_status": 512.0,
    "meter_power_kw": -0.812,
}


def huawei_record(cycle):
    """Return one record of a Huawei site as ``records.RecordFactory`` builds it."""
    factory = RecordFactory("cl-santiago-0042", "inverter", "huawei_sun2000_luna2000",
                            "5b1e4c2a-7d3f-4e8a-9c61-0f2d8b7a3e15")
    return factory.build(
        cycle=cycle, wall_ms=1_735_689_600_000 + cycle * 1000, monotonic_s=1234.5 + cycle,
        cycle_ms=38.412, state="ok", error=None, values=dict(HUAWEI_VALUES),
        quality=dict.fromkeys(HUAWEI_VALUES, "ok"), alarms=[], alarm_changes=[])


class SteppedClock:
    """Monotonic clock that advances one scan period per call to ``step``."""

    def __init__(self, period_s):
        self.now = 0.0
        self.period_s = period_s

    def __call__(self):
        return self.now

    def step(self):
        self.now += self.period_s


def time_bare_appends(directory, records, sync_every=0):
    """Return per-record durations (ns) of dumps + one O_APPEND write.

    With ``sync_every`` N above 0, every Nth record also gets an fdatasync.
    """
    path = os.path.join(directory, "bare.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    durations = []
    try:
        for seq in range(1, records + 1):
            record = huawei_record(seq)
            start = time.perf_counter_ns()
            record["seq"] = seq
            os.write(fd, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            if sync_every and seq % sync_every == 0:
                os.fdatasync(fd)
            durations.append(time.perf_counter_ns() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    return durations


def time_spool_appends(directory, records, fsync_interval_s, clock=None):
    """Return per-record durations (ns) of ``Spool.append`` and the spool's stats."""
    spool_dir = tempfile.mkdtemp(prefix="spool-", dir=directory)
    options = {"clock": clock} if clock else {}
    spool = Spool(spool_dir, fsync_interval_s=fsync_interval_s, **options).open()
    durations = []
    try:
        for cycle in range(1, records + 1):
            record = huawei_record(cycle)
            if clock:
                clock.step()
            start = time.perf_counter_ns()
            spool.append(record)
            durations.append(time.perf_counter_ns() - start)
        figures = spool.stats()
    finally:
        spool.close()
        shutil.rmtree(spool_dir)
    return durations, figures


def summarize(durations):
    ordered = sorted(durations)
    return {
        "mean_us": round(statistics.fmean(ordered) / 1000, 2),
        "p50_us": round(ordered[len(ordered) // 2] / 1000, 2),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] / 1000, 2),
        "max_us": round(ordered[-1] / 1000, 2),
    }


def rate_figure(name, directory, records, fsync_interval_s):
    """Measure spool and baseline in alternating rounds and keep each one's fastest round."""
    spool_times, bare_times = [], []
    for _round in range(ROUNDS):
        bare = time_bare_appends(directory, records, sync_every=int(fsync_interval_s == 0))
        durations, figures = time_spool_appends(directory, records, fsync_interval_s)
        bare_times.append(sum(bare) / 1e9)
        spool_times.append(sum(durations) / 1e9)
    spool_rate = records / min(spool_times)
    bare_rate = records / min(bare_times)
    return {
        "figure": name,
        "records": records,
        "rounds": ROUNDS,
        "records_per_s": round(spool_rate),
        "baseline_records_per_s": round(bare_rate),
        "ratio_to_baseline": round(spool_rate / bare_rate, 3),
        "fsyncs_per_round": figures["fsyncs"],
        "directory": directory,
        "command": COMMAND,
    }


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_spool", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="directory on the file system to measure (default: the temp dir)")
    parser.add_argument("--records", type=int, default=50_000,
                        help="records per throughput run (default: 50000)")
    parser.add_argument("--synced-records", type=int, default=2_000,
                        help="records for the fsync-every-record run (default: 2000)")
    parser.add_argument("--cycles", type=int, default=30_000,
                        help="1 Hz cycles simulated for the per-cycle figure (default: 30000)")
    args = parser.parse_args(argv)
    directory = os.path.abspath(args.dir)

    emit(rate_figure("spool_append_rate_default_policy", directory, args.records,
                     fsync_interval_s=5))
    emit(rate_figure("spool_append_rate_fsync_every_record", directory, args.synced_records,
                     fsync_interval_s=0))

    # At 1 Hz the default policy syncs every 5th cycle and rotates every 16 MiB. The
    # stepped clock makes those decisions as at 1 Hz while the calls run back to back.
    # The baseline syncs every 5th record too, so the ratio shows the spool's own overhead.
    bare = summarize(time_bare_appends(directory, args.cycles, sync_every=5))
    durations, figures = time_spool_appends(directory, args.cycles, fsync_interval_s=5,
                                            clock=SteppedClock(1.0))
    spool_cost = summarize(durations)
    emit({"figure": "spool_time_added_per_cycle_1hz", "cycles": args.cycles,
          **spool_cost, "baseline_sync_every_5th": bare,
          "ratio_mean_to_baseline": round(spool_cost["mean_us"] / bare["mean_us"], 3),
          "ratio_p99_to_baseline": round(spool_cost["p99_us"] / bare["p99_us"], 3),
          "fsyncs": figures["fsyncs"], "segments": figures["segments"],
          "directory": directory, "command": COMMAND})

    record = huawei_record(1)
    record["seq"] = 86_400
    size = len(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    emit({"figure": "spool_bytes_per_record_huawei", "bytes": size,
          "values": len(HUAWEI_VALUES), "bytes_per_value": round(size / len(HUAWEI_VALUES), 1),
          "mib_per_day_at_1hz": round(size * 86_400 / MIB, 1),
          "days_in_default_cap_at_1hz": round(512 * MIB / (size * 86_400), 1),
          "command": COMMAND})
    return 0


def emit(figure):
    sys.stdout.write(orjson.dumps(figure).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
