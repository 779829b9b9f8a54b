"""Request bodies checked before any endpoint sees them: size, media type, UTF-8, JSON.

FastAPI hands a JSON body to `json.loads`, which accepts lone surrogates (`"\\ud800"`) that later
fail to encode (a 500 deep in Redis or an embedder), and a body that is not UTF-8 to a decoder
whose error it does not catch (a 500 and a reset connection). This pure ASGI middleware reads the
body of every request that has one (bounded: `413` beyond the endpoint's limit, before reading it
all when `Content-Length` says so), and answers:

- `415` when the `Content-Type` is not the one the endpoint reads (JSON, or text for log import);
- `400` when the body is not UTF-8, or (JSON endpoints) not JSON, or JSON holding a lone surrogate;

and replays the body it read to the app otherwise. Requests without a body, and paths no endpoint
serves, pass through untouched.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tier0_services.api.settings import Settings

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class Rejection:
    status: int
    detail: str


@dataclass(frozen=True)
class Operation:
    template: str
    """The path template, as in OpenAPI (`/api/images/site/{site_id}`)."""
    body_media_type: str | None
    """The media type its body is read as (None: it takes no body)."""


class OperationIndex:
    """Which operations serve a path, read from the app's own OpenAPI document: the routing table
    the clients see (and FastAPI's internal route objects differ between its versions)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._paths: list[tuple[re.Pattern[str], dict[str, Operation]]] = []
        for template, operations in schema.get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)) + "$")
            ops = {}
            for method, op in operations.items():
                content = (op.get("requestBody") or {}).get("content") or {}
                ops[method.upper()] = Operation(template, next(iter(content), None))
            self._paths.append((pattern, ops))

    def operations(self, path: str) -> dict[str, Operation]:
        """Every operation on `path`, by method (empty: no documented path matches)."""
        found: dict[str, Operation] = {}
        for pattern, ops in self._paths:
            if pattern.match(path):
                for method, op in ops.items():
                    found.setdefault(method, op)
        return found


def operation_index(app: Any) -> OperationIndex:
    """The index of `app`'s current OpenAPI document (rebuilt when the document is)."""
    schema = app.openapi()
    cached: tuple[int, OperationIndex] | None = getattr(app.state, "operation_index", None)
    if cached is None or cached[0] != id(schema):
        cached = (id(schema), OperationIndex(schema))
        app.state.operation_index = cached
    return cached[1]


def content_type_fits(content_type: str | None, expected: str) -> bool:
    """FastAPI reads a body without `Content-Type` as JSON; `+json` types are JSON too."""
    if content_type is None or not content_type.strip():
        return expected == "application/json"
    mime = content_type.split(";", 1)[0].strip().lower()
    if expected == "application/json":
        return mime == "application/json" or mime.endswith("+json")
    return mime == expected or (expected.startswith("text/") and mime.startswith("text/"))


def check_body(body: bytes, expected: str) -> Rejection | None:
    """Why `body` cannot be read as `expected`, or None when it can (empty bodies: the endpoint's
    own validation says what is missing)."""
    if not body:
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(400, f"request body is not valid UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}")
    if expected == "application/json":
        try:
            # orjson, unlike json.loads, refuses lone surrogates: every string in it is encodable.
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return Rejection(400, f"request body is not valid JSON: {exc}")
    return None


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, upload_paths: Iterable[str]) -> None:
        self.app = app
        self.settings = settings
        self.upload_paths = frozenset(upload_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS or "app" not in scope:
            await self.app(scope, receive, send)
            return
        operation = operation_index(scope["app"]).operations(scope["path"]).get(scope["method"])
        expected = operation.body_media_type if operation is not None else None
        if operation is None or expected is None:
            await self.app(scope, receive, send)
            return
        uploads = operation.template in self.upload_paths
        limit = self.settings.max_upload_bytes if uploads else self.settings.max_body_bytes
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rejection = self._precheck(headers, expected, limit)
        body = b""
        if rejection is None:
            body, rejection = await self._read(receive, limit)
        if rejection is None:
            rejection = check_body(body, expected)
        if rejection is not None:
            await _answer(send, rejection)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _precheck(headers: dict[str, str], expected: str, limit: int) -> Rejection | None:
        length = headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            return Rejection(413, f"request body of {int(length)} bytes is larger than the {limit} bytes accepted here")
        has_body = (length is not None and length.strip() not in ("", "0")) or "transfer-encoding" in headers
        if has_body and not content_type_fits(headers.get("content-type"), expected):
            return Rejection(
                415, f"this endpoint reads {expected}, not {headers.get('content-type') or 'a body without a type'}"
            )
        return None

    @staticmethod
    async def _read(receive: Receive, limit: int) -> tuple[bytes, Rejection | None]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", Rejection(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", Rejection(413, f"request body is larger than the {limit} bytes accepted here")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


async def _answer(send: Send, rejection: Rejection) -> None:
    body = orjson.dumps({"detail": rejection.detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # The unread rest of an oversized body is not drained: closing tells the client to stop.
    if rejection.status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
