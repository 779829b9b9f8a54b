"""kopf registrations: operator settings, the Lease, the loop's liveness stamp, one daemon per
RegionPair, a wake-up on edits.

Handlers only orchestrate; the loop is reconciler.PairReconciler. No create/update handlers
are used: they would make every replica write kopf's progress annotations, while the daemon
loop (the only actor, gated by the Lease) derives everything from spec, status and probes.
Nothing here watches Secrets or Services: the daemon reads the ones its pair names, by name.
"""

import asyncio
import logging
from typing import Any

import kopf

from tier0_contract import liveness
from tier0_contract import regionpair as rp
from tier0_kube import client
from tier0_operator import metrics
from tier0_operator.lease import Elector
from tier0_operator.reconciler import PairReconciler
from tier0_operator.settings import get_settings

log = logging.getLogger("tier0_operator")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # A watch that silently stops delivering events is kopf users' most reported failure
    # (nolar/kopf#204, #232, #585): bound every watch request and reconnect when it goes quiet.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.watching.inactivity_timeout = 70
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    settings.peering.standalone = True  # leader election is our Lease, not kopf peering
    settings.posting.enabled = False  # our Events are posted directly (reporting.Reporter.event)
    # The CRD is installed before the operator (chart, make up, tests): no CRD/namespace
    # watching, which keeps the RBAC to operator/rbac/role.yaml.
    settings.scanning.disabled = True
    settings.persistence.finalizer = rp.FINALIZER

    conf = get_settings()
    # /livez reports this loop's own stamp: the HTTP thread would answer while the loop is wedged.
    clock = liveness.LoopClock()
    memo.liveness_task = asyncio.create_task(liveness.tick_forever(clock), name="liveness")
    metrics.serve(conf.metrics_port, conf.metrics_host, clock, conf.liveness_max_age_seconds)
    kube = await client.connect(conf.kubeconfig)
    elector = Elector(kube, conf.lease_name, conf.lease_namespace, conf.identity, conf.lease_duration_seconds)
    memo.kube, memo.elector = kube, elector
    memo.elector_task = asyncio.create_task(elector.run())
    where = f"{conf.lease_namespace}/{conf.lease_name}"
    log.info("tier0-operator %s: metrics on :%d, lease %s", conf.identity, conf.metrics_port, where)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.liveness_task.cancel()
    memo.elector_task.cancel()
    try:
        await memo.elector.release()
    except Exception as e:  # noqa: BLE001 - shutting down: report, do not mask the exit
        log.warning("lease not released: %s", e)
    await memo.kube.close()


@kopf.on.event(rp.GROUP, rp.VERSION, rp.PLURAL)
def wake(memo: kopf.Memo, spec: Any, status: Any, meta: Any, **_: Any) -> None:
    """Wake the pair's loop at once on a spec edit, instead of at its next probe."""
    if meta.get("generation") != (status or {}).get("observedGeneration"):
        event = memo.get("wake")
        if event is not None:
            event.set()


@kopf.daemon(rp.GROUP, rp.VERSION, rp.PLURAL, cancellation_timeout=5.0)  # type: ignore[arg-type]
async def pair_loop(
    body: kopf.Body, name: str, namespace: str, uid: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    memo.wake = asyncio.Event()
    rec = PairReconciler(namespace, name, uid, memo.kube, memo.elector, get_settings())
    try:
        await rec.run(body, stopped, memo.wake)
    finally:
        metrics.forget_pair(rec.pair, rec.regions)
