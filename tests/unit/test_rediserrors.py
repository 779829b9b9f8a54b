"""A Redis error reads as a message, never as redis-py's unformatted pipeline template."""

import pytest
from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError, ResponseError

from tier0_services import rediserrors


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
