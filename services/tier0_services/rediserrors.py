"""redis-py's asyncio pipelines and the error text: how a Redis error reads in a log line or an
HTTP answer, how to raise a pipeline's error with the server's message intact, and whether an
error is worth retrying."""

from typing import Any

from redis import exceptions

TRANSIENT_CODES = (
    "READONLY",
    "NOREPLICAS",
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "OOM",
    "NOSCRIPT",
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
)
"""Answers that say "not now" or "not like this here", not "never": the primary moved or is
loading or lost its replica (the hold of services/README.md), memory is full until something
frees it, or the credentials or ACL are wrong, which a deployment fix cures. Dead-lettering the
data would be the wrong cure for any of these, so writers keep holding it."""

PIPELINE_TEMPLATE = "{exception.args}"
"""redis-py's asyncio pipelines replace an error's message with one that ends in this unformatted
placeholder (`annotate_exception` in redis/asyncio/client.py, redis-py 6.4; the sync client formats
it): the original text is gone."""


def reason(exc: BaseException) -> str:
    """The error's message, never a template: the placeholder becomes the error's class name
    (ReadOnlyError, OutOfMemoryError, ...), which is what is left of the original."""
    text = str(exc).replace(PIPELINE_TEMPLATE, type(exc).__name__)
    return text or type(exc).__name__


def raise_first(results: list[Any]) -> list[Any]:
    """Raise the first error of a pipeline run with `raise_on_error=False`, where the message must
    survive (`NOREPLICAS` is told apart by its text): the exception instances in the results keep
    the server's message that redis-py's own raising replaces with the placeholder."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def is_transient(exc: BaseException) -> bool:
    """Whether a write that failed with `exc` may succeed if retried unchanged: connection
    problems and TRANSIENT_CODES. Anything else (a script error, WRONGTYPE, a bad argument) fails
    the same way every time, and the data it carries has to be set aside instead (dead letters)."""
    if isinstance(exc, (exceptions.ConnectionError, exceptions.TimeoutError, OSError)):
        return True
    if not isinstance(exc, exceptions.RedisError):
        return False
    text = str(exc)
    code = text.split(" ", 1)[0]
    return code in TRANSIENT_CODES or isinstance(
        exc,
        (
            exceptions.ReadOnlyError,
            exceptions.BusyLoadingError,
            exceptions.OutOfMemoryError,
            exceptions.NoPermissionError,
            exceptions.NoScriptError,
        ),
    )


def is_noreplicas(exc: BaseException) -> bool:
    """A primary refusing writes because too few replicas are in sync (`min-replicas-to-write`):
    told apart by the server's text, which `raise_first` keeps."""
    return isinstance(exc, exceptions.ResponseError) and "NOREPLICAS" in str(exc)
