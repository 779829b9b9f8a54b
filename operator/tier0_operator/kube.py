"""The operator's own Kubernetes calls, through `kubernetes_asyncio` (the official client's asyncio port).

kopf watches RegionPairs with its own API access; the operator's actions (Service selector
patches, status, Events, the Lease, Secrets read by name) go through this thin wrapper so a failover's selector
flip is one HTTP round trip with no framework queue in between. Configuration is the library's:
a kubeconfig (with exec credential plugins, relative paths, client certificates) or the in-cluster
service account. The selector patch skips the library's response deserialisation: nothing reads
the answer, and parsing a whole Service costs milliseconds of CPU on the critical path.
"""

import base64
import json
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from tier0_contract import regionpair as rp
from tier0_operator import secrets

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
TransportErrors = (aiohttp.ClientError, OSError, TimeoutError)


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body

    @property
    def conflict(self) -> bool:
        """409, or 422 from a failed JSON-patch `test` (our compare-and-set)."""
        return self.status == 409 or (self.status == 422 and "test" in self.body.lower())


def _error(e: ApiException, what: str) -> ApiError:
    body = e.body.decode() if isinstance(e.body, bytes) else str(e.body or e.reason or "")
    return ApiError(int(e.status or 0), body, what)


async def _unread(call: Awaitable[Any], what: str) -> None:
    """Send a request whose answer nobody reads (`_preload_content=False`): only its status matters."""
    try:
        resp = await call
    except ApiException as e:
        raise _error(e, what) from e
    if resp.status >= 300:
        raise ApiError(resp.status, await resp.text(), what)
    resp.release()


async def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> client.Configuration:
    """KUBECONFIG (or the given path) when set, else the in-cluster service account, else ~/.kube/config;
    `context` picks a kubeconfig context other than its current one (kubectl's --context)."""
    conf = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        await config.load_kube_config(config_file=path, context=context, client_configuration=conf)
        return conf
    try:
        if context is not None:
            raise ConfigException("a context names a kubeconfig's")
        config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
    except ConfigException:
        await config.load_kube_config(context=context, client_configuration=conf)
    return conf


class Kube:
    """The calls the operator makes; one keep-alive connection pool for the operator's lifetime."""

    def __init__(self, configuration: client.Configuration, timeout: float = 10.0) -> None:
        self.api = client.ApiClient(configuration)
        # Typed as Any: the library's stubs lack the per-call options its runtime takes
        # (`_content_type`, `_preload_content`) and plain dict bodies.
        self.core: Any = client.CoreV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.coordination: Any = client.CoordinationV1Api(self.api)
        self.discovery: Any = client.DiscoveryV1Api(self.api)
        self.timeout = timeout

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, timeout: float = 10.0, context: str | None = None) -> "Kube":
        return cls(await load_configuration(kubeconfig, context), timeout)

    async def close(self) -> None:
        await self.api.close()

    # -- Services -------------------------------------------------------------------------------

    async def patch_service(self, namespace: str, name: str, patch: dict[str, Any] | list[dict[str, Any]]) -> None:
        """A merge patch (dict) or a JSON patch (list: the selector flip with its ownership `test`)."""
        call = self.core.patch_namespaced_service(
            name,
            namespace,
            patch,
            _content_type=JSON_PATCH if isinstance(patch, list) else MERGE_PATCH,
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        await _unread(call, f"PATCH service {namespace}/{name}")

    async def service_routing(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """The Service's selector and annotations (each {} when it has none), or None when the
        Service does not exist.

        Read raw (`_preload_content=False`): deserialising a whole V1Service into the library's
        models costs milliseconds of CPU, and this runs on every routing check (and in benchmarks'
        polling loops, where that CPU is taken from the operator being measured)."""
        try:
            resp = await self.core.read_namespaced_service(
                name, namespace, _preload_content=False, _request_timeout=self.timeout
            )
        except ApiException as e:
            raise _error(e, f"GET service {namespace}/{name}") from e
        if resp.status == 404:
            resp.release()
            return None
        if resp.status >= 300:
            raise ApiError(resp.status, await resp.text(), f"GET service {namespace}/{name}")
        body = json.loads(await resp.read())
        selector = dict((body.get("spec") or {}).get("selector") or {})
        return selector, dict((body.get("metadata") or {}).get("annotations") or {})

    async def service_selector(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Service's selector ({} when it has none), or None when the Service does not exist."""
        routing = await self.service_routing(namespace, name)
        return None if routing is None else routing[0]

    # -- EndpointSlices (the Kubernetes witness, endpoints.py) -----------------------------------

    async def list_endpoint_slices(self, namespace: str, selector: str) -> tuple[list[dict[str, Any]], str]:
        """The EndpointSlices matching `selector`, as JSON, and the list's resourceVersion."""
        what = f"LIST endpointslices in {namespace}"
        try:
            resp = await self.discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=selector, _preload_content=False, _request_timeout=self.timeout
            )
        except ApiException as e:
            raise _error(e, what) from e
        if resp.status >= 300:
            raise ApiError(resp.status, await resp.text(), what)
        body = json.loads(await resp.read())
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def watch_endpoint_slices(
        self, namespace: str, selector: str, version: str, seconds: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(ADDED | MODIFIED | DELETED, slice) from `version` on, until the server ends the watch
        after `seconds`; read raw, one JSON event per line (no model deserialisation)."""
        what = f"WATCH endpointslices in {namespace}"
        try:
            resp = await self.discovery.list_namespaced_endpoint_slice(
                namespace,
                label_selector=selector,
                watch=True,
                resource_version=version,
                timeout_seconds=seconds,
                allow_watch_bookmarks=True,
                _preload_content=False,
                _request_timeout=seconds + 30,
            )
        except ApiException as e:
            raise _error(e, what) from e
        try:
            if resp.status >= 300:
                raise ApiError(resp.status, await resp.text(), what)
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise ApiError(int(obj.get("code") or 500), str(obj.get("message")), what)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    yield kind, obj
        finally:
            resp.release()

    # -- RegionPairs ----------------------------------------------------------------------------

    async def get_pair(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = await self.custom.get_namespaced_custom_object(
                rp.GROUP, rp.VERSION, namespace, rp.PLURAL, name, _request_timeout=self.timeout
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise _error(e, f"GET regionpair {namespace}/{name}") from e
        return dict(obj)

    async def patch_pair(self, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        """Merge patch of the RegionPair itself (tests and tools; the operator never edits spec)."""
        try:
            obj = await self.custom.patch_namespaced_custom_object(
                rp.GROUP,
                rp.VERSION,
                namespace,
                rp.PLURAL,
                name,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=self.timeout,
            )
        except ApiException as e:
            raise _error(e, f"PATCH regionpair {namespace}/{name}") from e
        return dict(obj)

    async def patch_status(self, namespace: str, name: str, patch: Any) -> None:
        """A merge patch (dict) or, for a compare-and-set, a JSON patch (list) of the status."""
        call = self.custom.patch_namespaced_custom_object_status(
            rp.GROUP,
            rp.VERSION,
            namespace,
            rp.PLURAL,
            name,
            patch,
            _content_type=JSON_PATCH if isinstance(patch, list) else MERGE_PATCH,
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        await _unread(call, f"PATCH regionpair {namespace}/{name}/status")

    # -- Events, Secrets ------------------------------------------------------------------------

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        call = self.core.create_namespaced_event(
            namespace, event, _preload_content=False, _request_timeout=self.timeout
        )
        await _unread(call, f"POST event in {namespace}")

    async def secret_state(self, namespace: str, name: str) -> secrets.SecretState | None:
        """Which keys a Secret has, its annotations and version (None: it does not exist). One GET by
        name: the operator may not list or watch Secrets."""
        try:
            secret = await self.core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except ApiException as e:
            if e.status == 404:
                return None
            raise _error(e, f"GET secret {namespace}/{name}") from e
        meta = secret.metadata
        return secrets.SecretState(
            annotations=dict(meta.annotations or {}),
            keys=frozenset(secret.data or {}),
            resource_version=str(meta.resource_version),
        )

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        try:
            secret = await self.core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except ApiException as e:
            if e.status == 404:
                return None
            raise _error(e, f"GET secret {namespace}/{name}") from e
        data = secret.data or {}
        return base64.b64decode(data[key]).decode() if key in data else None

    async def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        call = self.core.patch_namespaced_secret(
            name, namespace, patch, _content_type=MERGE_PATCH, _preload_content=False, _request_timeout=self.timeout
        )
        await _unread(call, f"PATCH secret {namespace}/{name}")

    # -- Leases ---------------------------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            lease = await self.coordination.read_namespaced_lease(name, namespace, _request_timeout=self.timeout)
        except ApiException as e:
            if e.status == 404:
                return None
            raise _error(e, f"GET lease {namespace}/{name}") from e
        out: dict[str, Any] = self.api.sanitize_for_serialization(lease)
        return out

    async def put_lease(self, namespace: str, name: str, body: dict[str, Any], create: bool) -> None:
        """Create the Lease, or replace it (the body's resourceVersion makes that a compare-and-set)."""
        try:
            if create:
                await self.coordination.create_namespaced_lease(namespace, body, _request_timeout=self.timeout)
            else:
                await self.coordination.replace_namespaced_lease(name, namespace, body, _request_timeout=self.timeout)
        except ApiException as e:
            raise _error(e, f"PUT lease {namespace}/{name}") from e
