"""Both pipeline writers take their shared knobs from one base (`workersettings.WorkerSettings`):
the same names, defaults and variables, each worker's id and /metrics port its own."""

from typing import Any, TypeVar

import pytest

from tier0_services import workersettings
from tier0_services.activity.settings import Settings as ActivitySettings
from tier0_services.ingest.settings import Settings as IngestSettings

pytestmark = pytest.mark.unit

SHARED = set(workersettings.WorkerSettings.model_fields)


S = TypeVar("S", bound=workersettings.WorkerSettings)


def make(settings: type[S], **values: Any) -> S:
    """Settings from the environment plus `values` (as the worker reads them at start)."""
    return settings(**values)


@pytest.mark.parametrize("settings", [IngestSettings, ActivitySettings])
def test_each_worker_derives_every_shared_knob_from_the_base(settings: type[workersettings.WorkerSettings]) -> None:
    assert issubclass(settings, workersettings.WorkerSettings)
    assert SHARED <= set(settings.model_fields)
    for name in SHARED - {"client_id", "metrics_port"}:  # those two say what they mean per worker
        assert repr(settings.model_fields[name]) == repr(workersettings.WorkerSettings.model_fields[name]), name


def test_ids_ports_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIER0_REGION", "region2")
    monkeypatch.setenv("TIER0_REPLICA_ACK_TIMEOUT", "0.25")
    ingest, activity = make(IngestSettings), make(ActivitySettings)
    assert (ingest.mqtt_client_id, activity.worker_id) == ("tier0-ingest-region2", "tier0-activity-region2")
    assert (ingest.metrics_port, activity.metrics_port) == (9101, 9102)
    assert ingest.replica_ack_timeout == activity.replica_ack_timeout == 0.25
    assert make(IngestSettings, client_id="pod-0").mqtt_client_id == "pod-0"
    urls = ["redis://b:6379/0", "redis://a:6379/0"]
    peers = make(ActivitySettings, redis_url="redis://a:6379/0", peer_redis_urls=urls)
    assert peers.redis_urls == ["redis://a:6379/0", "redis://b:6379/0"]
