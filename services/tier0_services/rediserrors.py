"""How a Redis error reads in a log line or an HTTP answer."""

PIPELINE_TEMPLATE = "{exception.args}"
"""redis-py's pipelines replace an error's message with one that ends in this unformatted
placeholder (`annotate_exception` in redis/asyncio/client.py, redis-py 6.4; the sync client formats it): the
original text is gone. tier0_services.ingest.store.raise_first_error avoids it where the text matters."""


def reason(exc: BaseException) -> str:
    """The error's message, never a template: the placeholder becomes the error's class name
    (ReadOnlyError, OutOfMemoryError, ...), which is what is left of the original."""
    text = str(exc).replace(PIPELINE_TEMPLATE, type(exc).__name__)
    return text or type(exc).__name__
