"""Turn received MQTT messages into the arguments of one Redis write, without any I/O.

Each message is either accepted (validated, consistent with its topic) and becomes six arguments
of the store script, or rejected with a short reason and becomes a dead-letter entry. Nothing in
here raises on bad input: a malformed message must never stop the worker.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from tier0_contract import models, timestamps, topics

DEAD_LETTER_PAYLOAD_BYTES = 2048
_PREFIX_LEN = len(topics.TOPIC_PREFIX) + 1
STATE_BYTES = {s.value: s.value.encode() for s in models.DeviceState}


@dataclass
class Prepared:
    """One batch, ready for `store.apply`."""

    records: list[bytes] = field(default_factory=list)
    """One per accepted message, oldest first: `{site}/{type}/{device}` US `{state}` US `{ts}` US
    `{payload}` (US = 0x1f; ts in epoch s). Valid JSON never holds a raw 0x1e/0x1f byte and the
    identifiers cannot either, so the fields split unambiguously."""
    accepted: int = 0
    dead_letters: list[bytes] = field(default_factory=list)
    """JSON entries for keys.DEVICES_DEAD_LETTER, one per rejected message."""
    newest_ts: float = 0.0
    """Newest payload timestamp of the batch (epoch s), for the lag gauge."""
    too_old: int = 0
    """Dead letters rejected by `timestamps.clamp_or_reject` as too old (the rest are invalid)."""
    future_clamped: int = 0
    """Accepted messages dated beyond the skew allowance, stored with the receive time."""
    failed: int = 0
    """Dead letters of accepted messages the store refused for good (`failed_record`)."""

    @property
    def rejected(self) -> int:
        return len(self.dead_letters)

    @property
    def invalid(self) -> int:
        return len(self.dead_letters) - self.too_old - self.failed


def prepare(
    messages: Iterable[tuple[bytes, bytes]],
    now: float,
    *,
    skew: float = timestamps.FUTURE_SKEW_SECONDS,
    max_age: float = timestamps.MAX_AGE_SECONDS,
) -> Prepared:
    """Validate `(topic, payload)` pairs received at `now` (epoch s). The Redis write gets one
    argument per message (packing hundreds of thousands of small arguments costs redis-py more
    than the whole validation). Timestamps follow `timestamps.clamp_or_reject`."""
    out = Prepared()
    records = out.records
    oldest = now - max_age
    for topic, payload in messages:
        result = check(topic, payload)
        if isinstance(result, str):
            out.dead_letters.append(dead_letter(topic, payload, result, now))
            continue
        state, ts = result
        if ts > now or ts < oldest:  # the shared rule, called only off the common path
            verdict = timestamps.clamp_or_reject(ts, now, skew=skew, max_age=max_age)
            if verdict.rejected:
                out.dead_letters.append(dead_letter(topic, payload, verdict.reason(max_age), now))
                out.too_old += 1
                continue
            out.future_clamped += verdict.outcome == "future_clamped"
            ts = verdict.ts
        if ts > out.newest_ts:
            out.newest_ts = ts
        # Milliseconds: the script compares timestamps, and Lua keeps 14 significant digits.
        ts_field = b"%.3f" % ts
        records.append(b"\x1f".join((topic[_PREFIX_LEN:], STATE_BYTES[state], ts_field, payload)))
    out.accepted = len(records)
    return out


def check(topic: bytes, payload: bytes) -> tuple[str, float] | str:
    """`(state, timestamp)` of a valid message, else the reason it is not."""
    if len(payload) > models.MAX_PAYLOAD_BYTES:
        return f"payload: larger than {models.MAX_PAYLOAD_BYTES} bytes"
    try:
        msg = models.parse_device_payload(payload)
    except ValidationError as exc:
        return topic_problem(topic) or "payload: " + summarize(exc)
    # Identifiers are validated (no '/', '+', '#'), so an equal topic is a well-formed device topic.
    expected = topics.device_topic(msg["site_id"], msg["device_type"], msg["device_id"])
    if topic != expected.encode():
        return topic_problem(topic) or "topic: does not match the payload's site_id/device_type/device_id"
    return msg["status"]["state"], msg["timestamp_utc"].timestamp()


def topic_problem(topic: bytes) -> str | None:
    try:
        topic_str = topic.decode()
    except UnicodeDecodeError:
        return "topic: not UTF-8"
    if topics.parse_device_topic(topic_str) is None:
        return "topic: not og/field/{site_id}/{device_type}/{device_id}"
    return None


def summarize(exc: ValidationError, limit: int = 3) -> str:
    """`metrics.rpm: Input should be less than or equal to 20000; ...` (first few errors)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors[:limit]]
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def dead_letter(topic: bytes, payload: bytes, error: str, now: float) -> bytes:
    return orjson.dumps(
        {
            "received_at": now,
            "topic": topic.decode(errors="replace"),
            "error": error,
            "payload": payload[:DEAD_LETTER_PAYLOAD_BYTES].decode(errors="replace"),
        }
    )


def records_only(prepared: Prepared, start: int = 0, stop: int | None = None) -> Prepared:
    """The accepted messages `start:stop` of a batch, without its dead letters and counts: a piece
    of a batch the primary refused, written on its own (`delivery.Delivery._salvage`)."""
    records = prepared.records[start:stop]
    return Prepared(records=records, accepted=len(records), newest_ts=prepared.newest_ts)


def dead_letters_only(prepared: Prepared, failed: list[bytes] | None = None) -> Prepared:
    """The batch's own dead letters (and counts) plus the `failed` ones (`failed_record`), without
    its accepted messages."""
    failed = failed or []
    return Prepared(
        dead_letters=[*prepared.dead_letters, *failed],
        too_old=prepared.too_old,
        future_clamped=prepared.future_clamped,
        failed=len(failed),
    )


def failed_record(record: bytes, error: str, now: float) -> bytes:
    """The dead letter of an accepted message the store refused (`error`): topic and payload again."""
    where, _, rest = record.partition(b"\x1f")
    payload = rest.split(b"\x1f", 2)[-1]
    return dead_letter(f"{topics.TOPIC_PREFIX}/".encode() + where, payload, f"store: {error}", now)
