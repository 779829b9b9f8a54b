"""redis-py's asyncio pipelines and the error text: how a Redis error reads in a log line or an
HTTP answer, and how to raise a pipeline's error with the server's message intact."""

from typing import Any

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
