"""Acknowledge only once replicated: the one policy both writers follow, the ingest worker (async,
batches of MQTT messages) and the activity consumer (sync, one AMQP message at a time).

A writer keeps what it received unacknowledged until this policy says it may acknowledge it; the
broker redelivers anything unacknowledged, so holding never loses data and acknowledging early
could. The decisions are pure (no I/O, no clock, no sleeping): the writers do the writes, the
`WAIT`s, the pauses and the logging, and ask here what comes next after each outcome. The table it
implements is services/README.md "Acknowledged means replicated"; the error classes come from
`rediserrors`, the primary's state from `primary.Choice`.
"""

import enum
from dataclasses import dataclass
from typing import Literal

from redis import exceptions

from tier0_services import primary, rediserrors

Ack = Literal["replicated", "at_risk", "unchecked"]
"""How an acknowledgement was earned: a replica has the write (`WAIT`), the primary alone has it
because the pair's policy accepts that (`min-replicas-to-write 0`: counted at risk), or nothing was
checked (`--no-replicated-ack`)."""

ErrorKind = Literal["readonly", "connection", "noreplicas", "other", "refused"]
"""A failed write's class (the `kind` label of `tier0_ingest_write_errors_total`): every kind but
`refused` passes, so the data is held and written again."""

REFUSED_ATTEMPTS = 3
"""Writes refused for a reason retrying does not cure (`rediserrors.is_transient` false) before
what Redis refuses is set aside (dead-lettered) instead of retried forever."""

FIRST_PAUSE_S = 0.05
"""First pause between `WAIT`s while holding a write no replica has confirmed yet (and the ingest
worker's before writing a batch again)."""

MAX_PAUSE_S = 1.0
"""Longest pause between retries: a writer follows a promoted primary within about a second."""


class Action(enum.Enum):
    """What the writer does next with the data in hand."""

    ACKNOWLEDGE = "acknowledge"
    """Send the acknowledgement (`Step.ack` says how it was earned)."""
    HOLD = "hold"
    """Keep it unacknowledged and ask the same primary again: a small write + `WAIT 1`, which
    covers every earlier write on that primary (the replication stream is ordered)."""
    WRITE_AGAIN = "write_again"
    """Keep it unacknowledged, re-resolve the primary and write it again after a pause (the store
    scripts make a second write of the same data harmless)."""
    DEAD_LETTER = "dead_letter"
    """Redis refused it `REFUSED_ATTEMPTS` times: set aside what it refuses (dead letters, counted
    `failed`) and acknowledge, so one bad message never stops the stream."""


@dataclass(frozen=True)
class Step:
    action: Action
    ack: Ack | None = None
    """With ACKNOWLEDGE: how the acknowledgement was earned."""
    error: ErrorKind | None = None
    """The failed write's or `WAIT`'s class, when the step answers an error."""
    refused: int = 0
    """Non-transient refusals of this data so far (the next call's `refused`)."""


def acknowledge(ack: Ack) -> Step:
    return Step(Action.ACKNOWLEDGE, ack=ack)


def classify(exc: BaseException) -> ErrorKind:
    """The class of a write's or a `WAIT`'s error: READONLY (the primary moved), the connection,
    NOREPLICAS (the primary lost its replica), another answer that passes, or a refusal."""
    if isinstance(exc, exceptions.ReadOnlyError):
        return "readonly"
    if isinstance(exc, (exceptions.ConnectionError, exceptions.TimeoutError, OSError)):
        return "connection"
    if rediserrors.is_noreplicas(exc):
        return "noreplicas"
    return "other" if rediserrors.is_transient(exc) else "refused"


def wait_replicas(replicated_ack: bool, observation: primary.Observation | None) -> int:
    """How many replicas a write's `WAIT` asks for: 1, or 0 (no `WAIT`) when acknowledgement is not
    replicated, or when the primary has no replica and its policy accepts writes anyway."""
    if not replicated_ack:
        return 0
    if observation is not None and observation.connected_replicas == 0 and observation.min_replicas_to_write == 0:
        return 0
    return 1


def after_write(replicated_ack: bool, replicas: int | None) -> Step:
    """A write succeeded; `replicas`: how many confirmed the `WAIT` in the same round trip (None: no
    `WAIT` was sent, `wait_replicas` 0). HOLD: the holding policy (`while_holding`) decides."""
    if not replicated_ack:
        return acknowledge("unchecked")
    if replicas is not None and replicas >= 1:
        return acknowledge("replicated")
    return Step(Action.HOLD)


def after_write_error(exc: BaseException, refused: int) -> Step:
    """A write failed with `exc` after `refused` earlier refusals of the same data."""
    kind = classify(exc)
    if kind != "refused":
        return Step(Action.WRITE_AGAIN, error=kind, refused=refused)
    refused += 1
    action = Action.DEAD_LETTER if refused >= REFUSED_ATTEMPTS else Action.WRITE_AGAIN
    return Step(action, error=kind, refused=refused)


def before_confirm(replicated_ack: bool, written_on: int, choice: primary.Choice) -> Step:
    """A write went out without `WAIT` (the ingest worker's fast path) to endpoint `written_on`;
    `choice` is the current primary. HOLD: confirm it there now."""
    if not replicated_ack:
        return acknowledge("unchecked")
    if choice.endpoint != written_on:
        return Step(Action.WRITE_AGAIN)
    if wait_replicas(replicated_ack, choice.observation) == 0:
        return acknowledge("at_risk")
    return Step(Action.HOLD)


def while_holding(written_on: int, choice: primary.Choice) -> Step:
    """Before each `WAIT` while holding a write no replica has confirmed: the primary's
    `min-replicas-to-write` decides (0: the operator lowered it, the standby is down and the pair's
    policy is to keep accepting; unknown or ≥ 1: hold). A primary that moved or cannot be observed
    gets the data written again."""
    if choice.endpoint != written_on or choice.observation is None:
        return Step(Action.WRITE_AGAIN)
    if choice.observation.min_replicas_to_write == 0:
        return acknowledge("at_risk")
    return Step(Action.HOLD)


def after_confirm(result: int | BaseException) -> Step:
    """What a small write + `WAIT 1` answered: replicas that confirmed, or the error. NOREPLICAS is
    the same primary still without its replica (keep holding); any other error means the primary
    may have moved (write again, re-resolved)."""
    if isinstance(result, BaseException):
        kind = classify(result)
        return Step(Action.HOLD if kind == "noreplicas" else Action.WRITE_AGAIN, error=kind)
    return acknowledge("replicated") if result >= 1 else Step(Action.HOLD)


def next_pause(pause: float) -> float:
    """The pause after `pause`: doubled, at most MAX_PAUSE_S."""
    return min(pause * 2, MAX_PAUSE_S)
