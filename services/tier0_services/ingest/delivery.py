"""A batch from write to acknowledgement: write, salvage, hold until replicated, confirm, acknowledge.

Split from the worker's loops (worker.py) because this is the part that must never lose a message:
a batch is acknowledged to the broker only when `ackpolicy` (pure: what comes next after each
outcome) says it may, and is otherwise held, written again or, when Redis keeps refusing it,
salvaged message by message. This module does the I/O the policy asks for (the writes, the `WAIT`s,
the pauses, the logging and the counting) and nothing else; the flush loop decides only when to
take a batch and in which order batches finish.

Two paths: the fast one writes a batch without `WAIT` (`write_once`) and confirms it on a replica
afterwards (`finish`), so the next batch is written meanwhile; the slow one (`_write`), taken after
any error, writes with `WAIT` in the same round trip and re-resolves the primary until the policy
accepts.
"""

import asyncio
import logging
import time

from redis.exceptions import RedisError

from tier0_contract import keys
from tier0_services import ackpolicy, heartbeat, primary, rediserrors
from tier0_services.ingest import batch, inbox, session, store
from tier0_services.ingest.metrics import IngestMetrics
from tier0_services.ingest.settings import Settings

log = logging.getLogger("tier0.ingest")

STOP_CHECK_S = 0.1
"""How often a worker waiting for a primary looks whether it is stopping."""

Written = tuple[store.Applied, int]
"""What the fast path wrote, and to which endpoint."""


class Delivery:
    def __init__(
        self,
        config: Settings,
        metrics: IngestMetrics,
        resolver: primary.AsyncPrimary,
        stores: list[store.Store],
        progress: heartbeat.Progress,
        inbox: inbox.Inbox,
        session: session.Session,
        stopping: asyncio.Event,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.primary = resolver
        self.stores = stores
        self.progress = progress
        self.inbox = inbox
        self.session = session
        self._stopping = stopping

    # --- the fast path: write now, confirm in a task of its own ---------------------------------

    async def write_once(self, prepared: batch.Prepared) -> Written | None:
        """One write (no WAIT) to the current primary; None after an error (`finish` then takes
        the slow path, which retries)."""
        i = await self._current_primary()
        try:
            return await self.stores[i].apply(prepared), i
        except (RedisError, OSError) as exc:
            self.metrics.write_errors.labels(ackpolicy.classify(exc)).inc()
            self.primary.poke()
            return None

    async def finish(self, taken: inbox.Taken, written: Written | None, previous: "asyncio.Task[None] | None") -> None:
        """Confirm what `write_once` wrote (or write it the slow way), wait for the `previous`
        batch's finish (acknowledgements stay in order), then acknowledge."""
        started = time.perf_counter()
        try:
            outcome: ackpolicy.Ack | None = None
            if written is not None:
                applied, i = written
                outcome = await self._confirm(i)
            if outcome is None:
                if self._stopping.is_set():  # leave the batch unacknowledged: the broker redelivers it
                    raise asyncio.CancelledError
                applied, outcome = await self._write(taken.prepared)  # the slow path: write + WAIT, re-resolving
            if previous is not None:
                await previous
        finally:
            self.inbox.done(taken)
        self._acknowledge(taken, applied, outcome, started)

    async def _confirm(self, i: int) -> ackpolicy.Ack | None:
        """Whether everything written to endpoint `i` so far may be acknowledged
        (`ackpolicy.before_confirm`, then one `_wait_on`). None: the primary moved or failed
        (write again)."""
        step = ackpolicy.before_confirm(self.config.replicated_ack, i, self.primary.choice)
        if step.action is not ackpolicy.Action.HOLD:
            return step.ack
        step = ackpolicy.after_confirm(await self._wait_on(i))
        if step.action is ackpolicy.Action.ACKNOWLEDGE:
            return step.ack
        if step.action is ackpolicy.Action.WRITE_AGAIN:
            self.primary.poke()
            return None
        return await self._hold_until_replicated(i)

    def _acknowledge(self, taken: inbox.Taken, applied: store.Applied, outcome: ackpolicy.Ack, started: float) -> None:
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.acks.inc(self.session.ack(taken.acks()))
        n = len(taken.messages)
        if outcome == "at_risk":
            self.metrics.at_risk.inc(n)
        m = self.metrics.messages
        m.labels("stored").inc(applied.stored)
        m.labels("stale").inc(applied.stale)
        m.labels("duplicate").inc(applied.duplicate)
        m.labels("invalid").inc(applied.invalid)
        m.labels("too_old").inc(applied.too_old)
        m.labels("failed").inc(applied.failed)
        self.metrics.future_clamped.inc(applied.future_clamped)
        self.metrics.batch_size.observe(n)
        self.progress.stored += n
        self.progress.last_stored = time.monotonic()
        if taken.prepared.newest_ts:
            self.metrics.lag.set(max(0.0, taken.now - taken.prepared.newest_ts))

    # --- the slow path: write + WAIT until the policy accepts -----------------------------------

    async def _current_primary(self) -> int:
        """The current primary's index, waiting while there is none (a transition, or a worker that
        knows only its own Redis, which is a replica now). A stopping worker stops waiting: the
        batch stays unacknowledged and the broker redelivers it (without this a worker holding a
        batch never finished its SIGTERM and was killed after its grace period)."""
        while True:
            if self._stopping.is_set():
                raise asyncio.CancelledError
            try:
                async with asyncio.timeout(STOP_CHECK_S):
                    return await self.primary.primary()
            except TimeoutError:
                continue

    async def _write(self, prepared: batch.Prepared) -> tuple[store.Applied, ackpolicy.Ack]:
        """Write until the batch may be acknowledged (`ackpolicy`): a batch is never dropped, only
        delayed (it stays unacknowledged). Re-written after a primary change (the script makes that
        harmless)."""
        pause = ackpolicy.FIRST_PAUSE_S
        refused = 0
        timeout_ms = int(self.config.replica_ack_timeout * 1000)
        while True:
            i = await self._current_primary()
            wait = ackpolicy.wait_replicas(self.config.replicated_ack, self.primary.choice.observation)
            try:
                applied = await self.stores[i].apply(prepared, wait_replicas=wait, wait_timeout_ms=timeout_ms)
            except (RedisError, OSError) as exc:
                step = ackpolicy.after_write_error(exc, refused)
                refused = step.refused
                assert step.error is not None
                self.metrics.write_errors.labels(step.error).inc()
                _log_write_error(exc, step, pause)
                if step.action is ackpolicy.Action.DEAD_LETTER:
                    salvaged = await self._salvage_and_confirm(i, prepared)
                    if salvaged is not None:
                        return salvaged
                    refused = 0  # the primary moved meanwhile: the whole batch again
                if step.error == "readonly":  # the promoted primary is found within a resolution
                    self.primary.poke()
                    await asyncio.sleep(min(pause, self.config.resolve_interval))
                    pause = ackpolicy.next_pause(pause)
                    continue
            else:
                step = ackpolicy.after_write(self.config.replicated_ack, applied.replicas)
                if step.action is ackpolicy.Action.ACKNOWLEDGE and step.ack is not None:
                    return applied, step.ack
                outcome = await self._hold_until_replicated(i)
                if outcome is not None:
                    return applied, outcome
                if self._stopping.is_set():  # leave the batch unacknowledged: the broker redelivers it
                    raise asyncio.CancelledError
                continue  # the primary moved or failed while holding: write the batch again
            self.primary.poke()
            await asyncio.sleep(pause)
            pause = ackpolicy.next_pause(pause)

    async def _hold_until_replicated(self, i: int) -> ackpolicy.Ack | None:
        """After a write no replica confirmed, hold it (`ackpolicy.while_holding`): ask again with
        a backoff until a replica confirms, the policy accepts it at risk, or the primary moves.
        None: write again."""
        pause = ackpolicy.FIRST_PAUSE_S
        while not self._stopping.is_set():
            step = ackpolicy.while_holding(i, self.primary.choice)
            if step.action is not ackpolicy.Action.HOLD:
                return step.ack
            self.metrics.replication_holds.inc()
            await asyncio.sleep(pause)
            pause = ackpolicy.next_pause(pause)
            result = await self._wait_on(i)
            step = ackpolicy.after_confirm(result)
            if step.error == "noreplicas":  # same primary, still without a replica: keep holding
                self.metrics.write_errors.labels("noreplicas").inc()
            if step.action is ackpolicy.Action.WRITE_AGAIN:
                log.warning("holding a batch: %s", result)
                self.primary.poke()
                return None
            if step.action is ackpolicy.Action.ACKNOWLEDGE:
                return step.ack
        return None

    async def _wait_on(self, i: int) -> int | BaseException:
        """This worker's heartbeat + `WAIT 1` on endpoint `i`: how many replicas confirmed, or the
        error. Any write on any connection followed by WAIT covers everything written before it."""
        script_keys, argv = self.progress.args(time.monotonic())
        try:
            async with self.primary.clients[i].pipeline(transaction=False) as pipe:
                pipe.eval(heartbeat.LUA, len(script_keys), *script_keys, *argv)
                pipe.wait(1, int(self.config.replica_ack_timeout * 1000))
                _, replicas = rediserrors.raise_first(await pipe.execute(raise_on_error=False))
        except (RedisError, OSError) as exc:
            return exc
        return int(replicas)

    # --- a batch Redis keeps refusing -----------------------------------------------------------

    async def _salvage_and_confirm(
        self, i: int, prepared: batch.Prepared
    ) -> tuple[store.Applied, ackpolicy.Ack] | None:
        """The batch was refused REFUSED_ATTEMPTS times for a reason retrying does not cure: write
        what can be written, dead-letter what cannot (`_salvage`), then confirm it on a replica as
        any write. None: a transient error or a primary change on the way (write the batch again)."""
        try:
            applied = await self._salvage(self.stores[i], prepared)
        except (RedisError, OSError) as exc:  # transient only: _salvage handles the rest itself
            log.warning("salvaging a refused batch: %s; writing it again", rediserrors.reason(exc))
            self.primary.poke()
            return None
        outcome = await self._confirm(i)
        return None if outcome is None else (applied, outcome)

    async def _salvage(self, target: store.Store, prepared: batch.Prepared) -> store.Applied:
        """Halves of a refused batch are written on their own, down to single messages; a message
        the store still refuses becomes a dead letter (`store: <reason>`), counted as `failed`. So
        one message that breaks the script costs only itself, and a key of the wrong type costs
        every message (each one dead-lettered and counted), never an endless retry. Bounded: at
        most 2n-1 writes for n messages. Transient errors propagate (the caller holds)."""
        now = time.time()
        failed: list[bytes] = []
        totals = [0, 0, 0]

        async def write(start: int, stop: int) -> None:
            try:
                part = await target.apply(batch.records_only(prepared, start, stop))
            except RedisError as exc:
                if rediserrors.is_transient(exc):
                    raise
                if stop - start == 1:
                    failed.append(batch.failed_record(prepared.records[start], rediserrors.reason(exc), now))
                    return
                middle = (start + stop) // 2
                await write(start, middle)
                await write(middle, stop)
                return
            totals[0] += part.stored
            totals[1] += part.stale
            totals[2] += part.duplicate

        if prepared.records:
            await write(0, len(prepared.records))
        letters = batch.dead_letters_only(prepared, failed)
        if letters.dead_letters or letters.future_clamped:
            try:
                await target.apply(letters)
            except RedisError as exc:
                if rediserrors.is_transient(exc):
                    raise
                log.error(
                    "the dead letters of a refused batch were refused too (%s): %d message(s) acknowledged "
                    "without a trace in Redis",
                    rediserrors.reason(exc),
                    letters.rejected,
                )
                self.metrics.messages.labels("lost").inc(letters.rejected)
                letters, failed = batch.dead_letters_only(batch.Prepared()), []
        if failed:
            log.error("%d message(s) refused by the store dead-lettered to %s", len(failed), keys.DEVICES_DEAD_LETTER)
        return store.Applied(
            totals[0],
            totals[1],
            totals[2],
            letters.invalid,
            letters.too_old,
            prepared.future_clamped,
            failed=len(failed),
        )


def _log_write_error(exc: BaseException, step: ackpolicy.Step, pause: float) -> None:
    why = rediserrors.reason(exc)
    if step.error == "readonly":
        log.warning("redis answered READONLY: re-resolving the primary")
    elif step.error == "connection":
        log.warning("redis write failed (%s); retrying in %.2f s", why, pause)
    elif step.error == "noreplicas":
        log.warning("primary refuses writes (NOREPLICAS): holding; retrying in %.2f s", pause)
    elif step.error == "other":
        log.error("redis write failed (%s); retrying in %.2f s", why, pause)
    else:
        log.error("redis refused the batch (%s), attempt %d of %d", why, step.refused, ackpolicy.REFUSED_ATTEMPTS)
