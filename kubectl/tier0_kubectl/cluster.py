"""The plugin's Kubernetes calls, on tier0's one client (`tier0_kube`): the RegionPair as the
contract's model, its Events, and the Redis StatefulSet an unplanned drill takes down. Every failure
becomes a `PluginError` whose message says what to do."""

import json
import os
from collections.abc import Awaitable
from typing import Any, TypeVar

from tier0_contract import regionpair as rp
from tier0_kube import client, errors
from tier0_kubectl import view

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

T = TypeVar("T")


class PluginError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _message(e: errors.KubeError) -> str:
    """The apiserver's Status message (its body otherwise), short."""
    try:
        return str(json.loads(e.body).get("message") or e.body)[:300]
    except (ValueError, AttributeError):
        return e.body[:300]


class Cluster:
    """One namespace of one cluster, through one keep-alive connection pool."""

    def __init__(self, kube: client.Client, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    @classmethod
    async def connect(
        cls, kubeconfig: str | None, context: str | None, namespace: str | None, timeout: float
    ) -> "Cluster":
        """`namespace`, else the kubeconfig context's (kubectl's default for -n), else the pod's own
        namespace in a cluster, else `default`."""
        try:
            kube = await client.connect(kubeconfig, context, timeout=timeout)
        except errors.KubeConfigError as e:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise PluginError(f"no usable Kubernetes configuration ({where}): {e}") from e
        return cls(kube, namespace or kube.namespace)

    async def close(self) -> None:
        await self.kube.close()

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except errors.KubeError as e:
            raise self._error(what, e) from e

    def _error(self, what: str, e: errors.KubeError) -> PluginError:
        if isinstance(e, errors.KubeNotFoundError):
            return PluginError(f"{what}: not found in namespace {self.namespace}")
        if e.status == 0 and not isinstance(e, errors.KubeObjectError):
            return PluginError(f"{what}: the Kubernetes API is unreachable: {e.__cause__!r}")
        return PluginError(f"{what}: HTTP {e.status}: {_message(e)}")

    # -- RegionPairs ----------------------------------------------------------------------------

    async def pair_names(self) -> list[str]:
        return await self._call("list regionpairs", self.kube.pair_names(self.namespace))

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
        try:
            return await self.kube.get_pair(self.namespace, name)
        except errors.KubeNotFoundError as e:
            raise PluginError(f'RegionPair "{name}" not found in namespace {self.namespace}') from e
        except errors.KubeObjectError as e:
            raise PluginError(f"{e} (not a tier0 RegionPair?)") from e
        except errors.KubeError as e:
            raise self._error(f"get regionpair {name}", e) from e

    async def request_region(self, name: str, region: str) -> rp.RegionPair:
        """spec.activeRegion := `region` (the operator switches over to it)."""
        return await self._call(f"patch regionpair {name}", self.kube.request_region(self.namespace, name, region))

    async def set_paused(self, name: str, paused: bool) -> rp.RegionPair:
        return await self._call(f"patch regionpair {name}", self.kube.set_paused(self.namespace, name, paused))

    async def annotate(self, name: str, annotations: dict[str, str | None]) -> rp.RegionPair:
        return await self._call(f"patch regionpair {name}", self.kube.annotate_pair(self.namespace, name, annotations))

    # -- Events ---------------------------------------------------------------------------------

    async def events(self, pair: rp.RegionPair) -> list[view.PairEvent]:
        selector = f"involvedObject.kind={rp.KIND},involvedObject.name={pair.metadata.name}"
        items = await self._call("list events", self.kube.list_events(self.namespace, selector))
        uid = pair.metadata.uid
        return [
            view.PairEvent.model_validate(item)
            for item in items
            if not uid or (item.get("involvedObject") or {}).get("uid") in (None, "", uid)
        ]

    async def record_event(self, body: dict[str, Any]) -> None:
        await self._call("create event", self.kube.create_event(self.namespace, body))

    # -- the Redis StatefulSet of an unplanned drill ----------------------------------------------

    async def replicas(self, statefulset: str) -> tuple[int, str]:
        """The StatefulSet's spec.replicas and its pods' label selector (from its scale subresource)."""
        return await self._call(
            f"get statefulset {statefulset}", self.kube.statefulset_scale(self.namespace, statefulset)
        )

    async def scale(self, statefulset: str, replicas: int) -> None:
        await self._call(
            f"scale statefulset {statefulset}", self.kube.scale_statefulset(self.namespace, statefulset, replicas)
        )

    async def force_delete_pods(self, selector: str) -> list[str]:
        """Delete the selected pods at once (grace period 0): a crash, not a drain (which the operator
        would answer with a switchover)."""
        if not selector:
            return []
        names = await self._call("list pods", self.kube.pod_names(self.namespace, selector))
        for name in names:
            try:
                await self.kube.delete_pod(self.namespace, name, grace_period_seconds=0)
            except errors.KubeNotFoundError:
                continue
            except errors.KubeError as e:
                raise PluginError(f"delete pod {name}: HTTP {e.status}: {_message(e)}") from e
        return names
