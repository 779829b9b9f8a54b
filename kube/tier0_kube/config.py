"""Where the Kubernetes credentials come from: one loader for every component.

In order: an explicit kubeconfig (a path, with an optional context: kubectl's --kubeconfig and
--context), then, when `ambient` lookups are allowed, the KUBECONFIG variable, then the in-cluster
service account, then ~/.kube/config when `ambient`. The library does the loading (exec credential
plugins, relative paths, client certificates, the service account's token rotation); this module
picks the source, checks it now so a wrong setting fails at start with a readable `KubeConfigError`,
and names the namespace a caller defaults to (the context's, else the pod's own, else `default`).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from tier0_kube import errors

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_UNUSABLE = (ConfigException, OSError, ValueError, TypeError, KeyError)


@dataclass(frozen=True)
class KubeConfig:
    """A loaded configuration: the library's `Configuration`, the default namespace and the source."""

    configuration: client.Configuration
    namespace: str
    source: str
    """The kubeconfig path, or `in-cluster`."""


async def load(
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    *,
    ambient: bool = True,
    env: Mapping[str, str] | None = None,
) -> KubeConfig:
    """The configuration to use (see the module's docstring for the order).

    `ambient=False` (a server): only `kubeconfig` or the service account, so a process never picks up
    a developer's KUBECONFIG or ~/.kube/config by accident."""
    env = os.environ if env is None else env
    path = str(kubeconfig) if kubeconfig else (env.get("KUBECONFIG") if ambient else None)
    if path:
        return await _from_kubeconfig(path, context)
    if context is None and env.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT_DIR / "token").exists():
        return _in_cluster()
    home = Path(env["HOME"]) / ".kube" / "config" if env.get("HOME") else None
    if ambient and home is not None and home.exists():
        return await _from_kubeconfig(str(home), context)
    tried = "the in-cluster service account" + (", KUBECONFIG and ~/.kube/config" if ambient else "")
    raise errors.KubeConfigError(f"no Kubernetes configuration: no kubeconfig given, and not {tried}")


async def _from_kubeconfig(path: str, context: str | None) -> KubeConfig:
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
    except _UNUSABLE as exc:
        raise errors.KubeConfigError(f"cannot use kubeconfig {path}: {exc}") from exc
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    if not chosen:
        which = f"no context {context!r}" if context else "no current-context"
        raise errors.KubeConfigError(f"kubeconfig {path} has {which}")
    out = client.Configuration()
    try:
        await config.load_kube_config(config_file=path, context=context, client_configuration=out)
    except _UNUSABLE as exc:
        raise errors.KubeConfigError(f"cannot use kubeconfig {path}: {exc}") from exc
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return KubeConfig(out, str(namespace), path)


def _in_cluster() -> KubeConfig:
    out = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=out)  # type: ignore[no-untyped-call]
    except _UNUSABLE as exc:
        raise errors.KubeConfigError(f"in-cluster service account unusable: {exc}") from exc
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else "default"
    return KubeConfig(out, namespace or "default", "in-cluster")
