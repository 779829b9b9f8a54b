"""The acknowledgement policy alone (`tier0_services.ackpolicy`), as both writers follow it:

- a write's `WAIT` asks for a replica unless acknowledgement is unchecked, or the primary has no
  replica and accepts writes without one;
- a write a replica confirmed is acknowledged; one it did not is held;
- while holding, the primary's `min-replicas-to-write` decides (0: at risk; unknown or >= 1: hold),
  and a primary that moved gets the data written again;
- a `WAIT` answering NOREPLICAS keeps holding, any other error writes again;
- write errors are classified, passing ones written again with the refusal count untouched, and the
  third refusal retrying cannot cure dead-letters;
- the pause between retries doubles up to a second.
"""

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tier0_services import ackpolicy
from tier0_services.primary import Choice, Observation

pytestmark = pytest.mark.unit

Action = ackpolicy.Action
NOREPLICAS = ResponseError("NOREPLICAS Not enough good replicas to write.")
WRONGTYPE = ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")


def primary(endpoint: int = 0, replicas: int = 1, min_replicas: int | None = 1) -> Choice:
    obs = Observation(endpoint, True, "master", 1, connected_replicas=replicas, min_replicas_to_write=min_replicas)
    return Choice(endpoint, "test", obs)


NO_PRIMARY = Choice(None, "no endpoint is role:master")


@pytest.mark.parametrize(
    ("replicated_ack", "replicas", "min_replicas", "wait"),
    [
        (True, 1, 1, 1),
        (True, 0, 1, 1),  # the pair requires the standby: WAIT, then hold
        (True, 0, None, 1),  # unknown policy: WAIT, then hold
        (True, 1, 0, 1),  # a replica is there: ask it even though the policy would accept
        (True, 0, 0, 0),  # nothing to wait for, and the pair accepts that
        (False, 1, 1, 0),
    ],
)
def test_how_many_replicas_a_write_waits_for(
    replicated_ack: bool, replicas: int, min_replicas: int | None, wait: int
) -> None:
    obs = primary(replicas=replicas, min_replicas=min_replicas).observation
    assert ackpolicy.wait_replicas(replicated_ack, obs) == wait


def test_without_an_observation_a_write_waits_for_one_replica() -> None:
    assert ackpolicy.wait_replicas(True, None) == 1


def test_a_write_a_replica_confirmed_is_acknowledged_else_held() -> None:
    assert ackpolicy.after_write(True, 1) == ackpolicy.Step(Action.ACKNOWLEDGE, ack="replicated")
    assert ackpolicy.after_write(True, 0).action is Action.HOLD
    assert ackpolicy.after_write(True, None).action is Action.HOLD  # no WAIT sent: the hold decides
    assert ackpolicy.after_write(False, None) == ackpolicy.Step(Action.ACKNOWLEDGE, ack="unchecked")
    assert ackpolicy.after_write(False, 0).ack == "unchecked"


def test_holding_follows_the_primarys_min_replicas_to_write() -> None:
    assert ackpolicy.while_holding(0, primary(min_replicas=1)).action is Action.HOLD
    assert ackpolicy.while_holding(0, primary(min_replicas=None)).action is Action.HOLD
    # The operator lowered it: the standby is down and the pair keeps accepting, counted at risk.
    assert ackpolicy.while_holding(0, primary(min_replicas=0)) == ackpolicy.Step(Action.ACKNOWLEDGE, ack="at_risk")
    assert ackpolicy.while_holding(0, primary(replicas=1, min_replicas=0)).ack == "at_risk"


def test_holding_stops_when_the_primary_moved_or_vanished() -> None:
    assert ackpolicy.while_holding(0, primary(endpoint=1)).action is Action.WRITE_AGAIN
    assert ackpolicy.while_holding(0, NO_PRIMARY).action is Action.WRITE_AGAIN
    assert ackpolicy.while_holding(0, Choice(0, "observed without answers")).action is Action.WRITE_AGAIN


def test_a_confirmation_acknowledges_holds_or_writes_again() -> None:
    assert ackpolicy.after_confirm(1).ack == "replicated"
    assert ackpolicy.after_confirm(2).ack == "replicated"
    assert ackpolicy.after_confirm(0).action is Action.HOLD
    held = ackpolicy.after_confirm(NOREPLICAS)  # same primary, still without its replica
    assert (held.action, held.error) == (Action.HOLD, "noreplicas")
    for exc in (ReadOnlyError("READONLY"), RedisConnectionError("gone"), OSError("reset")):
        assert ackpolicy.after_confirm(exc).action is Action.WRITE_AGAIN, exc


def test_before_the_first_confirmation() -> None:
    """The ingest worker's fast path: the batch was written without WAIT to endpoint 0."""
    assert ackpolicy.before_confirm(False, 0, primary()).ack == "unchecked"
    assert ackpolicy.before_confirm(True, 0, primary()).action is Action.HOLD  # WAIT now
    assert ackpolicy.before_confirm(True, 0, primary(endpoint=1)).action is Action.WRITE_AGAIN
    assert ackpolicy.before_confirm(True, 0, NO_PRIMARY).action is Action.WRITE_AGAIN
    assert ackpolicy.before_confirm(True, 0, primary(replicas=0, min_replicas=0)).ack == "at_risk"
    assert ackpolicy.before_confirm(True, 0, primary(replicas=0, min_replicas=1)).action is Action.HOLD


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ReadOnlyError("You can't write against a read only replica."), "readonly"),
        (RedisConnectionError("Connection refused"), "connection"),
        (RedisTimeoutError("Timeout reading from socket"), "connection"),
        (OSError("Connection reset by peer"), "connection"),
        (NOREPLICAS, "noreplicas"),
        (ResponseError("OOM command not allowed when used memory > 'maxmemory'."), "other"),
        (ResponseError("LOADING Redis is loading the dataset in memory"), "other"),
        (WRONGTYPE, "refused"),
        (ResponseError("ERR Error running script (call to f_1): @user_script:12: bad argument"), "refused"),
    ],
)
def test_write_errors_are_classified(exc: BaseException, kind: str) -> None:
    assert ackpolicy.classify(exc) == kind


@pytest.mark.parametrize("exc", [ReadOnlyError("READONLY"), RedisConnectionError("gone"), NOREPLICAS])
def test_a_passing_error_is_written_again_without_counting_a_refusal(exc: BaseException) -> None:
    step = ackpolicy.after_write_error(exc, refused=2)
    assert (step.action, step.refused) == (Action.WRITE_AGAIN, 2)


def test_the_third_refusal_dead_letters() -> None:
    refused, actions = 0, []
    for _ in range(ackpolicy.REFUSED_ATTEMPTS):
        step = ackpolicy.after_write_error(WRONGTYPE, refused)
        refused = step.refused
        actions.append(step.action)
    assert actions == [Action.WRITE_AGAIN, Action.WRITE_AGAIN, Action.DEAD_LETTER]
    assert refused == ackpolicy.REFUSED_ATTEMPTS == 3


def test_pauses_double_up_to_a_second() -> None:
    pauses = [ackpolicy.FIRST_PAUSE_S]
    for _ in range(6):
        pauses.append(ackpolicy.next_pause(pauses[-1]))
    assert pauses == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
