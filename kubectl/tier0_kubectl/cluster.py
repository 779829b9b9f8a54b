"""The plugin's Kubernetes calls, on the operator's client (`tier0_operator.kube`, `kubernetes_asyncio`):
the RegionPair parsed with the contract's model, its Events, and the Redis StatefulSet an unplanned
drill takes down. Every failure becomes a `PluginError` whose message says what to do."""

import json
import os
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException
from pydantic import ValidationError

from tier0_contract import regionpair as rp
from tier0_kubectl import view
from tier0_operator import kube as kubeops

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


class PluginError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _message(e: ApiException | kubeops.ApiError) -> str:
    """The apiserver's Status message (its body otherwise), short."""
    body = e.body
    text = body.decode() if isinstance(body, bytes) else str(body or getattr(e, "reason", "") or "")
    try:
        return str(json.loads(text).get("message") or text)[:300]
    except (ValueError, AttributeError):
        return text[:300]


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context in use (kubectl's default for -n), else the pod's own
    namespace in a cluster, else `default`."""
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError, ValueError, TypeError, KeyError):
        contexts, current = [], None
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    if namespace:
        return str(namespace)
    if not kubeconfig and not os.environ.get("KUBECONFIG") and SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return "default"


class Cluster:
    """One namespace of one cluster, through one keep-alive connection pool."""

    def __init__(self, kube: kubeops.Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.apps: Any = client.AppsV1Api(kube.api)

    @classmethod
    async def connect(
        cls, kubeconfig: str | None, context: str | None, namespace: str | None, timeout: float
    ) -> "Cluster":
        try:
            kube = await kubeops.Kube.connect(kubeconfig, timeout, context)
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as e:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise PluginError(f"no usable Kubernetes configuration ({where}): {e}") from e
        return cls(kube, namespace or context_namespace(kubeconfig, context))

    async def close(self) -> None:
        await self.kube.close()

    async def _call(self, what: str, call: Any) -> Any:
        try:
            return await call
        except ApiException as e:
            if e.status == 404:
                raise PluginError(f"{what}: not found in namespace {self.namespace}") from e
            raise PluginError(f"{what}: HTTP {e.status}: {_message(e)}") from e
        except kubeops.ApiError as e:
            raise PluginError(f"{what}: HTTP {e.status}: {_message(e)}") from e
        except kubeops.TransportErrors as e:
            raise PluginError(f"{what}: the Kubernetes API is unreachable: {e!r}") from e

    # -- RegionPairs ----------------------------------------------------------------------------

    async def pair_names(self) -> list[str]:
        found = await self._call(
            "list regionpairs",
            self.kube.custom.list_namespaced_custom_object(
                rp.GROUP, rp.VERSION, self.namespace, rp.PLURAL, _request_timeout=self.kube.timeout
            ),
        )
        return sorted(str(item["metadata"]["name"]) for item in found.get("items") or [])

    async def resolve(self, name: str | None) -> str:
        """The pair to act on: `name`, or the namespace's only one."""
        if name:
            return name
        names = await self.pair_names()
        if len(names) == 1:
            return names[0]
        if not names:
            raise PluginError(f"no RegionPair in namespace {self.namespace} (use -n NAMESPACE)")
        raise PluginError(f"{len(names)} RegionPairs in namespace {self.namespace}: name one of {', '.join(names)}")

    async def pair(self, name: str) -> rp.RegionPair:
        obj = await self._call(f"get regionpair {name}", self.kube.get_pair(self.namespace, name))
        if obj is None:
            raise PluginError(f'RegionPair "{name}" not found in namespace {self.namespace}')
        try:
            return rp.RegionPair.from_object(obj)
        except ValidationError as e:
            raise PluginError(f"RegionPair {name} does not parse as a tier0 RegionPair: {e}") from e

    async def patch(self, name: str, patch: dict[str, Any]) -> rp.RegionPair:
        obj = await self._call(f"patch regionpair {name}", self.kube.patch_pair(self.namespace, name, patch))
        return rp.RegionPair.from_object(obj)

    # -- Events ---------------------------------------------------------------------------------

    async def events(self, pair: rp.RegionPair) -> list[view.PairEvent]:
        selector = f"involvedObject.kind={rp.KIND},involvedObject.name={pair.metadata.name}"
        found = await self._call(
            "list events",
            self.kube.core.list_namespaced_event(
                self.namespace, field_selector=selector, _preload_content=False, _request_timeout=self.kube.timeout
            ),
        )
        body = json.loads(await found.read())
        uid = pair.metadata.uid
        return [
            view.PairEvent.model_validate(item)
            for item in body.get("items") or []
            if not uid or (item.get("involvedObject") or {}).get("uid") in (None, "", uid)
        ]

    async def record_event(self, body: dict[str, Any]) -> None:
        await self._call("create event", self.kube.create_event(self.namespace, body))

    # -- the Redis StatefulSet of an unplanned drill ----------------------------------------------

    async def replicas(self, statefulset: str) -> tuple[int, str]:
        """The StatefulSet's spec.replicas and its pods' label selector (from its scale subresource)."""
        scale = await self._call(
            f"get statefulset {statefulset}",
            self.apps.read_namespaced_stateful_set_scale(
                statefulset, self.namespace, _request_timeout=self.kube.timeout
            ),
        )
        return int(scale.spec.replicas or 0), str(scale.status.selector or "")

    async def scale(self, statefulset: str, replicas: int) -> None:
        await self._call(
            f"scale statefulset {statefulset}",
            self.apps.patch_namespaced_stateful_set_scale(
                statefulset, self.namespace, {"spec": {"replicas": replicas}}, _request_timeout=self.kube.timeout
            ),
        )

    async def force_delete_pods(self, selector: str) -> list[str]:
        """Delete the selected pods at once (grace period 0): a crash, not a drain (which the operator
        would answer with a switchover)."""
        if not selector:
            return []
        pods = await self._call(
            "list pods",
            self.kube.core.list_namespaced_pod(
                self.namespace, label_selector=selector, _request_timeout=self.kube.timeout
            ),
        )
        names = [str(p.metadata.name) for p in pods.items]
        for name in names:
            try:
                await self.kube.core.delete_namespaced_pod(
                    name, self.namespace, grace_period_seconds=0, _request_timeout=self.kube.timeout
                )
            except ApiException as e:
                if e.status != 404:
                    raise PluginError(f"delete pod {name}: HTTP {e.status}: {_message(e)}") from e
        return names
