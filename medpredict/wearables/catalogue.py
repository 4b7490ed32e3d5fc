"""The wearable signals medpredict understands: name, unit, plausible range, resolution.

Every reading that enters a :class:`~medpredict.wearables.store.WearableStore` names one
of these signals. *Intraday* signals are timestamped readings (a heart-rate sample every
few seconds, steps per minute, a blood-pressure measurement); *daily* signals are one
value per person-day (a device's daily resting pulse, total steps, hours slept). A value
outside the plausible range is physiologically impossible or a sensor fault (heart rate 0
or 300, SpO2 above 100 %) and is quarantined, never stored.

Examples
--------
>>> SIGNALS["heart_rate"].plausible(72.0)
True
>>> SIGNALS["spo2"].plausible(101.0)
False
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SignalSpec:
    """One signal: ``low <= value <= high`` is plausible; ``daily`` marks one value per day."""

    name: str
    unit: str
    low: float
    high: float
    daily: bool
    description: str

    def plausible(self, value: float) -> bool:
        """Whether ``value`` lies inside the plausible range."""
        return self.low <= value <= self.high


_SPECS = [
    SignalSpec("heart_rate", "bpm", 25, 250, False, "heart-rate sample"),
    SignalSpec("steps", "steps", 0, 1000, False, "steps counted in the sample's interval"),
    SignalSpec("spo2", "%", 50, 100, False, "blood oxygen saturation"),
    SignalSpec("temperature", "°C", 30, 45, False, "body or skin temperature"),
    SignalSpec("systolic", "mmHg", 50, 260, False, "systolic blood pressure"),
    SignalSpec("diastolic", "mmHg", 25, 160, False, "diastolic blood pressure"),
    SignalSpec("hrv_rmssd", "ms", 1, 500, False, "RMSSD of a short HRV measurement"),
    SignalSpec("hrv_sdnn", "ms", 1, 500, False, "SDNN of a short HRV measurement"),
    SignalSpec("env_noise_db", "dB", 0, 140, False, "environmental sound exposure"),
    SignalSpec("headphone_db", "dB", 0, 140, False, "headphone sound exposure"),
    SignalSpec("resting_hr", "bpm", 25, 200, True, "device-reported daily resting heart rate"),
    SignalSpec("heart_rate_avg", "bpm", 25, 250, True, "daily mean heart rate"),
    SignalSpec("heart_rate_min", "bpm", 25, 250, True, "daily minimum heart rate"),
    SignalSpec("heart_rate_max", "bpm", 25, 250, True, "daily maximum heart rate"),
    SignalSpec("daily_steps", "steps", 0, 100_000, True, "steps walked in the day"),
    SignalSpec("sleep_hours", "h", 0, 24, True, "hours asleep in the night ending that day"),
    SignalSpec("spo2_avg", "%", 50, 100, True, "daily mean blood oxygen saturation"),
    SignalSpec("temperature_avg", "°C", 30, 45, True, "daily mean body temperature"),
    SignalSpec("env_noise_db_avg", "dB", 0, 140, True, "daily mean environmental sound"),
    SignalSpec("headphone_db_avg", "dB", 0, 140, True, "daily mean headphone sound"),
    SignalSpec("active_calories", "kcal", 0, 10_000, True, "active energy burned in the day"),
]

SIGNALS: dict[str, SignalSpec] = {spec.name: spec for spec in _SPECS}
INTRADAY = tuple(s.name for s in _SPECS if not s.daily)
DAILY = tuple(s.name for s in _SPECS if s.daily)
CONTINUOUS = ("heart_rate", "steps")
"""Signals recorded continuously while worn, where a break in the stream is a gap."""
