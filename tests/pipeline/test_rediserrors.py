"""A Redis error reads as a message, never as redis-py's unformatted pipeline template."""

import pytest
from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError, ResponseError

from tier0_services import rediserrors

pytestmark = pytest.mark.unit


def test_a_plain_error_keeps_its_message() -> None:
    assert rediserrors.reason(ReadOnlyError("You can't write against a read only replica.")) == (
        "You can't write against a read only replica."
    )


def test_an_empty_error_is_named_by_its_class() -> None:
    assert rediserrors.reason(ResponseError()) == "ResponseError"


def test_a_pipeline_error_names_the_command_and_the_class() -> None:
    # The annotation redis-py itself applies to a failed pipeline command.
    exc = ReadOnlyError("You can't write against a read only replica.")
    Redis().pipeline().annotate_exception(exc, 1, ("SET", "k", "v"))
    assert "{" in str(exc), "redis-py formats its pipeline errors now: drop rediserrors' workaround"
    assert rediserrors.reason(exc) == "Command # 1 (SET k v) of pipeline caused error: ReadOnlyError"


@pytest.mark.parametrize("exc", [OSError("connection refused"), TimeoutError()])
def test_other_errors_read_as_themselves(exc: BaseException) -> None:
    assert rediserrors.reason(exc) in ("connection refused", "TimeoutError")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ResponseError("NOREPLICAS Not enough good replicas to write."), True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (ResponseError("LOADING Redis is loading the dataset in memory"), True),
        (ResponseError("BUSY Redis is busy running a script."), True),
        (ResponseError("OOM command not allowed when used memory > 'maxmemory'."), True),
        (ResponseError("NOPERM this user has no permissions to run the 'set' command"), True),
        (OSError("connection refused"), True),
        (ResponseError("WRONGTYPE devices:latest holds a string, not a hash"), False),
        (ResponseError("ERR Error running script (call to f_1): @user_script:12: bad argument"), False),
        (ValueError("not a Redis error"), False),
    ],
)
def test_what_a_retry_may_cure(exc: BaseException, transient: bool) -> None:
    """A write refused for a passing reason is held and retried; any other is dead-lettered."""
    assert rediserrors.is_transient(exc) is transient
