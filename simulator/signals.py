"""Signal models of the three asset types, plausible for Casablanca office towers, and the
effect of injected faults on them. Deterministic: the same seed, asset and time give the same
reading; counters (run_hours, door_cycles) only grow, at a rate that follows use."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

LOCAL = timezone(timedelta(hours=1))  # Morocco: UTC+1 most of the year
# Casablanca monthly mean air temperature (°C) and daily half-range
MONTHLY_MEAN = [12.8, 13.5, 15.0, 16.3, 18.6, 21.0, 22.7, 23.1, 22.0, 19.8, 16.7, 14.0]
DAILY_HALF_RANGE = 4.0

# Where each metric must stay (the tests check it)
PHYSICAL_RANGE = {
    "temp_out_air": (-5, 50), "temp_supply_air": (5, 45), "power_kw": (0, 250), "vibration_level": (0, 30),
    "run_hours": (0, 1e6), "water_temp_in": (2, 45), "water_temp_out": (2, 45), "motor_temp": (10, 130),
    "current_a": (0, 120), "door_cycles": (0, 1e8),
}


def outside_temp(ts: datetime) -> float:
    """Outside air: the month's mean with a daily cycle (min ~06:00, max ~15:00 local)."""
    local = ts.astimezone(LOCAL)
    hour = local.hour + local.minute / 60
    return MONTHLY_MEAN[local.month - 1] + DAILY_HALF_RANGE * math.sin((hour - 9.0) / 24 * 2 * math.pi)


def occupancy(ts: datetime) -> float:
    """0..1: weekdays ~08:00–19:00 full, ramps of an hour, light weekends, empty nights."""
    local = ts.astimezone(LOCAL)
    h = local.hour + local.minute / 60
    if local.weekday() >= 5:
        base = 0.15 if 9 <= h < 14 else 0.03
        return base
    if 8 <= h < 19:
        return 1.0
    if 7 <= h < 8:
        return h - 7
    if 19 <= h < 20:
        return 20 - h
    return 0.03


@dataclass
class ActiveFault:
    """A fault as the simulator applies it: kind, intensity 0–1, when it started, its ramp."""

    fault: str
    intensity: float
    started_at: datetime
    ramp_s: int
    ends_at: datetime

    def level(self, ts: datetime) -> float:
        """Effective intensity at `ts` (ramping up over ramp_s); 0 outside the fault."""
        if ts < self.started_at or ts >= self.ends_at:
            return 0.0
        elapsed = (ts - self.started_at).total_seconds()
        ramp = 1.0 if self.ramp_s <= 0 else min(1.0, elapsed / self.ramp_s)
        return self.intensity * ramp


@dataclass
class AssetSignals:
    """One asset's sensors. Counters are state: they continue from where they are."""

    code: str
    type: str
    seed: int
    counters: dict[str, float] = field(default_factory=dict)
    last_ts: datetime | None = None
    _flat: dict[str, float] = field(default_factory=dict)  # flatline: the stuck values
    _jumps_done: set[str] = field(default_factory=set)  # counter jumps already applied
    _active: list[ActiveFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:{self.code}:init")
        if self.type in ("HVAC", "CHILLER") and "run_hours" not in self.counters:
            self.counters["run_hours"] = round(rng.uniform(80, 220), 2)  # R4 (CHILLER) fires at 500
        if self.type == "ELEVATOR" and "door_cycles" not in self.counters:
            self.counters["door_cycles"] = float(rng.randint(20_000, 45_000))  # R6 fires at 100,000
        self.phase = rng.uniform(0, 2 * math.pi)

    def sample(self, ts: datetime, faults: list[ActiveFault] = ()) -> dict[str, float] | None:
        """The reading at `ts` (None when a dropout fault silences the sensor)."""
        rng = random.Random(f"{self.seed}:{self.code}:{int(ts.timestamp())}")
        dt_h = 0.0 if self.last_ts is None else max(0.0, (ts - self.last_ts).total_seconds() / 3600)
        self.last_ts = ts
        self._active = list(faults)
        level = {f.fault: f.level(ts) for f in faults}
        out = outside_temp(ts) + rng.gauss(0, 0.3)
        occ = occupancy(ts)
        if self.type == "HVAC":
            values = self._hvac(rng, out, occ, dt_h, level)
        elif self.type == "CHILLER":
            values = self._chiller(rng, out, occ, dt_h, level)
        else:
            values = self._elevator(rng, occ, dt_h, level)
        if level.get("flatline", 0) > 0:  # a stuck transmitter repeats its first value
            for k in values:
                if k not in ("run_hours", "door_cycles"):
                    values[k] = self._flat.setdefault(k, values[k])
        else:
            self._flat.clear()
        if level.get("dropout", 0) > 0:
            return None
        return {k: round(min(max(v, PHYSICAL_RANGE[k][0]), PHYSICAL_RANGE[k][1]), 3) for k, v in values.items()}

    def _count(self, name: str, increment: float) -> float:
        self.counters[name] += max(0.0, increment)
        return self.counters[name]

    def _hvac(self, rng, out, occ, dt_h, f) -> dict[str, float]:
        running = occ > 0.05
        supply = 13.2 + 0.08 * (out - 18) + 0.6 * (1 - occ) + rng.gauss(0, 0.25)
        supply += 16.0 * f.get("supply_air_drift", 0)  # valve stuck / coil fouled: towards return air
        vib = 1.6 + 1.2 * occ + 0.2 * math.sin(self.phase) + rng.gauss(0, 0.2)
        vib += 7.0 * f.get("fan_vibration", 0)  # bearing wear / unbalance
        power = (3.0 + 14.0 * occ * (0.7 + 0.03 * max(out - 15, 0)) + rng.gauss(0, 0.4)) if running else 0.6
        hours = self._count("run_hours", dt_h if running else 0)
        return {"temp_out_air": out, "temp_supply_air": supply, "power_kw": power, "vibration_level": vib,
                "run_hours": hours}

    def _chiller(self, rng, out, occ, dt_h, f) -> dict[str, float]:
        load = min(1.0, 0.15 + 0.85 * occ * (0.6 + 0.04 * max(out - 15, 0)))
        t_out = 6.6 + 0.5 * load + rng.gauss(0, 0.12)
        t_out += 22.0 * f.get("cooling_loss", 0)  # compressor trip: chilled water warms up
        if f.get("slow_drift", 0) > 0:  # fouling condenser: water warms steadily, ~40 °C/h at intensity 1
            started = next(x for x in self._active if x.fault == "slow_drift")
            t_out += 40.0 * f["slow_drift"] * (self.last_ts - started.started_at).total_seconds() / 3600
        t_in = t_out + 0.8 + 4.2 * load + rng.gauss(0, 0.12)
        power = 18.0 + 65.0 * load + rng.gauss(0, 1.0)
        hours = self._count("run_hours", dt_h if load > 0.2 else 0)
        if f.get("run_hours_jump", 0) > 0 and not self._jumped("run_hours_jump"):
            hours = self._count("run_hours", 520.0 * f["run_hours_jump"])  # a missed overhaul: +520 h
        return {"water_temp_in": t_in, "water_temp_out": t_out, "power_kw": power, "run_hours": hours}

    def _elevator(self, rng, occ, dt_h, f) -> dict[str, float]:
        trips_per_h = 4 + 56 * occ
        activity = min(1.0, trips_per_h / 60 + rng.uniform(-0.05, 0.05))
        motor = 33.0 + 24.0 * activity + rng.gauss(0, 0.8)
        motor += 55.0 * f.get("motor_overheat", 0)  # blocked ventilation / brake dragging
        current = 6.0 + 24.0 * activity * rng.uniform(0.7, 1.1)
        vib = 0.8 + 0.7 * activity + rng.gauss(0, 0.12)
        cycles = self._count("door_cycles", 2 * trips_per_h * dt_h)
        if f.get("door_cycles_jump", 0) > 0 and not self._jumped("door_cycles_jump"):
            cycles = self._count("door_cycles", 100_000.0 * f["door_cycles_jump"])  # a counter re-synced
        return {"motor_temp": motor, "current_a": current, "vibration_level": vib, "door_cycles": math.floor(cycles)}

    def _jumped(self, fault: str) -> bool:
        """True if this fault's one-time counter jump was already applied (else marks it)."""
        key = next((f"{x.fault}@{x.started_at.isoformat()}" for x in self._active if x.fault == fault), fault)
        if key in self._jumps_done:
            return True
        self._jumps_done.add(key)
        return False
