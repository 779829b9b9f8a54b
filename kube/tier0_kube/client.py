"""`Client`: every Kubernetes call tier0 makes, on one keep-alive connection pool per process.

One request path: each call names what it is about, and any failure leaves as an `errors.KubeError`
(no answer included). One patch path: a dict is a merge patch, a list a JSON patch (`patches`).
RegionPairs are read as the contract's `regionpair.RegionPair`, or raw where a caller works on the
apiserver's object itself. Where the operator needs speed (a failover's selector flip, its status,
Events, the routing checks, the EndpointSlice watch) requests skip the library's model
deserialisation (`_preload_content=False`): parsing a whole Service costs milliseconds of CPU, and
nothing reads a patch's answer.
"""

import base64
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from tier0_contract import regionpair as rp
from tier0_kube import config, errors, patches

T = TypeVar("T")


@dataclass(frozen=True)
class PairRef:
    """Where one RegionPair is."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{rp.PLURAL}.{rp.GROUP} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class SecretState:
    """What the operator reads of a Secret: never the values, only which keys it has."""

    annotations: dict[str, str]
    keys: frozenset[str]
    resource_version: str


async def connect(
    kubeconfig: str | Path | None = None, context: str | None = None, *, ambient: bool = True, timeout: float = 10.0
) -> "Client":
    """A client on the configuration `config.load` finds (`errors.KubeConfigError` when none)."""
    return Client(await config.load(kubeconfig, context, ambient=ambient), timeout)


class Client:
    """The calls of the operator, the region API, `kubectl tier0` and the dev tooling."""

    def __init__(self, conf: config.KubeConfig, timeout: float = 10.0) -> None:
        self.config = conf
        self.namespace = conf.namespace
        """The configuration's default namespace (its context's, or the pod's own)."""
        self.timeout = timeout
        self.api = client.ApiClient(conf.configuration)
        # Typed as Any: the library's stubs lack the per-call options its runtime takes
        # (`_content_type`, `_preload_content`) and plain dict bodies.
        self.core: Any = client.CoreV1Api(self.api)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.coordination: Any = client.CoordinationV1Api(self.api)
        self.discovery: Any = client.DiscoveryV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)

    async def close(self) -> None:
        await self.api.close()

    # -- the request path -------------------------------------------------------------------------

    async def _send(self, what: str, call: Awaitable[Any], json_patch: bool = False) -> Any:
        """The library's answer to `call`, or the `errors.KubeError` for its failure."""
        try:
            return await call
        except ApiException as e:
            raise errors.from_api_exception(what, e, json_patch) from e
        except errors.TRANSPORT_ERRORS as e:
            raise errors.unreachable(what, e) from e

    async def _raw(self, what: str, call: Awaitable[Any], json_patch: bool = False, missing_ok: bool = False) -> Any:
        """The JSON body of a response sent with `_preload_content=False` (None: a 404 and `missing_ok`)."""
        resp = await self._send(what, call, json_patch)
        try:
            if resp.status == 404 and missing_ok:
                return None
            if resp.status >= 300:
                raise errors.from_status(what, resp.status, await resp.text(), json_patch)
            return json.loads(await resp.read())
        except errors.TRANSPORT_ERRORS as e:
            raise errors.unreachable(what, e) from e
        finally:
            resp.release()

    async def _unread(self, what: str, call: Awaitable[Any], json_patch: bool = False) -> None:
        """Send a request whose answer nobody reads: only its status matters."""
        resp = await self._send(what, call, json_patch)
        try:
            if resp.status >= 300:
                raise errors.from_status(what, resp.status, await resp.text(), json_patch)
        except errors.TRANSPORT_ERRORS as e:
            raise errors.unreachable(what, e) from e
        finally:
            resp.release()

    # -- Services -------------------------------------------------------------------------------

    async def patch_service(self, namespace: str, name: str, patch: patches.Patch) -> None:
        """A merge patch (dict) or a JSON patch (list: the selector flip with its ownership `test`)."""
        call = self.core.patch_namespaced_service(
            name,
            namespace,
            patch,
            _content_type=patches.content_type(patch),
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        await self._unread(f"service {namespace}/{name}", call, isinstance(patch, list))

    async def service_routing(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """The Service's selector and annotations (each {} when it has none), or None when the
        Service does not exist. Read raw: this runs on every routing check (and in benchmarks'
        polling loops, where model deserialisation's CPU is taken from the operator measured)."""
        call = self.core.read_namespaced_service(name, namespace, _preload_content=False, _request_timeout=self.timeout)
        body = await self._raw(f"service {namespace}/{name}", call, missing_ok=True)
        if body is None:
            return None
        selector = dict((body.get("spec") or {}).get("selector") or {})
        return selector, dict((body.get("metadata") or {}).get("annotations") or {})

    async def service_selector(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Service's selector ({} when it has none), or None when the Service does not exist."""
        routing = await self.service_routing(namespace, name)
        return None if routing is None else routing[0]

    # -- EndpointSlices (the operator's Kubernetes witness) -------------------------------------

    async def list_endpoint_slices(self, namespace: str, selector: str) -> tuple[list[dict[str, Any]], str]:
        """The EndpointSlices matching `selector`, as JSON, and the list's resourceVersion."""
        call = self.discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=self.timeout
        )
        body = await self._raw(f"endpointslices in {namespace}", call)
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def watch_endpoint_slices(
        self, namespace: str, selector: str, version: str, seconds: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(ADDED | MODIFIED | DELETED, slice) from `version` on, until the server ends the watch
        after `seconds`; read raw, one JSON event per line."""
        what = f"watch of endpointslices in {namespace}"
        call = self.discovery.list_namespaced_endpoint_slice(
            namespace,
            label_selector=selector,
            watch=True,
            resource_version=version,
            timeout_seconds=seconds,
            allow_watch_bookmarks=True,
            _preload_content=False,
            _request_timeout=seconds + 30,
        )
        resp = await self._send(what, call)
        try:
            if resp.status >= 300:
                raise errors.from_status(what, resp.status, await resp.text())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise errors.from_status(what, int(obj.get("code") or 500), json.dumps(obj))
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    yield kind, obj
        except errors.TRANSPORT_ERRORS as e:
            raise errors.unreachable(what, e) from e
        finally:
            resp.release()

    # -- RegionPairs ----------------------------------------------------------------------------

    async def pair_names(self, namespace: str) -> list[str]:
        """The names of the namespace's RegionPairs, sorted."""
        call = self.custom.list_namespaced_custom_object(
            rp.GROUP, rp.VERSION, namespace, rp.PLURAL, _request_timeout=self.timeout
        )
        found = await self._send(f"{rp.PLURAL}.{rp.GROUP} in {namespace}", call)
        return sorted(str(item["metadata"]["name"]) for item in found.get("items") or [])

    async def read_pair(self, namespace: str, name: str) -> dict[str, Any]:
        """The RegionPair as the apiserver returns it (`errors.KubeNotFoundError` when it does not exist)."""
        call = self.custom.get_namespaced_custom_object(
            rp.GROUP, rp.VERSION, namespace, rp.PLURAL, name, _request_timeout=self.timeout
        )
        return dict(await self._send(str(PairRef(namespace, name)), call))

    async def get_pair(self, namespace: str, name: str) -> rp.RegionPair:
        """The RegionPair as the contract's model (`errors.KubeObjectError` when it does not parse)."""
        return parse_pair(await self.read_pair(namespace, name))

    async def request_region(
        self, namespace: str, name: str, target: str, resource_version: str | None = None
    ) -> rp.RegionPair:
        """Ask for `target` to be active (spec.activeRegion), only if the pair is still at
        `resource_version` when one is given (`errors.KubeConflictError` otherwise)."""
        return parse_pair(await self._patch_pair(namespace, name, patches.active_region(target, resource_version)))

    async def set_paused(self, namespace: str, name: str, paused: bool) -> rp.RegionPair:
        return parse_pair(await self._patch_pair(namespace, name, patches.paused(paused)))

    async def annotate_pair(self, namespace: str, name: str, annotations: dict[str, str | None]) -> rp.RegionPair:
        return parse_pair(await self._patch_pair(namespace, name, patches.annotations(annotations)))

    async def _patch_pair(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        call = self.custom.patch_namespaced_custom_object(
            rp.GROUP,
            rp.VERSION,
            namespace,
            rp.PLURAL,
            name,
            patch,
            _content_type=patches.MERGE_PATCH,
            _request_timeout=self.timeout,
        )
        return dict(await self._send(str(PairRef(namespace, name)), call))

    async def patch_status(self, namespace: str, name: str, patch: patches.Patch) -> None:
        """A merge patch (dict) or, for a compare-and-set, a JSON patch (list) of the status."""
        call = self.custom.patch_namespaced_custom_object_status(
            rp.GROUP,
            rp.VERSION,
            namespace,
            rp.PLURAL,
            name,
            patch,
            _content_type=patches.content_type(patch),
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        await self._unread(f"{PairRef(namespace, name)} status", call, isinstance(patch, list))

    async def watch_pair(
        self, namespace: str, name: str, resource_version: str, timeout_seconds: int = 30
    ) -> AsyncGenerator[rp.RegionPair, None]:
        """The pair's new versions after `resource_version`, until the server ends the watch (or
        the version is too old: the caller reads the pair again)."""
        ref = PairRef(namespace, name)
        watcher = watch.Watch()
        stream = watcher.stream(
            self.custom.list_namespaced_custom_object,
            rp.GROUP,
            rp.VERSION,
            namespace,
            rp.PLURAL,
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            _request_timeout=timeout_seconds + self.timeout,
        )
        try:
            async for event in stream:
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "DELETED":
                    raise errors.KubeNotFoundError(f"{ref} was deleted", 404)
                if kind in ("ADDED", "MODIFIED"):
                    yield parse_pair(obj)
        except ApiException as exc:
            if exc.status == 410:
                return
            raise errors.from_api_exception(str(ref), exc) from exc
        except errors.TRANSPORT_ERRORS as exc:
            raise errors.unreachable(str(ref), exc) from exc
        finally:
            # Close only this watch's streaming response: Watch.close() (its `async with`) would
            # close the shared ApiClient, and every later request of the process would fail.
            if watcher.resp is not None:
                watcher.resp.close()

    async def wait_for_pair(
        self,
        namespace: str,
        name: str,
        check: Callable[[rp.RegionPair], T | None],
        start: rp.RegionPair | None = None,
    ) -> T:
        """Watch the pair until `check(pair)` returns something other than None, and return that.

        Unbounded: the caller bounds it (asyncio.timeout). `start` is the version already known
        (e.g. a patch's answer), checked first and watched from."""
        pair = start if start is not None else await self.get_pair(namespace, name)
        while True:
            if (result := check(pair)) is not None:
                return result
            # aclosing: returning from inside the loop must close the watch's streaming response now,
            # not leave it open until the server's timeout (it held the API's shutdown for 30 s).
            async with contextlib.aclosing(self.watch_pair(namespace, name, pair.metadata.resource_version)) as seen:
                async for changed in seen:
                    if (result := check(changed)) is not None:
                        return result
            pair = await self.get_pair(namespace, name)

    # -- Events ---------------------------------------------------------------------------------

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        call = self.core.create_namespaced_event(
            namespace, event, _preload_content=False, _request_timeout=self.timeout
        )
        await self._unread(f"event in {namespace}", call)

    async def list_events(self, namespace: str, field_selector: str | None = None) -> list[dict[str, Any]]:
        """The namespace's Events (those `field_selector` selects), as JSON."""
        call = self.core.list_namespaced_event(
            namespace, field_selector=field_selector, _preload_content=False, _request_timeout=self.timeout
        )
        return list((await self._raw(f"events in {namespace}", call)).get("items") or [])

    # -- Secrets (read by name: the operator may not list or watch them) ------------------------

    async def secret_state(self, namespace: str, name: str) -> SecretState | None:
        """Which keys a Secret has, its annotations and version (None: it does not exist)."""
        secret = await self._secret(namespace, name)
        if secret is None:
            return None
        meta = secret.metadata
        return SecretState(
            annotations=dict(meta.annotations or {}),
            keys=frozenset(secret.data or {}),
            resource_version=str(meta.resource_version),
        )

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One key's value, decoded (None: no such Secret or key)."""
        secret = await self._secret(namespace, name)
        data = (secret.data if secret is not None else None) or {}
        return base64.b64decode(data[key]).decode() if key in data else None

    async def _secret(self, namespace: str, name: str) -> Any:
        try:
            return await self._send(
                f"secret {namespace}/{name}",
                self.core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout),
            )
        except errors.KubeNotFoundError:
            return None

    async def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        call = self.core.patch_namespaced_secret(
            name,
            namespace,
            patch,
            _content_type=patches.MERGE_PATCH,
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        await self._unread(f"secret {namespace}/{name}", call)

    # -- Leases ---------------------------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            lease = await self._send(
                f"lease {namespace}/{name}",
                self.coordination.read_namespaced_lease(name, namespace, _request_timeout=self.timeout),
            )
        except errors.KubeNotFoundError:
            return None
        out: dict[str, Any] = self.api.sanitize_for_serialization(lease)
        return out

    async def put_lease(self, namespace: str, name: str, body: dict[str, Any], create: bool) -> None:
        """Create the Lease, or replace it (the body's resourceVersion makes that a compare-and-set)."""
        if create:
            call = self.coordination.create_namespaced_lease(namespace, body, _request_timeout=self.timeout)
        else:
            call = self.coordination.replace_namespaced_lease(name, namespace, body, _request_timeout=self.timeout)
        await self._send(f"lease {namespace}/{name}", call)

    # -- StatefulSets and pods (an unplanned drill's fault) --------------------------------------

    async def statefulset_scale(self, namespace: str, name: str) -> tuple[int, str]:
        """The StatefulSet's spec.replicas and its pods' label selector (from its scale subresource)."""
        scale = await self._send(
            f"statefulset {namespace}/{name}",
            self.apps.read_namespaced_stateful_set_scale(name, namespace, _request_timeout=self.timeout),
        )
        return int(scale.spec.replicas or 0), str(scale.status.selector or "")

    async def scale_statefulset(self, namespace: str, name: str, replicas: int) -> None:
        await self._send(
            f"statefulset {namespace}/{name}",
            self.apps.patch_namespaced_stateful_set_scale(
                name, namespace, {"spec": {"replicas": replicas}}, _request_timeout=self.timeout
            ),
        )

    async def pod_names(self, namespace: str, selector: str) -> list[str]:
        pods = await self._send(
            f"pods in {namespace}",
            self.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=self.timeout),
        )
        return [str(p.metadata.name) for p in pods.items]

    async def delete_pod(self, namespace: str, name: str, grace_period_seconds: int | None = None) -> None:
        await self._send(
            f"pod {namespace}/{name}",
            self.core.delete_namespaced_pod(
                name, namespace, grace_period_seconds=grace_period_seconds, _request_timeout=self.timeout
            ),
        )


def parse_pair(obj: Any) -> rp.RegionPair:
    """An apiserver object as the contract's RegionPair (`errors.KubeObjectError` when it does not parse)."""
    try:
        return rp.RegionPair.from_object(obj)
    except ValidationError as exc:
        meta = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
        where = f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
        raise errors.KubeObjectError(f"RegionPair {where} does not match its schema: {exc}") from None


async def with_retries(call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run `call` again when the object changed under it (it re-reads and decides afresh)."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except errors.KubeConflictError:
            continue
    return await call()
