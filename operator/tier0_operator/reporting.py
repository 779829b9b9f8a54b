"""A pair's status as this replica knows it, the one place it is written, and its Events.

Split from the loop (reconciler.py) because writing is a job of its own: a status is written only
when it changed (or its probe times are due a refresh), a transition starts with a compare-and-set
on the epoch, each write posts the Events its changed conditions deserve (`decide.events`), Events
of a transition wait until the selector flip is done, and a problem is reported once.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from tier0_contract import regionpair as rp
from tier0_kube import client, errors
from tier0_operator import decide, patches
from tier0_operator.model import now

log = logging.getLogger("tier0_operator.reconciler")  # the loop's: one stream per pair
STATUS_REFRESH_SECONDS = 5.0  # unchanged status is still rewritten this often (lastProbeTime)


class Reporter:
    def __init__(self, namespace: str, name: str, uid: str, kube: client.Client) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.pair = f"{namespace}/{name}"
        self.kube = kube
        self.status = rp.RegionPairStatus()
        self._written = rp.RegionPairStatus()
        self._last_written: dict[str, Any] | None = None
        self._last_write = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._deferred: list[dict[str, Any]] = []
        self._problem: decide.Problem | None = None  # the last problem logged
        self._announced: decide.Problem | None = None  # ... and reported (Event, status) as the leader

    # -- status ---------------------------------------------------------------------------------

    def load(self, raw: Any) -> None:
        self.status = rp.RegionPairStatus.model_validate(dict(raw or {}))
        self._written = self.status
        self._last_written = None

    async def reload(self) -> None:
        try:
            body = await self.kube.read_pair(self.namespace, self.name)
        except errors.KubeNotFoundError:
            return  # deleted meanwhile
        regions = self.status.regions  # keep this replica's own failure counts
        self.load(body.get("status"))
        self.status = self.status.model_copy(update={"regions": regions})

    async def write(self, status: rp.RegionPairStatus, force: bool = False) -> None:
        """Make `status` the pair's; written when it changed, or its probe times are due a refresh."""
        self.status = status
        material = patches.without_probe_times(self.status)
        if (
            not force
            and material == self._last_written
            and time.monotonic() - self._last_write < STATUS_REFRESH_SECONDS
        ):
            return
        try:
            await self.kube.patch_status(self.namespace, self.name, patches.build_status_patch(self.status))
        except errors.KubeError as e:
            if e.status == 404:
                return  # deleted meanwhile
            raise
        self._wrote(material)

    async def write_cas(self, old_epoch: int, status: rp.RegionPairStatus) -> bool:
        """Write `status` only if status.epoch is still `old_epoch` (the start of a transition)."""
        try:
            await self.kube.patch_status(self.namespace, self.name, patches.build_status_cas(old_epoch, status))
        except errors.KubeError as e:
            if not e.conflict:
                raise
            log.warning("%s: epoch %d moved under us; reloading status", self.pair, old_epoch)
            await self.reload()
            return False
        self.status = status
        self._wrote(patches.without_probe_times(status))
        return True

    def _wrote(self, material: dict[str, Any]) -> None:
        self.post(decide.events(self._written, self.status))
        self._written = self.status
        self._last_written, self._last_write = material, time.monotonic()

    # -- problems: reported, never raised ---------------------------------------------------------

    def can_act(self) -> None:
        """This round can act: a problem seen again is news."""
        self._problem = self._announced = None

    async def problem(self, problem: decide.Problem, generation: int, leader: bool) -> None:
        """Ready=False with the problem's reason, an Event and a log line, each once per distinct
        problem; the status and the Event come from the Lease holder only, like every status."""
        if problem != self._problem:
            self._problem = problem
            log.warning("%s: %s: %s", self.pair, problem.reason, problem.message)
        if not leader:
            return
        fresh = problem != self._announced
        if fresh:
            self._announced = problem
            # At once, even inside a transition: a transition that cannot go on never posts its own.
            self.event(problem.reason, problem.message, True, defer=False)
        self.status = decide.problem_status(self.status, problem, generation, now())
        material = patches.without_probe_times(self.status)
        if not fresh and material == self._last_written:
            return
        try:
            await self.kube.patch_status(self.namespace, self.name, patches.build_status_patch(self.status))
        except errors.KubeError as e:
            if e.status != 404:
                raise
            return
        self._written = self.status
        self._last_written, self._last_write = material, time.monotonic()

    async def failure(self, e: Exception, generation: int, leader: bool) -> None:
        """A round that raised: reported as the problem RoundFailed."""
        problem = decide.Problem("RoundFailed", f"{type(e).__name__}: {e}"[:500])
        if problem != self._problem:
            log.error("%s: round failed", self.pair, exc_info=e)  # the traceback, once per distinct error
        try:
            await self.problem(problem, generation, leader)
        except errors.KubeError as err:
            log.warning("%s: round failure not reported: %s", self.pair, err)

    # -- Events ---------------------------------------------------------------------------------

    def event(self, reason: str, message: str, warning: bool = False, defer: bool = True) -> None:
        log.info("%s: event %s: %s", self.pair, reason, message)
        event = patches.build_event(self.namespace, self.name, self.uid, reason, message, now(), warning)
        if defer and self.status.transition is not None:
            # Inside a transition every request competes with the selector flip: post afterwards.
            self._deferred.append(event)
            return
        for e in [*self._deferred, event]:
            self._post(e)
        self._deferred.clear()

    def post(self, events: Iterable[decide.Event]) -> None:
        for e in events:
            self.event(e.reason, e.message, e.warning)

    def _post(self, event: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._post_event(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_event(self, event: dict[str, Any]) -> None:
        try:
            await self.kube.create_event(self.namespace, event)
        except errors.KubeError as e:
            log.warning("%s: event not posted: %s", self.pair, e)

    async def close(self) -> None:
        """Post what a transition left deferred and wait for every Event in flight."""
        for e in self._deferred:
            self._post(e)
        self._deferred.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
