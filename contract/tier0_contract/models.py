"""The two message payloads of the seeds, as pydantic models both the simulators and the services use.

Ingest validates every device message at tens of thousands per second, so parsing goes straight
from bytes through pydantic-core (`parse_device_payload`), never through `json.loads` + a Python
dict. The models are strict where a wrong value would corrupt state (types, states, identifiers,
finite numbers within physical bounds, no unknown fields) and a message that breaks them is
rejected as a whole.
"""

from enum import StrEnum
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

# Identifiers become MQTT topic segments and Redis key parts: no '/', '+', '#', ':', '|' or spaces.
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
ShortText = Annotated[str, Field(max_length=256)]


def _in(lo: float, hi: float) -> Any:
    """Field of a finite float in [lo, hi] (JSON has no NaN/inf; bounds reject garbage readings)."""
    return Field(ge=lo, le=hi, allow_inf_nan=False)


class DeviceType(StrEnum):
    TURBINE = "turbine"
    THERMAL_ENGINE = "thermal_engine"
    ELECTRICAL_ROTOR = "electrical_rotor"
    OG_SENSOR = "og_sensor"


class DeviceState(StrEnum):
    OK = "OK"
    WARN = "WARN"
    ALERT = "ALERT"


DEVICE_STATES: tuple[DeviceState, ...] = (DeviceState.OK, DeviceState.WARN, DeviceState.ALERT)

# Validated payloads carry plain strings (cheaper than enum members); these literals match the enums.
StateName = Literal["OK", "WARN", "ALERT"]

_STRICT = ConfigDict(extra="forbid", frozen=True)
# Device payloads are TypedDicts, not BaseModels: pydantic-core validates them with the same rules
# but builds plain dicts, about twice as fast (ingest validates every message; the simulator builds
# dicts and serialises them with orjson). FastAPI accepts them as response models too.
_STRICT_DICT = ConfigDict(extra="forbid")


class TurbineMetrics(TypedDict):
    __pydantic_config__ = _STRICT_DICT  # type: ignore[misc]
    rpm: Annotated[float, _in(0, 20_000)]
    inlet_temp_c: Annotated[float, _in(-60, 1_000)]
    exhaust_temp_c: Annotated[float, _in(-60, 1_200)]
    vibration_mm_s: Annotated[float, _in(0, 100)]
    pressure_bar: Annotated[float, _in(0, 200)]
    power_kw: Annotated[float, _in(0, 100_000)]


class ThermalEngineMetrics(TypedDict):
    __pydantic_config__ = _STRICT_DICT  # type: ignore[misc]
    rpm: Annotated[float, _in(0, 10_000)]
    coolant_temp_c: Annotated[float, _in(-60, 300)]
    oil_temp_c: Annotated[float, _in(-60, 300)]
    exhaust_temp_c: Annotated[float, _in(-60, 1_200)]
    fuel_rate_l_h: Annotated[float, _in(0, 5_000)]
    load_pct: Annotated[float, _in(0, 100)]


class ElectricalRotorMetrics(TypedDict):
    __pydantic_config__ = _STRICT_DICT  # type: ignore[misc]
    rpm: Annotated[float, _in(0, 20_000)]
    winding_temp_c: Annotated[float, _in(-60, 400)]
    current_a: Annotated[float, _in(0, 10_000)]
    voltage_v: Annotated[float, _in(0, 50_000)]
    vibration_mm_s: Annotated[float, _in(0, 100)]
    power_factor: Annotated[float, _in(0, 1)]


class OgSensorMetrics(TypedDict):
    __pydantic_config__ = _STRICT_DICT  # type: ignore[misc]
    pressure_bar: Annotated[float, _in(0, 1_000)]
    flow_rate_m3_h: Annotated[float, _in(0, 100_000)]
    temperature_c: Annotated[float, _in(-60, 400)]
    h2s_ppm: Annotated[float, _in(0, 10_000)]
    level_pct: Annotated[float, _in(0, 100)]


class DeviceStatus(TypedDict):
    __pydantic_config__ = _STRICT_DICT  # type: ignore[misc]
    state: StateName
    code: Annotated[str, Field(min_length=1, max_length=64)]
    message: ShortText


class Location(TypedDict):
    __pydantic_config__ = _STRICT_DICT  # type: ignore[misc]
    lat: Annotated[float, _in(-90, 90)]
    lon: Annotated[float, _in(-180, 180)]


Tags = Annotated[dict[Annotated[str, Field(max_length=64)], ShortText], Field(max_length=16)]


class _DevicePayloadBase(TypedDict):
    """Fields every device type shares (the seeds' sample payload)."""

    __pydantic_config__ = _STRICT_DICT  # type: ignore[misc]
    device_id: Ident
    site_id: Ident
    timestamp_utc: AwareDatetime
    firmware: Annotated[str, Field(min_length=1, max_length=32)]
    status: DeviceStatus
    location: Location
    tags: NotRequired[Tags]


class TurbinePayload(_DevicePayloadBase):
    device_type: Literal["turbine"]
    metrics: TurbineMetrics


class ThermalEnginePayload(_DevicePayloadBase):
    device_type: Literal["thermal_engine"]
    metrics: ThermalEngineMetrics


class ElectricalRotorPayload(_DevicePayloadBase):
    device_type: Literal["electrical_rotor"]
    metrics: ElectricalRotorMetrics


class OgSensorPayload(_DevicePayloadBase):
    device_type: Literal["og_sensor"]
    metrics: OgSensorMetrics


DevicePayload = Annotated[
    TurbinePayload | ThermalEnginePayload | ElectricalRotorPayload | OgSensorPayload,
    Field(discriminator="device_type"),
]
"""One telemetry message of one device, published to `og/field/{site_id}/{device_type}/{device_id}`.
Validated values: `timestamp_utc` becomes an aware datetime, `device_type` and `status.state` the
enums, metric numbers floats."""

DEVICE_PAYLOAD: TypeAdapter[DevicePayload] = TypeAdapter(DevicePayload)

MAX_PAYLOAD_BYTES = 8192
"""Larger device messages are rejected before parsing."""

METRIC_FIELDS: dict[DeviceType, tuple[str, ...]] = {
    DeviceType.TURBINE: tuple(TurbineMetrics.__annotations__),
    DeviceType.THERMAL_ENGINE: tuple(ThermalEngineMetrics.__annotations__),
    DeviceType.ELECTRICAL_ROTOR: tuple(ElectricalRotorMetrics.__annotations__),
    DeviceType.OG_SENSOR: tuple(OgSensorMetrics.__annotations__),
}
"""The metric names of each device type, in payload order."""


def parse_device_payload(data: bytes | str) -> DevicePayload:
    """Validate raw JSON in one pass in pydantic-core; raises pydantic.ValidationError."""
    return DEVICE_PAYLOAD.validate_json(data)


# --- user activity (RabbitMQ queue webapp_active_users) --------------------------------------------


class ActiveUser(BaseModel):
    """One signed-in user of the web application (an element of `active_users_list`)."""

    model_config = _STRICT
    user_id: Ident
    session_id: Ident
    login_time_utc: AwareDatetime
    last_activity_utc: AwareDatetime
    ip_address: Annotated[str, Field(max_length=45, pattern=r"^[0-9A-Fa-f:.]+$")]
    client: Annotated[str, Field(max_length=64)]
    location: Annotated[str, Field(max_length=64)]
    connections: Annotated[int, Field(ge=0, le=1_000)]
    """Open live connections (websockets) of this user; 0 means signed in but idle."""


class UserActivityMetrics(BaseModel):
    model_config = _STRICT
    active_users: Annotated[int, Field(ge=0, le=10_000_000)]
    active_connections: Annotated[int, Field(ge=0, le=100_000_000)]
    server_cpu_pct: Annotated[float, _in(0, 100)]
    server_memory_gb: Annotated[float, _in(0, 100_000)]
    average_latency_ms: Annotated[float, _in(0, 3_600_000)]


class UserActivityMessage(BaseModel):
    """The seeds' user-activity message, published every few seconds to `webapp_active_users`."""

    model_config = _STRICT
    message_id: Ident
    timestamp_utc: AwareDatetime
    site_id: Ident
    metrics: UserActivityMetrics
    active_users_list: Annotated[list[ActiveUser], Field(max_length=100_000)] = []


def parse_user_activity(data: bytes | str) -> UserActivityMessage:
    """Validate raw JSON; raises pydantic.ValidationError."""
    return UserActivityMessage.model_validate_json(data)
