"""Decode + safety cost per value: the compiled core against two pure-Python baselines.

One scan cycle decodes a 120-register block holding 85 points (50 one-word and 35
two-word values in ABCD order, scaled, with "not available" checks). It then evaluates
the four default safety limits of ``bessai_edge.alarms``: SOC, battery temperature,
battery power and grid frequency, with four levels each, hysteresis, debounce 3 and
stale after 3 cycles. The cycle is measured three ways in the same run:

- ``core``: ``DecodeTable.decode`` then ``LimitTable.evaluate``, one call each.
- ``pymodbus``: ``ModbusTcpClient.convert_from_registers`` (pymodbus 3.16.1 signature
  ``(registers, data_type, word_order="big", string_encoding="utf-8")``) called once per
  value on a slice of the register list, then the sentinel check, scaling and the same
  limit logic in Python.
- ``struct``: one precompiled ``struct.Struct`` unpacks the whole block (after one
  ``pack`` of the register list into big-endian bytes), then the same Python loop.

Each method starts from the registers as the scan loop holds them and produces values,
qualities and alarm transitions; the run first checks that all three agree over several
cycles. A figure is the minimum over ROUNDS rounds of the time per cycle divided by the
85 values, in nanoseconds. Run with ``python -m benchmarks core`` (``make bench`` runs
every benchmark).
"""

import json
import math
import os
import platform
import struct
import sys
import time
from array import array

from pymodbus.client import ModbusTcpClient

from bessai_edge.core import (LEVELS, QUALITY_NOT_AVAILABLE, QUALITY_OK, DecodeTable, LimitSpec,
                              LimitTable, PointSpec, encode, not_available_words)

COMMAND = "python -m benchmarks core"
ROUNDS = 7
BLOCK_WORDS = 120
CYCLES = {"core": 20000, "pymodbus": 200, "struct": 3000}
DATATYPE = ModbusTcpClient.DATATYPE

# type: (scale, struct code, pymodbus data type, default sentinel as struct returns it)
KINDS = {
    "u16": (0.1, "H", DATATYPE.UINT16, 0xFFFF),
    "s16": (0.1, "h", DATATYPE.INT16, -0x8000),
    "enum16": (1.0, "H", DATATYPE.UINT16, 0xFFFF),
    "u32": (0.001, "I", DATATYPE.UINT32, 0xFFFFFFFF),
    "s32": (0.001, "i", DATATYPE.INT32, -0x80000000),
    "acc32": (0.01, "I", DATATYPE.UINT32, 0),
}
# 30 u16 + 16 s16 + 4 enum16 + 15 u32 + 15 s32 + 5 acc32 = 85 points in 120 words.
LAYOUT = ["u16"] * 30 + ["s16"] * 16 + ["enum16"] * 4 + ["u32"] * 15 + ["s32"] * 15 + ["acc32"] * 5

# The default limits of bessai_edge.alarms (5 kW rated power, 50 Hz grid), each on one
# point of the block: (point, low_trip, low_warn, high_warn, high_trip, hysteresis, value).
# The values put SOC and temperature past a warning level, so alarms are raised.
LIMITS = (
    ("soc_pct", 0, 5.0, 10.0, 98.0, math.nan, 1.0, 99.0),
    ("battery_temp_c", 30, -10.0, 0.0, 45.0, 55.0, 2.0, 47.5),
    ("battery_power_kw", 65, -5.5, -5.0, 5.0, 5.5, 0.1, -2.5),
    ("grid_frequency_hz", 1, 48.5, 49.5, 50.5, 51.5, 0.05, 50.0),
)
DEBOUNCE = 3
STALE_CYCLES = 3


def build_block():
    """Return (points, registers) of the block: plausible values and a few sentinels."""
    fixed_values = {limit[1]: limit[7] for limit in LIMITS}
    points = []
    registers = []
    for i, type_name in enumerate(LAYOUT):
        scale = KINDS[type_name][0]
        points.append(PointSpec(f"p{i}", type_name, "ABCD", len(registers), scale=scale))
        if i % 17 == 5:
            registers.extend(not_available_words(type_name))
            continue
        sign = -1 if type_name.startswith("s") and i % 2 else 1
        value = fixed_values.get(i, sign * (i * 37 % 900 + 1) * scale)
        registers.extend(encode(type_name, "ABCD", value, scale=scale))
    assert len(registers) == BLOCK_WORDS, len(registers)
    return points, registers


def build_limits():
    """Return the LimitSpecs of LIMITS."""
    return [LimitSpec(name, index, low_trip, low_warn, high_warn, high_trip, hysteresis,
                      DEBOUNCE, STALE_CYCLES)
            for name, index, low_trip, low_warn, high_warn, high_trip, hysteresis, _ in LIMITS]


class PythonLimits:
    """The core's limit logic in plain Python: levels, hysteresis, debounce, stale."""

    def __init__(self, limits):
        self.limits = [(spec.name, spec.value_index,
                        (spec.low_trip, spec.low_warn, spec.high_warn, spec.high_trip),
                        spec.hysteresis, max(1, spec.debounce), spec.stale_cycles)
                       for spec in limits]
        self.active = set()
        self.pending = {}
        self.bad_cycles = dict.fromkeys([spec.name for spec in limits], 0)

    def evaluate(self, values, quality):
        transitions = []
        for name, index, thresholds, hysteresis, debounce, stale_cycles in self.limits:
            if quality[index] != QUALITY_OK:
                self.bad_cycles[name] += 1
                if stale_cycles and self.bad_cycles[name] >= stale_cycles \
                        and (name, "stale") not in self.active:
                    self.active.add((name, "stale"))
                    transitions.append((name, "stale", True))
                continue
            self.bad_cycles[name] = 0
            if (name, "stale") in self.active:
                self.active.discard((name, "stale"))
                transitions.append((name, "stale", False))
            value = values[index]
            for level, threshold in zip(LEVELS, thresholds):
                if threshold != threshold:  # NaN: level off
                    continue
                key = (name, level)
                high = level.startswith("high")
                if key in self.active:
                    change = value < threshold - hysteresis if high else value > threshold + hysteresis
                else:
                    change = value >= threshold if high else value <= threshold
                if not change:
                    self.pending[key] = 0
                    continue
                self.pending[key] = self.pending.get(key, 0) + 1
                if self.pending[key] >= debounce:
                    self.pending[key] = 0
                    raised = key not in self.active
                    if raised:
                        self.active.add(key)
                    else:
                        self.active.discard(key)
                    transitions.append((name, level, raised))
        return transitions


def make_core(points, limits, words):
    """Return run(cycles) -> last (values, quality, transitions) for the compiled core."""
    decode = DecodeTable(points, BLOCK_WORDS).decode
    evaluate = LimitTable(limits).evaluate
    status = bytes(1)

    def run(cycles):
        for _ in range(cycles):
            values, quality = decode(words, status)
            transitions = evaluate(values, quality)
        return values, quality, transitions
    return run


def python_decoder(values_and_quality_of):
    """Wrap a function registers -> (values, quality) with the Python limit logic."""
    def make(points, limits, registers):
        limit_logic = PythonLimits(limits)
        decode = values_and_quality_of(points)

        def run(cycles):
            for _ in range(cycles):
                values, quality = decode(registers)
                transitions = limit_logic.evaluate(values, quality)
            return values, quality, transitions
        return run
    return make


@python_decoder
def make_pymodbus(points):
    """Decode each value with pymodbus's convert_from_registers."""
    plan = [(point.index, KINDS[point.type][2], KINDS[point.type][2].value[1],
             KINDS[point.type][3], point.scale) for point in points]
    convert = ModbusTcpClient.convert_from_registers

    def decode(registers):
        values = []
        quality = []
        for index, data_type, words, sentinel, scale in plan:
            raw = convert(registers[index:index + words], data_type)
            if raw == sentinel:
                values.append(math.nan)
                quality.append(QUALITY_NOT_AVAILABLE)
            else:
                values.append(raw * scale)
                quality.append(QUALITY_OK)
        return values, quality
    return decode


@python_decoder
def make_struct(points):
    """Decode the block with one precompiled struct.Struct."""
    block = struct.Struct(">" + "".join(KINDS[point.type][1] for point in points))
    pack = struct.Struct(f">{BLOCK_WORDS}H").pack
    plan = [(KINDS[point.type][3], point.scale) for point in points]

    def decode(registers):
        values = []
        quality = []
        for raw, (sentinel, scale) in zip(block.unpack(pack(*registers)), plan):
            if raw == sentinel:
                values.append(math.nan)
                quality.append(QUALITY_NOT_AVAILABLE)
            else:
                values.append(raw * scale)
                quality.append(QUALITY_OK)
        return values, quality
    return decode


def check_agreement(runs):
    """Raise AssertionError unless every method gives the same values and transitions."""
    results = {name: [run(1) for _ in range(DEBOUNCE + 1)] for name, run in runs.items()}
    reference = results["core"]
    assert any(cycle[2] for cycle in reference), "the block raises no alarm"
    for name, cycles in results.items():
        for (values, quality, transitions), expected in zip(cycles, reference):
            assert list(quality) == list(expected[1]), name
            for got, want in zip(values, expected[0]):
                assert (math.isnan(got) and math.isnan(want)) or math.isclose(got, want), name
            assert sorted(transitions) == sorted(expected[2]), name


def time_per_cycle(run, cycles):
    """Return the minimum over ROUNDS rounds of the seconds per cycle of run(cycles)."""
    best = math.inf
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run(cycles)
        best = min(best, (time.perf_counter() - start) / cycles)
    return best


def machine():
    """Return the CPU model name, the number of CPUs and the Python version."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as stream:
            for line in stream:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main(argv):
    points, registers = build_block()
    limits = build_limits()
    words = array("H", registers)
    makers = {
        "core": lambda: make_core(points, limits, words),
        "pymodbus": lambda: make_pymodbus(points, limits, registers),
        "struct": lambda: make_struct(points, limits, registers),
    }
    check_agreement({name: make() for name, make in makers.items()})

    nanoseconds = {name: time_per_cycle(make(), CYCLES[name]) * 1e9 / len(points)
                   for name, make in makers.items()}
    common = {"benchmark": "core", "points": len(points), "registers": BLOCK_WORDS,
              "limits": len(limits), "machine": machine(), "command": COMMAND}
    for name, value in nanoseconds.items():
        print(json.dumps({**common, "figure": f"{name}_ns_per_value", "value": round(value, 2),
                          "unit": "ns/value"}))
    for baseline in ("pymodbus", "struct"):
        print(json.dumps({**common, "figure": f"speedup_vs_{baseline}",
                          "value": round(nanoseconds[baseline] / nanoseconds["core"], 1),
                          "unit": "x"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
