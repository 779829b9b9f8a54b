"""The region API's Kubernetes access: read, merge-patch and watch one RegionPair.

Through `kubernetes_asyncio`, the official client's asyncio port (the event loop must not block):
its configuration loading handles kubeconfig files (relative paths, embedded or file certificates,
exec credential plugins) and the in-cluster service account (with token rotation). This module adds
only what the API needs on top: where the RegionPair is (`ObjectRef`), a watch-until helper, and
errors split by what the caller can do about them: unreachable or refusing
(`KubeUnavailableError`), the object is missing (`KubeNotFoundError`), someone changed it meanwhile
(`KubeConflictError`), the request itself was rejected (`KubeRequestError`).
"""

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from tier0_contract import regionpair as rp

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"

JsonObject = dict[str, Any]
T = TypeVar("T")


class KubeError(Exception):
    """Any failure talking to the Kubernetes API."""


class KubeConfigError(KubeError):
    """No usable configuration: not in a cluster and no (valid) kubeconfig."""


class KubeUnavailableError(KubeError):
    """The apiserver cannot be reached, answers 5xx, or refuses our credentials."""


class KubeNotFoundError(KubeError):
    """The object (or its resource type: the CRD is not installed) does not exist."""


class KubeConflictError(KubeError):
    """The object changed since we read it (resourceVersion precondition failed)."""


class KubeRequestError(KubeError):
    """The apiserver rejected the request (4xx other than 404/409), e.g. a validation rule."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"kubernetes API answered {status_code}: {message}")
        self.status_code = status_code


@dataclass(frozen=True)
class ObjectRef:
    """Where one namespaced custom object lives."""

    group: str
    version: str
    plural: str
    namespace: str
    name: str

    @property
    def collection_path(self) -> str:
        return f"/apis/{self.group}/{self.version}/namespaces/{self.namespace}/{self.plural}"

    @property
    def path(self) -> str:
        return f"{self.collection_path}/{self.name}"

    def __str__(self) -> str:
        return f"{self.plural}.{self.group} {self.namespace}/{self.name}"


def regionpair_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(rp.GROUP, rp.VERSION, rp.PLURAL, namespace, name)


def build_active_region_patch(target: str, resource_version: str | None = None) -> JsonObject:
    """JSON merge patch that sets `spec.activeRegion` (a planned switchover for the operator).

    With `resource_version` the apiserver applies it only if the object is unchanged since it was
    read (409 otherwise), so a decision taken on a stale view is never written.
    """
    patch: JsonObject = {"spec": {"activeRegion": target}}
    if resource_version is not None:
        patch["metadata"] = {"resourceVersion": resource_version}
    return patch


# --- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeConfig:
    """Where the credentials come from (loaded by the library on first use) and the namespace."""

    kubeconfig: Path | None
    namespace: str = "default"


def load_config(kubeconfig: Path | None, env: dict[str, str] | None = None) -> KubeConfig:
    """`kubeconfig` when given (its current context's namespace), else the in-cluster service account.

    Checked now, so a wrong setting fails at start with a readable reason."""
    if kubeconfig is not None:
        try:
            _, current = config.list_kube_config_contexts(config_file=str(kubeconfig))
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            raise KubeConfigError(f"cannot use kubeconfig {kubeconfig}: {exc}") from exc
        if not current:
            raise KubeConfigError(f"kubeconfig {kubeconfig} has no current-context")
        return KubeConfig(kubeconfig, (current.get("context") or {}).get("namespace") or "default")
    env = dict(os.environ) if env is None else env
    if not env.get("KUBERNETES_SERVICE_HOST") or not (SERVICE_ACCOUNT_DIR / "token").exists():
        raise KubeConfigError("not running in a cluster and no kubeconfig configured (set TIER0_KUBECONFIG)")
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    return KubeConfig(None, namespace_file.read_text().strip() if namespace_file.exists() else "default")


async def _configuration(conf: KubeConfig) -> client.Configuration:
    out = client.Configuration()
    try:
        if conf.kubeconfig is not None:
            await config.load_kube_config(config_file=str(conf.kubeconfig), client_configuration=out)
        else:
            config.load_incluster_config(client_configuration=out)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError) as exc:
        raise KubeConfigError(f"kubernetes configuration unusable: {exc}") from exc
    return out


# --- client ----------------------------------------------------------------------------------------


class KubeClient:
    """get / merge-patch / watch of custom objects; one connection pool for the process."""

    def __init__(self, config: KubeConfig, timeout: float = 5.0) -> None:
        self.config = config
        self._timeout = timeout
        self._api: client.ApiClient | None = None
        self._lock = asyncio.Lock()

    async def _custom(self) -> Any:
        # Any: the library's stubs lack the per-call options its runtime takes (`_content_type`).
        async with self._lock:
            if self._api is None:
                self._api = client.ApiClient(await _configuration(self.config))
        return client.CustomObjectsApi(self._api)

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def get(self, ref: ObjectRef) -> JsonObject:
        api = await self._custom()
        return await _call(
            ref,
            api.get_namespaced_custom_object(
                ref.group, ref.version, ref.namespace, ref.plural, ref.name, _request_timeout=self._timeout
            ),
        )

    async def merge_patch(self, ref: ObjectRef, patch: JsonObject, subresource: str | None = None) -> JsonObject:
        """JSON merge patch (null deletes a field); `subresource="status"` patches the status."""
        api = await self._custom()
        method = (
            api.patch_namespaced_custom_object_status if subresource == "status" else api.patch_namespaced_custom_object
        )
        if subresource not in (None, "status"):
            raise ValueError(f"unsupported subresource {subresource!r}")
        return await _call(
            ref,
            method(
                ref.group,
                ref.version,
                ref.namespace,
                ref.plural,
                ref.name,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            ),
        )

    async def watch(
        self, ref: ObjectRef, resource_version: str, timeout_seconds: int = 30
    ) -> AsyncGenerator[JsonObject, None]:
        """The object's new versions after `resource_version`, until the server ends the watch."""
        api = await self._custom()
        watcher = watch.Watch()
        stream = watcher.stream(
            api.list_namespaced_custom_object,
            ref.group,
            ref.version,
            ref.namespace,
            ref.plural,
            field_selector=f"metadata.name={ref.name}",
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            _request_timeout=timeout_seconds + self._timeout,
        )
        try:
            async for event in stream:
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "DELETED":
                    raise KubeNotFoundError(f"{ref} was deleted")
                if kind in ("ADDED", "MODIFIED"):
                    yield dict(obj)
        except ApiException as exc:
            if exc.status == 410:
                return  # resourceVersion too old: the caller reads the object again
            raise _error(ref, exc) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise KubeUnavailableError(f"kubernetes API unreachable: {exc!r}") from exc
        finally:
            # Close only this watch's streaming response: Watch.close() (its `async with`) would
            # close the shared ApiClient, and every later request of the process would fail.
            if watcher.resp is not None:
                watcher.resp.close()

    async def wait_for(
        self, ref: ObjectRef, check: Callable[[JsonObject], T | None], start: JsonObject | None = None
    ) -> T:
        """Watch `ref` until `check(obj)` returns something other than None, and return that.

        Unbounded: the caller bounds it (asyncio.timeout). `start` is the version already known
        (e.g. a patch's answer), checked first and watched from.
        """
        obj = start if start is not None else await self.get(ref)
        while True:
            if (result := check(obj)) is not None:
                return result
            # aclosing: returning from inside the loop must close the watch's streaming response now,
            # not leave it open until the server's timeout (it held the app's shutdown for 30 s).
            async with contextlib.aclosing(self.watch(ref, obj["metadata"]["resourceVersion"])) as changes:
                async for changed in changes:
                    if (result := check(changed)) is not None:
                        return result
            obj = await self.get(ref)


async def _call(ref: ObjectRef, call: Awaitable[Any]) -> JsonObject:
    try:
        return dict(await call)
    except ApiException as exc:
        raise _error(ref, exc) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise KubeUnavailableError(f"kubernetes API unreachable: {exc!r}") from exc


def _error(ref: ObjectRef, exc: ApiException) -> KubeError:
    return error_for(
        ref, int(exc.status or 0), exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body or exc.reason)
    )


def error_for(ref: ObjectRef, status_code: int, body: str) -> KubeError:
    """The error for an apiserver answer (the Status object's message when there is one)."""
    try:
        message = str(json.loads(body).get("message") or body)
    except (ValueError, AttributeError):
        message = body[:500]
    if status_code == 404:
        return KubeNotFoundError(f"{ref} not found (is the CRD installed and the object created?)")
    if status_code == 409:
        return KubeConflictError(f"{ref} changed meanwhile: {message}")
    if status_code in (401, 403):
        return KubeUnavailableError(f"kubernetes API refused the region API's credentials ({status_code}): {message}")
    if status_code >= 500 or status_code == 429 or status_code == 0:
        return KubeUnavailableError(f"kubernetes API answered {status_code}: {message}")
    return KubeRequestError(status_code, message)


async def with_retries(call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run `call` again when the object changed under it (it re-reads and decides afresh)."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except KubeConflictError:
            continue
    return await call()
