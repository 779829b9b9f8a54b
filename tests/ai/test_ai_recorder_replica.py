"""The access-log recorder on a replica region: nothing is written or lost until promotion."""

import time

import pytest
from redis.asyncio import Redis

from tier0_services.ai.logs import aggregates
from tier0_services.ai.logs.parse import LogEntry
from tier0_services.ai.logs.recorder import AccessLogRecorder

pytestmark = pytest.mark.integration


async def test_replica_keeps_entries_and_writes_them_after_promotion(redis_factory) -> None:  # type: ignore[no-untyped-def]
    _, primary_port = redis_factory()
    _, replica_port = redis_factory("--replicaof", "127.0.0.1", str(primary_port))
    replica = Redis(port=replica_port)
    try:
        recorder = AccessLogRecorder(replica)
        for i in range(5):
            recorder.observe(
                LogEntry(ip=f"10.0.0.{i}", ts=time.time(), method="GET", path="/x", status=400, latency_ms=1.0)
            )
        assert await recorder.flush() == 0  # READONLY: kept, not dropped
        assert recorder.dropped == 0 and recorder.recorded == 0
        # Still a replica: the next flushes only ask the role, the buffer is not folded or sent.
        refused = await _refused_writes(replica)
        assert refused > 0
        for _ in range(3):
            assert await recorder.flush() == 0
        assert await _refused_writes(replica) == refused

        await replica.replicaof("NO", "ONE")
        assert await recorder.flush() == 5
        total, ips = await aggregates.top_ips_for_status(replica, 400, 10)
        assert total == 5 and len(ips) == 5
    finally:
        await replica.aclose()


async def _refused_writes(redis: Redis) -> int:
    """INCRBY calls the server refused (READONLY counts as `rejected_calls`)."""
    stats = (await redis.info("commandstats")).get("cmdstat_incrby", {})
    return int(stats.get("rejected_calls", 0))
