"""The simulated device fleet, as pure functions: who the devices are, how their state evolves, what
they report. No I/O here, so all of it is unit-tested; `devices.py` only schedules and publishes.

Layout: device i has type `TYPES[i % 4]` (25% each) and sequence number `i // 4` within its type,
which also places it round-robin on a site, so every site has the same mix. A shard is a
contiguous range of indices, so shards of one fleet never overlap and together cover it.

States follow a Markov chain with stationary distribution 85% OK / 12% WARN / 3% ALERT whose
transitions satisfy detailed balance; persistence comes from the dwell times (mean ~30 s in ALERT,
~15 s in WARN at one step per second), so a device in ALERT stays there a while instead of
flickering.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tier0_contract import models, topics


@dataclass(frozen=True)
class Site:
    site_id: str
    lat: float
    lon: float


SITES: tuple[Site, ...] = (
    Site("WY-ALPHA", 43.4231, -106.3148),
    Site("TX-BRAVO", 31.9686, -102.0779),
    Site("ND-CHARLIE", 47.9790, -103.6360),
    Site("OK-DELTA", 35.4676, -97.5164),
    Site("NM-ECHO", 32.4207, -104.2288),
    Site("CO-FOXTROT", 40.5853, -105.0844),
    Site("LA-GOLF", 29.9511, -90.0715),
    Site("AK-HOTEL", 70.2553, -148.3372),
    Site("PA-INDIA", 41.2033, -77.1945),
    Site("CA-JULIET", 35.3733, -119.0187),
)

TYPES: tuple[models.DeviceType, ...] = (
    models.DeviceType.TURBINE,
    models.DeviceType.THERMAL_ENGINE,
    models.DeviceType.ELECTRICAL_ROTOR,
    models.DeviceType.OG_SENSOR,
)
PREFIX = {
    models.DeviceType.TURBINE: "TURB",
    models.DeviceType.THERMAL_ENGINE: "THRM",
    models.DeviceType.ELECTRICAL_ROTOR: "ROTR",
    models.DeviceType.OG_SENSOR: "OGS",
}
VENDORS = ("HanTech", "Siemtron", "GE-Vernova", "Baker", "Kawa")

# Per metric: (nominal, relative noise, shift in WARN, shift in ALERT) — shifts are multiplicative
# drifts towards the failure a WARN/ALERT of that device type means (heat, vibration, pressure).
METRIC_PROFILES: dict[models.DeviceType, dict[str, tuple[float, float, float, float]]] = {
    models.DeviceType.TURBINE: {
        "rpm": (3600, 0.02, 1.03, 1.08),
        "inlet_temp_c": (410, 0.02, 1.06, 1.15),
        "exhaust_temp_c": (530, 0.02, 1.08, 1.2),
        "vibration_mm_s": (2.0, 0.1, 2.2, 4.0),
        "pressure_bar": (17.5, 0.03, 1.05, 1.15),
        "power_kw": (12800, 0.03, 0.95, 0.8),
    },
    models.DeviceType.THERMAL_ENGINE: {
        "rpm": (1500, 0.02, 1.02, 1.05),
        "coolant_temp_c": (85, 0.03, 1.12, 1.3),
        "oil_temp_c": (95, 0.03, 1.1, 1.3),
        "exhaust_temp_c": (450, 0.03, 1.08, 1.2),
        "fuel_rate_l_h": (210, 0.05, 1.1, 1.25),
        "load_pct": (72, 0.05, 1.15, 1.3),
    },
    models.DeviceType.ELECTRICAL_ROTOR: {
        "rpm": (1800, 0.01, 0.98, 0.9),
        "winding_temp_c": (95, 0.03, 1.15, 1.4),
        "current_a": (420, 0.04, 1.12, 1.3),
        "voltage_v": (4160, 0.01, 0.97, 0.92),
        "vibration_mm_s": (1.8, 0.1, 2.0, 3.5),
        "power_factor": (0.92, 0.01, 0.95, 0.85),
    },
    models.DeviceType.OG_SENSOR: {
        "pressure_bar": (85, 0.03, 1.15, 1.35),
        "flow_rate_m3_h": (240, 0.05, 0.85, 0.6),
        "temperature_c": (65, 0.03, 1.1, 1.25),
        "h2s_ppm": (2.0, 0.2, 4.0, 12.0),
        "level_pct": (55, 0.05, 1.2, 1.45),
    },
}
# The contract's bounds, so a noisy reading never makes an invalid message.
CLAMP = {"power_factor": (0.0, 1.0), "load_pct": (0.0, 100.0), "level_pct": (0.0, 100.0)}

STATE_MESSAGES = {
    "OK": "Nominal",
    "WARN": "Reading outside the normal band",
    "ALERT": "Reading beyond the alarm limit",
}

# --- state model -----------------------------------------------------------------------------------

STATES: tuple[models.StateName, ...] = ("OK", "WARN", "ALERT")
STATIONARY = (0.85, 0.12, 0.03)


def transition_matrix(
    stationary: Sequence[float] = STATIONARY, warn_dwell: float = 15.0, alert_dwell: float = 30.0
) -> tuple[tuple[float, float, float], ...]:
    """Per-step transition probabilities P[from][to] with the given stationary distribution and
    mean dwell times (in steps) in WARN and ALERT. Detailed balance (pi_i P_ij = pi_j P_ji) makes
    `stationary` the chain's stationary distribution."""
    p_ok, p_warn, p_alert = stationary
    alert_to_warn = (2 / 3) / alert_dwell  # ALERT mostly clears through WARN
    alert_to_ok = (1 / 3) / alert_dwell
    warn_to_alert = p_alert * alert_to_warn / p_warn
    warn_to_ok = 1 / warn_dwell - warn_to_alert
    ok_to_warn = p_warn * warn_to_ok / p_ok
    ok_to_alert = p_alert * alert_to_ok / p_ok
    return (
        (1 - ok_to_warn - ok_to_alert, ok_to_warn, ok_to_alert),
        (warn_to_ok, 1 - warn_to_ok - warn_to_alert, warn_to_alert),
        (alert_to_ok, alert_to_warn, 1 - alert_to_ok - alert_to_warn),
    )


P = transition_matrix()
# Cumulative rows, for one uniform draw per step.
_CUM = tuple((row[0], row[0] + row[1]) for row in P)


def next_state(state: int, u: float) -> int:
    """Index of the next state from index `state`, given a uniform draw `u` in [0, 1)."""
    first, second = _CUM[state]
    return 0 if u < first else (1 if u < second else 2)


def initial_state(u: float) -> int:
    return 0 if u < STATIONARY[0] else (1 if u < STATIONARY[0] + STATIONARY[1] else 2)


# --- devices -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    index: int
    device_id: str
    device_type: models.DeviceType
    site: Site
    topic: str
    lat: float
    lon: float
    firmware: str
    tags: dict[str, str]
    scale: float
    """Per-device rating: nominal values are multiplied by it (devices are not identical)."""


def device(index: int, num_sites: int = len(SITES)) -> Device:
    """Device number `index` of the fleet; the same index always gives the same device."""
    dtype = TYPES[index % len(TYPES)]
    seq = index // len(TYPES)
    site = SITES[seq % num_sites]
    rng = random.Random(index)
    device_id = f"{PREFIX[dtype]}-{seq:05d}"
    return Device(
        index=index,
        device_id=device_id,
        device_type=dtype,
        site=site,
        topic=topics.device_topic(site.site_id, dtype.value, device_id),
        lat=round(site.lat + rng.uniform(-0.05, 0.05), 4),
        lon=round(site.lon + rng.uniform(-0.05, 0.05), 4),
        firmware=f"{rng.randint(2, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
        tags={"vendor": rng.choice(VENDORS), "loop": f"{'ABCD'[rng.randrange(4)]}{rng.randint(1, 9)}"},
        scale=rng.uniform(0.9, 1.1),
    )


def shard_range(total: int, shard_index: int, shard_count: int) -> range:
    """The contiguous device indices of one shard; shards partition range(total)."""
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard index {shard_index} not in [0, {shard_count})")
    return range(total * shard_index // shard_count, total * (shard_index + 1) // shard_count)


def timestamp(epoch: float) -> str:
    """`2025-11-16T12:00:00.123Z` (UTC, milliseconds)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# Standard normal draws, looked up with one random index per reading: random.gauss is pure Python and
# was a third of the simulator's time per message.
_NORMAL = tuple(random.Random(0).gauss(0, 1) for _ in range(4096))


def payload(dev: Device, state: int, ts: str, rng: random.Random) -> dict[str, Any]:
    """One message of `dev` in state index `state` (a dict matching `models.DevicePayload`)."""
    name = STATES[state]
    metrics = {}
    bits = rng.getrandbits
    for metric, (nominal, noise, warn, alert) in METRIC_PROFILES[dev.device_type].items():
        shift = 1.0 if state == 0 else (warn if state == 1 else alert)
        value = nominal * dev.scale * shift * (1 + noise * _NORMAL[bits(12)])
        lo, hi = CLAMP.get(metric, (0.0, float("inf")))
        metrics[metric] = round(min(max(value, lo), hi), 3 if metric == "power_factor" else 2)
    return {
        "device_id": dev.device_id,
        "device_type": dev.device_type.value,
        "site_id": dev.site.site_id,
        "timestamp_utc": ts,
        "firmware": dev.firmware,
        "metrics": metrics,
        "status": {"state": name, "code": f"{PREFIX[dev.device_type]}-{name}", "message": STATE_MESSAGES[name]},
        "location": {"lat": dev.lat, "lon": dev.lon},
        "tags": dev.tags,
    }
