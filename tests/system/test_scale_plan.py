"""`make bench BENCH=scale`'s pure parts (tests/bench/scaleplan.py) and the prober's `latency` mode
(tests/system/prober.py, against a real local HTTP server): step planning, the rate/interval choice,
the kubelet's stats per component, saturation, memory per identity, the simulator Job and the rows."""

import contextlib
import http.server
import io
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path[:0] = [str(Path(__file__).parents[1] / "bench"), str(Path(__file__).parents[1] / "system")]

import prober  # noqa: E402
import scaleplan as plan  # noqa: E402

pytestmark = pytest.mark.unit


def test_ramp_keeps_the_rate_until_the_interval_would_outlast_a_step() -> None:
    steps = plan.ramp([1_000, 10_000, 30_000, 100_000], 500.0, 60.0, 2000.0, 2)
    assert [s.interval for s in steps] == [2.0, 20.0, 60.0, 60.0]
    assert [round(s.rate) for s in steps] == [500, 500, 500, 1667]
    assert [s.shards for s in steps] == [1, 1, 1, 1]
    assert all(s.kind == "ramp" and s.workers is None for s in steps)


def test_shards_follow_the_rate_up_to_the_cap() -> None:
    assert plan.shards_for(10.0, 2000.0, 2) == 1
    assert plan.shards_for(2000.0, 2000.0, 2) == 1
    assert plan.shards_for(2001.0, 2000.0, 2) == 2
    assert plan.shards_for(1e6, 2000.0, 2) == 2


def test_push_doubles_the_rate_on_the_same_fleet_up_to_the_maximum() -> None:
    steps = plan.push(10_000, 1000.0, 2.0, 8000.0, 2000.0, 2)
    assert [s.rate for s in steps] == [1000.0, 2000.0, 4000.0, 8000.0]
    assert [s.interval for s in steps] == [10.0, 5.0, 2.5, 1.25]
    assert [s.shards for s in steps] == [1, 1, 2, 2]
    assert plan.push(10_000, 1000.0, 2.0, 999.0, 2000.0, 2) == []


def test_scale_out_repeats_the_step_with_each_worker_count() -> None:
    base = plan.Step("push", 10_000, 2.5, 2)
    steps = plan.scale_out(base, [1, 2, 4])
    assert [(s.kind, s.devices, s.interval, s.shards, s.workers) for s in steps] == [
        ("workers", 10_000, 2.5, 2, 1),
        ("workers", 10_000, 2.5, 2, 2),
        ("workers", 10_000, 2.5, 2, 4),
    ]
    assert steps[1].label == "workers 10,000 dev @ 4,000/s, 2 ingest"


def test_a_step_runs_at_least_one_interval_and_the_budget_is_checked_ahead() -> None:
    assert plan.step_seconds(10.0, 45.0, 2.0) == 60.0
    assert plan.step_seconds(10.0, 45.0, 60.0) == 75.0
    assert plan.fits(100.0, 100.0, 200.0)
    assert not plan.fits(100.1, 100.0, 200.0)


def test_component_names_carry_the_region() -> None:
    labels = {"app.kubernetes.io/component": "ingest", "tier0.dev/region": "region2"}
    assert plan.component_of(labels) == "ingest region2"
    assert plan.component_of({"app.kubernetes.io/component": "device-simulator"}) == "device-simulator"
    assert plan.component_of({}) == "other"


def summary(pods: dict[str, tuple[float, int]], node: tuple[float, int]) -> dict[str, Any]:
    """A kubelet /stats/summary document: pod -> (CPU core-seconds, working set bytes)."""

    def stats(cpu: float, mem: int) -> dict[str, Any]:
        return {"cpu": {"usageCoreNanoSeconds": int(cpu * 1e9)}, "memory": {"workingSetBytes": mem}}

    return {
        "node": {"nodeName": "n", **stats(*node)},
        "pods": [{"podRef": {"name": name, "namespace": "tier0"}, **stats(*v)} for name, v in pods.items()],
    }


def test_cores_per_component_from_two_kubelet_readings() -> None:
    components = {"ingest-0": "ingest region1", "ingest-1": "ingest region1", "redis-0": "redis region1", "sim": "s"}
    before = plan.usage_by_pod(summary({"ingest-0": (10.0, 1), "ingest-1": (50.0, 1), "redis-0": (3.0, 1)}, (100, 9)))
    after = plan.usage_by_pod(
        summary(
            {
                "ingest-0": (15.0, 2 << 20),
                "ingest-1": (2.0, 3 << 20),  # restarted: its counter went back, counted from 0
                "redis-0": (4.0, 5 << 20),
                "sim": (10.0, 7 << 20),  # born in between
                "operator": (99.0, 1),  # not the release's: left out
            },
            (120, 1 << 30),
        )
    )
    used = plan.cores(before, after, 10.0, components)
    assert used == {"ingest region1": 0.7, "redis region1": 0.1, "s": 1.0, plan.NODE: 2.0}
    assert plan.busiest(used) == "s"
    assert plan.memory(after, components) == {
        "ingest region1": 5 << 20,
        "redis region1": 5 << 20,
        "s": 7 << 20,
        plan.NODE: 1 << 30,
    }
    assert plan.cores({}, after, 10.0, components) == {}  # a missing reading is no figure, not a huge one
    assert plan.busiest({plan.NODE: 2.0}) == "-"


def test_delivered_counts_every_message_the_ingest_handled() -> None:
    before = {"stored": 100, "stale": 1, "duplicate": 2, "invalid": 5}
    after = {"stored": 1100, "stale": 3, "duplicate": 2, "invalid": 50, "failed": 1}
    assert plan.delivered(before, after) == 1002
    assert plan.delivered({}, {"stored": 7}) == 7


def test_redis_memory_per_identity() -> None:
    assert plan.bytes_per_device(1_000_000, 3_000_000, 200, 10_200) == 200.0
    assert plan.bytes_per_device(1_000_000, 3_000_000, 200, 200) is None


def test_saturation_when_delivery_falls_short_or_freshness_slips() -> None:
    assert plan.saturation(1000.0, 950.0, 0.4) is None
    assert plan.saturation(1000.0, 900.0, 0.4) is None
    reason = plan.saturation(1000.0, 899.0, 0.4)
    assert reason is not None and reason.startswith("delivered 899")
    reason = plan.saturation(1000.0, 1000.0, 5.5)
    assert reason is not None and "freshness p99 5.5" in reason
    assert plan.saturation(1000.0, 1000.0, None) == "no fresh reading"


def test_freshness_is_read_time_minus_last_seen() -> None:
    assert plan.freshness([(10.0, 9.5), (11.0, None), (12.0, 12.1)]) == [0.5, 0.0]
    assert plan.p99([]) is None
    assert plan.p99([3.0]) == 3.0
    p = plan.p99([float(i) for i in range(1, 101)])
    assert p is not None and 99.0 <= p <= 100.0


def test_latency_lines_are_read_per_endpoint() -> None:
    endpoints = ["/a", "/b"]
    log = "ready\n1.0 0 0.010 200\n1.1 1 0.020 200\n1.2 0 0.030 503\n1.3 1 0.500 ConnectionRefusedError\nnoise\n"
    samples = plan.parse_latency(log, endpoints)
    assert len(samples) == 4
    assert plan.latency_p99(samples, "/a") == (0.010, 1)
    assert plan.latency_p99(samples, "/b") == (0.020, 1)


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive, as the API's server does

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        status = 200 if self.path == "/ok" else 404
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_prober_latency_mode_times_each_endpoint_in_turn() -> None:
    with server() as port:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            prober.latency(0.01, 0.3, [f"http://127.0.0.1:{port}/ok", f"http://127.0.0.1:{port}/missing"])
    endpoints = ["/ok", "/missing"]
    samples = plan.parse_latency(out.getvalue(), endpoints)
    assert out.getvalue().startswith("ready\n")
    assert len(samples) >= 10
    p, errors = plan.latency_p99(samples, "/ok")
    assert p is not None and 0 < p < 1.0 and errors == 0
    assert plan.latency_p99(samples, "/missing")[1] == sum(1 for s in samples if s.endpoint == "/missing") > 0


CHART_JOB: dict[str, Any] = {
    "metadata": {"name": "tier0-device-simulator-abc123", "namespace": "tier0", "labels": {"app": "x"}},
    "spec": {
        "template": {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/component": "device-simulator",
                    "app.kubernetes.io/instance": "tier0",
                    "batch.kubernetes.io/job-name": "tier0-device-simulator-abc123",
                    "batch.kubernetes.io/controller-uid": "u",
                    "controller-uid": "u",
                    "job-name": "tier0-device-simulator-abc123",
                }
            },
            "spec": {
                "restartPolicy": "OnFailure",
                "containers": [
                    {
                        "name": "devices",
                        "image": "localhost/tier0/simulators:0.1.0",
                        "args": ["tier0_simulators.devices", "--shard-count", "1", "--devices", "200"],
                        "env": [{"name": "TIER0_MQTT_HOST", "value": "tier0-mqtt"}],
                        "resources": {"requests": {"cpu": "20m"}},
                    }
                ],
            },
        }
    },
}


def test_the_step_job_is_the_charts_pod_with_the_steps_fleet() -> None:
    step = plan.Step("ramp", 100_000, 60.0, 2)
    job = plan.simulator_job(CHART_JOB, "bench-scale-1", step, 105.0)
    assert job["metadata"]["name"] == "bench-scale-1" and job["metadata"]["labels"]["bench"] == "scale"
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (2, 2, 0)
    assert spec["completionMode"] == "Indexed" and spec["activeDeadlineSeconds"] == 225
    template = spec["template"]
    assert template["metadata"]["labels"] == {
        "app.kubernetes.io/component": "device-simulator",  # admitted by the broker's NetworkPolicy
        "app.kubernetes.io/instance": "tier0",
        "bench": "scale",
    }
    assert template["spec"]["restartPolicy"] == "Never"
    container = template["spec"]["containers"][0]
    assert container["args"] == [
        "tier0_simulators.devices",
        *("--shard-count", "2", "--devices", "100000", "--interval", "60.000", "--duration", "105"),
        *("--report-every", "5"),
    ]
    assert container["env"] == CHART_JOB["spec"]["template"]["spec"]["containers"][0]["env"]
    assert container["resources"] == {"requests": {"cpu": "20m"}, "limits": {"memory": "1Gi"}}
    # The chart's Job is left as it was (it is restored, not rewritten).
    assert CHART_JOB["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert "limits" not in CHART_JOB["spec"]["template"]["spec"]["containers"][0]["resources"]


def test_the_simulators_last_reported_rate() -> None:
    log = (
        "2026 INFO shard 0/1: 1000 devices (indices 0..999), target 500 msg/s to mqtt://h:1883\n"
        "2026 INFO published 480 msg/s (target 500), 3 in flight\n"
        "2026 ERROR FALLING BEHIND: achieved 410 msg/s of the 500 target, 1.2 s late\n"
        "2026 INFO published 24000 (24000 acknowledged) in 50.0 s: 480 msg/s, max lag 1.20 s\n"
    )
    assert plan.simulator_rate(log) == 410.0
    assert plan.simulator_rate("2026 INFO shard 0/1: 1000 devices, target 500 msg/s\n") is None


def result(step: plan.Step, delivered: int, used: dict[str, float], fresh: list[float]) -> plan.Result:
    return plan.Result(
        step=step,
        seconds=10.0,
        delivered=delivered,
        simulated=None,
        fresh=fresh,
        acked=750,
        lost=0,
        used=used,
        memory={"ingest region1": 100 << 20},
        identities=10_750,
        redis_memory=50 << 20,
        bytes_per_device=812.4,
        endpoints={"/a": (0.0123, 0), "/b": (None, 3)},
    )


def test_rows_name_the_verdict_the_busiest_component_and_the_scaling_ratio() -> None:
    kept = result(plan.Step("ramp", 10_000, 20.0, 1), 5_000, {"ingest region1": 0.4, plan.NODE: 1.2}, [0.2])
    row = plan.step_row(kept)
    assert len(row) == len(plan.STEP_COLUMNS)
    assert row[3] == 500.0 and row[-1] == "kept up" and row[10] == "ingest region1 (0.40)" and row[9] == "812"
    over = result(plan.Step("push", 10_000, 2.5, 2), 20_000, {"redis region1": 0.9, plan.NODE: 1.9}, [0.2])
    assert str(plan.step_row(over)[-1]).startswith("SATURATED: delivered 2,000")
    assert plan.first_saturated([kept, over]) is over
    assert plan.components([kept, over]) == ["ingest region1", "redis region1", plan.NODE]
    assert plan.cost_row(kept, ["ingest region1", "redis region1", plan.NODE]) == [
        kept.step.label,
        "0.40 / 100",
        "-",
        "1.20 / 0",
    ]
    assert plan.endpoint_row(kept, ["/a", "/b"]) == [kept.step.label, 10_750, "12.3", "- (3 err)"]
    one = result(plan.Step("workers", 10_000, 2.5, 2, 1), 20_000, {"ingest region1": 0.9}, [0.3])
    two = result(plan.Step("workers", 10_000, 2.5, 2, 2), 36_000, {"ingest region1": 1.5}, [0.3])
    assert plan.workers_row(two, one)[:6] == [2, 4000.0, 3600.0, 1800.0, "1.80 x (ideal 2 x)", "1.50"]
