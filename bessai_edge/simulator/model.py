"""A plausible home or small commercial battery site, in canonical units and signs.

Time is compressed: one simulated day lasts ``day_seconds`` real seconds, and the
battery integrates power over simulated hours, so a demo shows a whole charge and
discharge in minutes. PV follows a half-sine between 06:00 and 18:00, the load has a
base and an evening peak, and the battery covers the difference (self-consumption)
within its power rating while its state of charge stays between 20 and 95 %. Cell
temperature relaxes towards ambient plus a rise proportional to the absolute power.
The battery voltage rises linearly with the SOC around the bank's nominal voltage, from
90 % of it when empty to 110 % when full. The PV string voltage is 0 while PV power is 0,
and otherwise rises from 90 % to 100 % of ``pv_mpp_voltage_v`` with the PV power.

Values use the canonical record fields: battery power and current positive while
charging, grid power positive on import. ``pv_voltage_v`` is not a canonical field: it
feeds the DC voltage of MPP trackers, which no profile maps to a field.
"""

import dataclasses
import math
import random

SOC_MIN_PCT = 20.0
SOC_MAX_PCT = 95.0
AMBIENT_C = 25.0
TEMPERATURE_RISE_C_PER_KW = 2.0
TEMPERATURE_TIME_CONSTANT_H = 0.5   # simulated hours
NOMINAL_FREQUENCY_HZ = 50.0         # Chile and most of LatAm outside Brazil's 60 Hz regions


@dataclasses.dataclass
class SiteRating:
    """Sizes of the simulated site."""

    capacity_kwh: float = 10.0
    max_charge_kw: float = 5.0
    max_discharge_kw: float = 5.0
    pv_peak_kw: float = 6.0
    base_load_kw: float = 0.8
    evening_load_kw: float = 2.5
    battery_nominal_v: float = 400.0   # an estimate for a high-voltage bank (LUNA2000, BYD HVS)
    pv_mpp_voltage_v: float = 380.0    # an estimate for a residential string at full sun


class BatteryModel:
    """State of the simulated site, advanced by ``advance(elapsed_s)``."""

    def __init__(self, rating=None, day_seconds=600.0, seed=1, start_hour=9.0,
                 initial_soc_pct=55.0):
        self.rating = rating or SiteRating()
        self.day_seconds = day_seconds
        self.start_hour = start_hour
        self._random = random.Random(seed)
        self._elapsed_s = 0.0
        self.soc_pct = initial_soc_pct
        self.battery_temp_c = AMBIENT_C + 3.0
        self.battery_power_kw = 0.0
        self.pv_power_kw = 0.0
        self.load_kw = 0.0
        self.grid_frequency_hz = NOMINAL_FREQUENCY_HZ
        self.advance(0.0)

    @property
    def hour_of_day(self):
        """Simulated local time in hours, 0 to 24."""
        return (self.start_hour + 24.0 * self._elapsed_s / self.day_seconds) % 24.0

    def advance(self, elapsed_s):
        """Move the model to ``elapsed_s`` real seconds after its start (never backwards)."""
        step_h = max(0.0, elapsed_s - self._elapsed_s) * 24.0 / self.day_seconds
        self._elapsed_s = max(self._elapsed_s, elapsed_s)
        hour = self.hour_of_day
        rating = self.rating
        self.pv_power_kw = pv_power_kw(hour, rating.pv_peak_kw) * (0.97 + 0.03 * self._random.random())
        self.load_kw = load_kw(hour, rating.base_load_kw, rating.evening_load_kw) * (
            0.95 + 0.1 * self._random.random())
        self.battery_power_kw = self._dispatch(self.pv_power_kw - self.load_kw)
        self._integrate(step_h)
        self.grid_frequency_hz = NOMINAL_FREQUENCY_HZ + 0.05 * (self._random.random() - 0.5)

    def _dispatch(self, surplus_kw):
        """Return the battery power that absorbs the surplus within rating and SOC limits."""
        rating = self.rating
        if surplus_kw > 0:
            return min(surplus_kw, rating.max_charge_kw) if self.soc_pct < SOC_MAX_PCT else 0.0
        return max(surplus_kw, -rating.max_discharge_kw) if self.soc_pct > SOC_MIN_PCT else 0.0

    def _integrate(self, step_h):
        if step_h <= 0:
            return
        # Integrate in slices of at most six simulated minutes, so a long pause between
        # requests still stops at the SOC limits instead of overshooting them.
        slices = max(1, math.ceil(step_h / 0.1))
        for _ in range(slices):
            slice_h = step_h / slices
            power = self._dispatch(self.pv_power_kw - self.load_kw)
            self.battery_power_kw = power
            soc = self.soc_pct + 100.0 * power * slice_h / self.rating.capacity_kwh
            self.soc_pct = min(SOC_MAX_PCT, max(SOC_MIN_PCT, soc))
            target = AMBIENT_C + TEMPERATURE_RISE_C_PER_KW * abs(power)
            weight = 1.0 - math.exp(-slice_h / TEMPERATURE_TIME_CONSTANT_H)
            self.battery_temp_c += (target - self.battery_temp_c) * weight

    def values(self):
        """Return the canonical fields of the current state, and ``pv_voltage_v``."""
        voltage = self.rating.battery_nominal_v * (0.9 + 0.002 * self.soc_pct)
        battery_power = self.battery_power_kw
        ac_power = self.pv_power_kw - battery_power
        return {
            "soc_pct": self.soc_pct,
            "battery_power_kw": battery_power,
            "battery_voltage_v": voltage,
            "battery_current_a": 1000.0 * battery_power / voltage,
            "battery_temp_c": self.battery_temp_c,
            "battery_max_charge_kw": self.rating.max_charge_kw,
            "battery_max_discharge_kw": self.rating.max_discharge_kw,
            "pv_power_kw": self.pv_power_kw,
            "pv_voltage_v": self._pv_voltage_v(),
            "ac_power_kw": ac_power,
            "grid_power_kw": self.load_kw - ac_power,
            "grid_frequency_hz": self.grid_frequency_hz,
            "inverter_temp_c": AMBIENT_C + 1.5 * abs(ac_power),
        }

    def _pv_voltage_v(self):
        if self.pv_power_kw <= 0.0:
            return 0.0
        share = min(1.0, self.pv_power_kw / self.rating.pv_peak_kw)
        return self.rating.pv_mpp_voltage_v * (0.9 + 0.1 * share)


def pv_power_kw(hour, peak_kw):
    """Return PV power on a clear day: a half-sine from 06:00 to 18:00."""
    if not 6.0 <= hour <= 18.0:
        return 0.0
    return peak_kw * math.sin(math.pi * (hour - 6.0) / 12.0)


def load_kw(hour, base_kw, evening_kw):
    """Return the site load: a base plus a peak centred on 20:00."""
    return base_kw + evening_kw * math.exp(-((hour - 20.0) / 1.5) ** 2)
