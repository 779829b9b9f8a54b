"""A small async client for the Kubernetes API: read, merge-patch and watch one custom resource.

The region API needs three calls on one RegionPair, so it talks REST over httpx instead of pulling in
a generated client. Configuration comes from the in-cluster service account or a kubeconfig file
(token, client certificate, CA; the forms `kind` and the local control plane write). Errors are
split by what the caller can do about them: unreachable or refusing (`KubeUnavailableError`), the
object is missing (`KubeNotFoundError`), someone changed it meanwhile (`KubeConflictError`), the
request itself was rejected (`KubeRequestError`).
"""

import json
import os
import ssl
import tempfile
import time
from base64 import b64decode
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

REGIONPAIR_GROUP = "tier0.dev"
REGIONPAIR_VERSION = "v1alpha1"
REGIONPAIR_PLURAL = "regionpairs"

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

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


class _WatchExpiredError(KubeError):
    """The watch's resourceVersion is too old (410 Gone): list again and watch from there."""


@dataclass(frozen=True)
class ObjectRef:
    """Where one namespaced custom object lives in the REST API."""

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
    return ObjectRef(REGIONPAIR_GROUP, REGIONPAIR_VERSION, REGIONPAIR_PLURAL, namespace, name)


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
    server: str
    namespace: str = "default"
    token: str | None = None
    token_file: Path | None = None
    ca_file: Path | None = None
    ca_data: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    insecure: bool = False


def config_from_kubeconfig(doc: Mapping[str, Any], base_dir: Path, context: str | None = None) -> KubeConfig:
    """The cluster, user and namespace of `context` (default: current-context) of a parsed kubeconfig.

    Relative file paths are relative to the kubeconfig's directory, as kubectl resolves them.
    """

    def named(section: str, name: str) -> Mapping[str, Any]:
        for item in doc.get(section) or []:
            if item.get("name") == name:
                return item.get(section.removesuffix("s")) or {}
        raise KubeConfigError(f"kubeconfig has no {section.removesuffix('s')} named {name!r}")

    def path(value: str | None) -> Path | None:
        return None if not value else (base_dir / value if not Path(value).is_absolute() else Path(value))

    def data_or_file(item: Mapping[str, Any], key: str) -> bytes | None:
        if item.get(f"{key}-data"):
            return b64decode(item[f"{key}-data"])
        file = path(item.get(key))
        return file.read_bytes() if file else None

    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise KubeConfigError("kubeconfig has no current-context")
    ctx = named("contexts", ctx_name)
    cluster = named("clusters", ctx.get("cluster", ""))
    user = named("users", ctx["user"]) if ctx.get("user") else {}
    if not cluster.get("server"):
        raise KubeConfigError(f"kubeconfig cluster of context {ctx_name!r} has no server")
    return KubeConfig(
        server=cluster["server"].rstrip("/"),
        namespace=ctx.get("namespace") or "default",
        token=user.get("token"),
        token_file=path(user.get("tokenFile")),
        ca_file=path(cluster.get("certificate-authority")),
        ca_data=b64decode(cluster["certificate-authority-data"]) if cluster.get("certificate-authority-data") else None,
        client_cert=data_or_file(user, "client-certificate"),
        client_key=data_or_file(user, "client-key"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
    )


def in_cluster_config(env: Mapping[str, str], sa_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeConfig:
    """The pod's service account: token (re-read as the kubelet rotates it), CA and namespace."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (sa_dir / "token").exists():
        raise KubeConfigError("not running in a cluster and no kubeconfig configured (set TIER0_KUBECONFIG)")
    if ":" in host:
        host = f"[{host}]"
    namespace_file = sa_dir / "namespace"
    return KubeConfig(
        server=f"https://{host}:{port}",
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
        token_file=sa_dir / "token",
        ca_file=sa_dir / "ca.crt",
    )


def load_config(kubeconfig: Path | None) -> KubeConfig:
    """`kubeconfig` when given, else the in-cluster service account."""
    if kubeconfig is None:
        return in_cluster_config(os.environ)
    try:
        doc = yaml.safe_load(kubeconfig.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"cannot read kubeconfig {kubeconfig}: {exc}") from exc
    if not isinstance(doc, dict):
        raise KubeConfigError(f"kubeconfig {kubeconfig} is not a mapping")
    return config_from_kubeconfig(doc, kubeconfig.parent)


def _ssl_context(config: KubeConfig) -> ssl.SSLContext | bool:
    if config.insecure:
        return False
    ctx = ssl.create_default_context(
        cafile=str(config.ca_file) if config.ca_file else None,
        cadata=config.ca_data.decode() if config.ca_data else None,
    )
    if config.client_cert and config.client_key:
        # load_cert_chain only reads files; keep them private and only as long as loading takes.
        with tempfile.TemporaryDirectory(prefix="tier0-kube-") as d:
            cert, key = Path(d) / "client.crt", Path(d) / "client.key"
            for file, data in ((cert, config.client_cert), (key, config.client_key)):
                file.touch(mode=0o600)
                file.write_bytes(data)
            ctx.load_cert_chain(cert, key)
    return ctx


class _BearerAuth(httpx.Auth):
    """Bearer token from the config or a file (a projected service-account token is rotated by the
    kubelet, so the file is read again every minute)."""

    REREAD_SECONDS = 60.0

    def __init__(self, token: str | None, token_file: Path | None) -> None:
        self._token, self._file, self._read_at = token, token_file, 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._file is not None and time.monotonic() - self._read_at > self.REREAD_SECONDS:
            try:
                self._token = self._file.read_text().strip()
                self._read_at = time.monotonic()
            except OSError:
                pass  # keep the previous token; the apiserver's 401 will say it is wrong
        if self._token:
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


# --- client ----------------------------------------------------------------------------------------


class KubeClient:
    """get / merge-patch / watch of custom objects; one connection pool for the process."""

    def __init__(self, config: KubeConfig, timeout: float = 5.0) -> None:
        self.config = config
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=config.server,
            verify=_ssl_context(config),
            auth=_BearerAuth(config.token, config.token_file),
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "tier0-region-api"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, ref: ObjectRef) -> JsonObject:
        return await self._request("GET", ref, ref.path)

    async def merge_patch(self, ref: ObjectRef, patch: JsonObject, subresource: str | None = None) -> JsonObject:
        """JSON merge patch (null deletes a field); `subresource="status"` patches the status."""
        return await self._request(
            "PATCH",
            ref,
            f"{ref.path}/{subresource}" if subresource else ref.path,
            content=json.dumps(patch).encode(),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def watch(
        self, ref: ObjectRef, resource_version: str, timeout_seconds: int = 30
    ) -> AsyncIterator[JsonObject]:
        """The object's new versions after `resource_version`, until the server ends the watch."""
        params = {
            "watch": "true",
            "fieldSelector": f"metadata.name={ref.name}",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        timeout = httpx.Timeout(self._timeout, read=timeout_seconds + self._timeout)
        try:
            async with self._http.stream("GET", ref.collection_path, params=params, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise _error(ref, resp.status_code, resp.text)
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            raise _WatchExpiredError(obj.get("message", "resource version too old"))
                        raise _error(ref, int(obj.get("code") or 500), obj.get("message", "watch error"))
                    if event.get("type") == "DELETED":
                        raise KubeNotFoundError(f"{ref} was deleted")
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        yield obj
        except httpx.TransportError as exc:
            raise KubeUnavailableError(f"kubernetes API {self.config.server} unreachable: {exc!r}") from exc

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
            try:
                async for changed in self.watch(ref, obj["metadata"]["resourceVersion"]):
                    if (result := check(changed)) is not None:
                        return result
            except _WatchExpiredError:
                pass
            obj = await self.get(ref)

    async def _request(self, method: str, ref: ObjectRef, url: str, **kwargs: Any) -> JsonObject:
        try:
            resp = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise KubeUnavailableError(f"kubernetes API {self.config.server} unreachable: {exc!r}") from exc
        if resp.status_code >= 400:
            raise _error(ref, resp.status_code, resp.text)
        body: JsonObject = resp.json()
        return body


def _error(ref: ObjectRef, status_code: int, body: str) -> KubeError:
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
    if status_code >= 500 or status_code == 429:
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
