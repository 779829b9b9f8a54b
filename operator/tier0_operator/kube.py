"""A small async Kubernetes REST client (aiohttp) for the operator's own writes.

kopf watches RegionPairs; the operator's actions (Service selector patches, status, Events,
the Lease) go through this client so a failover's selector flip is one HTTP round trip with no
framework queue in between. Credentials come from a kubeconfig or the in-cluster service account.
"""

import base64
import json
import os
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body

    @property
    def conflict(self) -> bool:
        """409, or 422 from a failed JSON-patch `test` (our compare-and-set)."""
        return self.status == 409 or (self.status == 422 and "test" in self.body.lower())


@dataclass
class Credentials:
    server: str
    ssl_context: ssl.SSLContext | bool
    token: str | None = None
    token_file: Path | None = None


def _data_file(data: str) -> str:
    f = tempfile.NamedTemporaryFile(delete=False, prefix="tier0-kube-")
    f.write(base64.b64decode(data))
    f.close()
    return f.name


def load_kubeconfig(path: Path) -> Credentials:
    config = yaml.safe_load(path.read_text())
    ctx_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
    ctx = contexts.get(ctx_name) or next(iter(contexts.values()))
    cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[ctx["cluster"]]
    user = {u["name"]: u["user"] for u in config.get("users", [])}.get(ctx.get("user"), {})
    if cluster.get("insecure-skip-tls-verify"):
        sslctx: ssl.SSLContext | bool = False
    else:
        ca = cluster.get("certificate-authority")
        if cluster.get("certificate-authority-data"):
            ca = _data_file(cluster["certificate-authority-data"])
        sslctx = ssl.create_default_context(cafile=ca)
        cert, key = user.get("client-certificate"), user.get("client-key")
        if user.get("client-certificate-data"):
            cert, key = _data_file(user["client-certificate-data"]), _data_file(user["client-key-data"])
        if cert:
            sslctx.load_cert_chain(cert, key)
    token_file = Path(user["tokenFile"]) if user.get("tokenFile") else None
    return Credentials(
        server=cluster["server"].rstrip("/"), ssl_context=sslctx, token=user.get("token"), token_file=token_file
    )


def load_credentials(kubeconfig: str | None = None) -> Credentials:
    """KUBECONFIG (or the given path) when set, else the in-cluster service account, else ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return load_kubeconfig(Path(path.split(os.pathsep)[0]))
    if (SA_DIR / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return Credentials(
            server=f"https://{host}:{port}",
            ssl_context=ssl.create_default_context(cafile=str(SA_DIR / "ca.crt")),
            token_file=SA_DIR / "token",
        )
    return load_kubeconfig(Path.home() / ".kube" / "config")


class Kube:
    """JSON over HTTPS to one apiserver; one keep-alive session for the operator's lifetime."""

    def __init__(self, creds: Credentials, timeout: float = 10.0) -> None:
        self.creds = creds
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = creds.token
        self._token_read = 0.0

    def _auth(self) -> dict[str, str]:
        if self.creds.token_file and time.monotonic() - self._token_read > 60:
            self._token = self.creds.token_file.read_text().strip()  # projected tokens rotate
            self._token_read = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.creds.ssl_context), timeout=self._timeout
            )
        headers = {"Accept": "application/json", **self._auth()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self._session.request(method, self.creds.server + path, data=data, headers=headers) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, text, method, path)
            return dict(json.loads(text)) if text else {}

    # -- the calls the operator makes -----------------------------------------------------------

    async def patch_service(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/v1/namespaces/{namespace}/services/{name}"
        return await self.request("PATCH", path, patch, "application/merge-patch+json")

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def patch_status(
        self, group_path: str, namespace: str, plural: str, name: str, patch: Any, json_patch: bool = False
    ) -> dict[str, Any]:
        path = f"{group_path}/namespaces/{namespace}/{plural}/{name}/status"
        ctype = "application/json-patch+json" if json_patch else "application/merge-patch+json"
        return await self.request("PATCH", path, patch, ctype)

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        await self.request("POST", f"/api/v1/namespaces/{namespace}/events", event)

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = await self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if not secret or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()
