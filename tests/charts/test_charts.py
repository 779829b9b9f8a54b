"""The Helm charts, proven against a real kube-apiserver (tests/conftest.py's control plane).

What is tested:
- `helm lint --strict` passes for both charts, with default values, with each of their ci/*.yaml and
  with the built-in node's values;
- every object rendered with those values is accepted by `kubectl apply --dry-run=server` (the
  RegionPair CRD from the operator chart installed first; minimal copies of the prometheus-operator
  CRDs for ServiceMonitor/PodMonitor/PrometheusRule);
- a region is placed (issue 18): its zone, node selector, tolerations, affinity and spread land on
  every workload of the region and on nothing else; the two Redis and the two brokers of a kind keep
  apart on the hostname (required by default, preferred on the single-node clusters); budgets keep a
  drain from taking both Redis, both brokers of a kind or a region's last API pod; the API rolls and
  terminates gracefully and a terminating primary Redis waits for a switchover;
- brokers per region: an EMQX and a RabbitMQ in each region with its own volume and the region's
  label, each region's workers on their own region's brokers, publishers on global broker Services
  that have no selector and the operator's ownership annotation, listed in the RegionPair's
  spec.services after the API in a fixed order, whose route selectors pick exactly the active
  region's broker pods; brokers.perRegion false renders one shared broker of each kind;
- values.schema.json rejects bad values with a message naming the field;
- a GitOps sync (`helm template | kubectl apply --server-side`) after a failover changes nothing the
  operator owns: the Service selector, the RegionPair's spec.activeRegion, the generated passwords
  (which the operator, not the chart, fills);
- the PrometheusRule's alert expressions are valid Prometheus rules (`promtool check rules`);
- every module the chart runs with `python -m` exists;
- no credential is in an argument or an environment value (one documented exception: EMQX's
  dashboard password), redis_exporter's /scrape is off and its port open to the scrapers only,
  the brokers refuse anonymous clients and their administration ports are closed by default, and
  the users the chart names are the ones tier0_services.access defines.
"""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tier0_contract import regionpair as rp
from tier0_contract import topics
from tier0_dev import programs
from tier0_dev.controlplane import ControlPlane
from tier0_dev.node import deploy
from tier0_dev.procs import ROOT, find_program
from tier0_operator import patches, secrets
from tier0_services.access import mqtt as mqtt_access
from tier0_services.access import rabbitmq as rabbitmq_access
from tier0_services.access import redis as redis_access
from tier0_services.ai import settings as ai_settings
from tier0_testing import operator as operator_testing

sys.path.insert(0, str(Path(__file__).parents[1] / "system"))
from kit import AMQP_SERVICE as KIT_AMQP  # noqa: E402
from kit import MQTT_SERVICE as KIT_MQTT  # noqa: E402

pytestmark = pytest.mark.controlplane

CHARTS = ROOT / "charts"
OPERATOR_CHART = CHARTS / "tier0-operator"
TIER0_CHART = CHARTS / "tier0"
# helm built with `go install` assumes Kubernetes v1.20 unless told; the control plane runs this one.
KUBE_VERSION = next(
    line.split("=", 1)[1].lstrip("v")
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if line.startswith("KUBERNETES_VERSION=")
)
OPERATOR_NS = "tier0-system"
APP_NS = "tier0-charts"
# Namespaces the values files refer to (the operator's default watched namespace, the dashboards').
EXTRA_NS = ("tier0", "monitoring")
MONITORING_KINDS = {
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "PrometheusRule": "prometheusrules",
}


def run(
    argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, env=env)


def helm(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [find_program("helm"), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    return run(argv)


def render(chart: Path, release: str, namespace: str, *extra: str, kubeconfig: Path | None = None) -> str:
    # Without the `helm test` pods: they need the namespace's default ServiceAccount, which only a
    # controller-manager creates (tests/system runs them on a real cluster).
    out = helm(
        "template",
        release,
        str(chart),
        "-n",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "--skip-tests",
        *extra,
        kubeconfig=kubeconfig,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def objects(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def monitoring_crd(kind: str, plural: str) -> dict[str, Any]:
    """A minimal stand-in for a prometheus-operator CRD: the real group, kind and scope, any spec."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def cluster(kubectl: list[str]) -> Iterator[list[str]]:
    """Namespaces plus the CRDs the charts' objects need, installed as a user would (operator chart first)."""
    for ns in (OPERATOR_NS, APP_NS, *EXTRA_NS):
        out = run([*kubectl, "create", "namespace", ns])
        assert out.returncode == 0 or "AlreadyExists" in out.stderr, out.stderr
    crds = [
        o
        for o in objects(render(OPERATOR_CHART, "tier0-operator", OPERATOR_NS))
        if o["kind"] == "CustomResourceDefinition"
    ]
    assert [c["metadata"]["name"] for c in crds] == ["regionpairs.tier0.dev"]
    crds += [monitoring_crd(kind, plural) for kind, plural in MONITORING_KINDS.items()]
    out = run([*kubectl, "apply", "-f", "-"], yaml.safe_dump_all(crds))
    assert out.returncode == 0, out.stderr
    names = [f"crd/{c['metadata']['name']}" for c in crds]
    operator_testing.run_kubectl(kubectl, "wait", "--for=condition=Established", "--timeout=60s", *names)
    yield kubectl


def values_files(chart: Path) -> list[Path | None]:
    """None (the defaults), each of the chart's ci/*.yaml, and the built-in node's values."""
    node = ROOT / "hack" / ("node-operator-values.yaml" if chart == OPERATOR_CHART else "node-values.yaml")
    return [None, *sorted((chart / "ci").glob("*.yaml")), node]


VALUES_CASES = [(chart, values) for chart in (OPERATOR_CHART, TIER0_CHART) for values in values_files(chart)]
VALUES_IDS = [f"{chart.name}-{values.stem if values else 'default'}" for chart, values in VALUES_CASES]


def with_values(values: Path | None) -> list[str]:
    return ["-f", str(values)] if values else []


@pytest.mark.parametrize(("chart", "values"), VALUES_CASES, ids=VALUES_IDS)
def test_helm_lint_strict(chart: Path, values: Path | None) -> None:
    out = helm("lint", "--strict", str(chart), "--kube-version", KUBE_VERSION, *with_values(values))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(("chart", "values"), VALUES_CASES, ids=VALUES_IDS)
def test_every_rendered_object_is_accepted_by_the_apiserver(
    cluster: list[str], chart: Path, values: Path | None
) -> None:
    namespace = OPERATOR_NS if chart == OPERATOR_CHART else APP_NS
    manifest = render(chart, chart.name, namespace, *with_values(values))
    docs = objects(manifest)
    assert docs, "the chart rendered nothing"
    if values is not None and values.name == "all-on-values.yaml":
        kinds = {d["kind"] for d in docs}
        expected = (
            {"ServiceMonitor"} if chart == OPERATOR_CHART else {"PodMonitor", "PrometheusRule", "NetworkPolicy", "Job"}
        )
        assert expected <= kinds, f"all-on values did not render {expected - kinds}"
    # No -n: every namespaced object must carry its namespace itself.
    out = run([*cluster, "apply", "--dry-run=server", "-f", "-"], manifest)
    assert out.returncode == 0, out.stderr
    accepted = [line for line in out.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), out.stdout


@pytest.mark.parametrize(
    ("chart", "flags", "message"),
    [
        (TIER0_CHART, ["--set", "regions[0].name=Region_1"], "/regions/0/name"),
        (TIER0_CHART, ["--set-json", 'regions=[{"name":"region1"}]'], "minItems"),
        (TIER0_CHART, ["--set", "rabbitmq.auth.password=p@ss/word"], "/rabbitmq/auth/password"),
        (TIER0_CHART, ["--set", "redis.auth.password=x"], "additional properties 'password' not allowed"),
        (TIER0_CHART, ["--set", "redis.tls.enabled=true"], "redis.tls.enabled needs redis.tls.existingSecret"),
        (TIER0_CHART, ["--set", "simulators.devices.shards=0"], "/simulators/devices/shards"),
        (TIER0_CHART, ["--set", "regionPair.failover.mode=Sometimes"], "/regionPair/failover/mode"),
        (TIER0_CHART, ["--set", "redis.flavor=valkey"], "/redis/flavor"),
        (TIER0_CHART, ["--set", "emqx.replicas=3"], "additional properties 'replicas' not allowed"),
        (TIER0_CHART, ["--set", "activeRegion=region3"], 'activeRegion "region3" must be one of'),
        (TIER0_CHART, ["--set", "redis.antiAffinity=sometimes"], "/redis/antiAffinity"),
        (TIER0_CHART, ["--set", "brokers.antiAffinity=always"], "/brokers/antiAffinity"),
        (TIER0_CHART, ["--set", "regionApi.preStopSleepSeconds=-1"], "/regionApi/preStopSleepSeconds"),
        (TIER0_CHART, ["--set", "regionApi.aiStores.images=0"], "/regionApi/aiStores/images"),
        (
            TIER0_CHART,
            ["--set-json", 'regions=[{"name":"region1","zones":["a"]},{"name":"region2"}]'],
            "additional properties 'zones' not allowed",
        ),
        (
            TIER0_CHART,
            ["--set-json", 'regions=[{"name":"region1","affinity":{"nodeAfinity":{}}},{"name":"region2"}]'],
            "additional properties 'nodeAfinity' not allowed",
        ),
        (OPERATOR_CHART, ["--set", "replicaCount=0"], "/replicaCount"),
        (OPERATOR_CHART, ["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (OPERATOR_CHART, ["--set", "watchNamespaces[0]=Not_A_Namespace"], "/watchNamespaces/0"),
        (OPERATOR_CHART, ["--set-json", "watchNamespaces=[]"], "watchNamespaces is empty"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_schema_rejects_bad_values_with_a_clear_message(chart: Path, flags: list[str], message: str) -> None:
    out = helm("template", "x", str(chart), "--kube-version", KUBE_VERSION, *flags)
    assert out.returncode != 0, f"accepted: {flags}"
    assert message in out.stderr, out.stderr


async def test_a_gitops_sync_after_a_failover_changes_nothing(
    cluster: list[str], control_plane: ControlPlane, tmp_path: Path
) -> None:
    """`helm template | kubectl apply --server-side` (what Argo CD and Flux do) after the operator has
    moved traffic and the API has switched over must not route back, reset spec.activeRegion or
    rotate a generated password: the chart owns none of them (the operator fills the Secrets)."""
    ns = "tier0-gitops"
    out = run([*cluster, "create", "namespace", ns])
    assert out.returncode == 0 or "AlreadyExists" in out.stderr, out.stderr

    def sync() -> None:
        manifest = render(TIER0_CHART, "tier0", ns)
        res = run([*cluster, "apply", "--server-side", "--field-manager=gitops", "-f", "-"], manifest)
        assert res.returncode == 0, res.stderr

    def live(kind: str, name: str) -> dict[str, Any]:
        res = run([*cluster, "-n", ns, "get", kind, name, "-o", "json"])
        assert res.returncode == 0, res.stderr
        body: dict[str, Any] = json.loads(res.stdout)
        return body

    sync()
    generated = [
        o
        for o in objects(render(TIER0_CHART, "tier0", ns))
        if o["kind"] == "Secret" and GENERATE in (o["metadata"].get("annotations") or {})
    ]
    assert {o["metadata"]["name"] for o in generated} >= {"tier0-redis", "tier0-api"}
    assert all("data" not in o or not o["data"] for o in generated if o["metadata"]["name"] != "tier0-rabbitmq")
    proc, _ = operator_testing.start_operator(control_plane.kubeconfig, ns, tmp_path / "operator.log")
    kube = await operator_testing.kube_for(control_plane.kubeconfig)
    try:

        async def filled() -> bool:
            for o in generated:
                secret = live("secret", o["metadata"]["name"])
                want = secrets.keys_to_generate(secret["metadata"].get("annotations"), secret.get("data"))
                if want:
                    return False
            return True

        await operator_testing.wait_for("the operator fills the generated Secrets", filled, timeout=30, every=0.2)
        # What the operator and the API leave after a failover and a switchover to region2.
        pair = rp.RegionPair.from_object(live("regionpair", "tier0"))
        assert pair.spec.active_region == "region1"  # the first region, since the chart renders none
        assert [route.name for route in pair.spec.routes] == list(GLOBAL_SERVICES)
        for route in pair.spec.routes:
            assert "selector" not in live("service", route.name)["spec"]
            await kube.patch_service(ns, route.name, patches.build_service_patch(pair.spec, "region2", route, "tier0"))
        await operator_testing.patch_pair(kube, ns, "tier0", {"activeRegion": "region2"})
    finally:
        await kube.close()
        proc.stop(timeout=5)
    before = {
        "selectors": {name: live("service", name)["spec"]["selector"] for name in GLOBAL_SERVICES},
        "spec": live("regionpair", "tier0")["spec"],
        "secrets": {o["metadata"]["name"]: live("secret", o["metadata"]["name"])["data"] for o in generated},
    }
    versions = {(k, n): live(k, n)["metadata"]["resourceVersion"] for k, n in OWNED_BY_OTHERS}
    sync()  # the next GitOps sync of the unchanged chart
    after = {
        "selectors": {name: live("service", name)["spec"]["selector"] for name in GLOBAL_SERVICES},
        "spec": live("regionpair", "tier0")["spec"],
        "secrets": {o["metadata"]["name"]: live("secret", o["metadata"]["name"])["data"] for o in generated},
    }
    assert after == before
    assert before["spec"]["activeRegion"] == "region2"
    assert {s["tier0.dev/region"] for s in before["selectors"].values()} == {"region2"}
    assert [s["app.kubernetes.io/component"] for s in before["selectors"].values()] == [
        "region-api",
        "emqx",
        "rabbitmq",
    ]
    assert {(k, n): live(k, n)["metadata"]["resourceVersion"] for k, n in OWNED_BY_OTHERS} == versions


GENERATE = "tier0.dev/generate"
GLOBAL_SERVICES = ("tier0-region-api", "tier0-mqtt", "tier0-amqp")
"""The Services that follow the active region, in the RegionPair's order (release tier0)."""
OWNED_BY_OTHERS = [
    *(("service", name) for name in GLOBAL_SERVICES),
    ("regionpair", "tier0"),
    ("secret", "tier0-redis"),
]


def test_alert_rules_are_valid_prometheus_rules(tmp_path: Path) -> None:
    docs = objects(render(TIER0_CHART, "tier0", APP_NS, "--set", "metrics.prometheusRule.enabled=true"))
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    names = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert len(names) == len(set(names)), f"an alert defined twice fires twice: {names}"
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "Tier0RegionDown",
        "Tier0ReplicationLagHigh",
        "Tier0IngestErrors",
        "Tier0FailoverHappened",
        "Tier0PipelineStalled",
        "Tier0TransitionStuck",
        "Tier0WritesAtRisk",
    }
    # Every alert links to a section of the runbook that exists (GitHub's heading anchors).
    sections = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in (ROOT / "operator" / "RUNBOOK.md").read_text().splitlines()
        if line.startswith("## ")
    }
    for name, alert in alerts.items():
        url = alert["annotations"].get("runbook_url", "")
        assert url.startswith("https://") and "/operator/RUNBOOK.md#" in url, (name, url)
        assert url.rsplit("#", 1)[1] in sections, f"{name}: no section {url} in operator/RUNBOOK.md"
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    out = run([find_program("promtool"), "check", "rules", str(rules)])
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_tier0_container_runs_a_module_that_exists() -> None:
    """The images' entrypoint is `python -m`; the chart's first argument names the module."""
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    modules = set()
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if container["image"].startswith(("tier0/services:", "tier0/simulators:")):
                modules.add(container["args"][0])
    assert modules == {
        "tier0_services.api",
        "tier0_services.ingest",
        "tier0_services.activity",
        "tier0_simulators.devices",
        "tier0_simulators.users",
    }
    for module in modules:
        path = module.replace(".", "/")
        found = [*ROOT.glob(f"*/{path}/__main__.py"), *ROOT.glob(f"*/{path}.py")]
        assert found, f"the chart runs `python -m {module}`, which does not exist"


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


@pytest.mark.parametrize("values", ["default", "all-on"])
def test_no_credential_is_an_argument_or_an_environment_value(values: str) -> None:
    """Reproduction of issue 17 ("secrets stay secret"): `--requirepass $(REDIS_PASSWORD)` in
    redis-server's argv, passwords in TIER0_REDIS_URL / TIER0_AMQP_URL and in variables."""
    extra = ["-f", str(TIER0_CHART / "ci" / "all-on-values.yaml")] if values == "all-on" else []
    for doc in objects(render(TIER0_CHART, "tier0", APP_NS, *extra)):
        for c in containers(doc):
            where = f"{doc['metadata']['name']}/{c['name']}"
            words = " ".join([*c.get("command", []), *c.get("args", [])])
            assert "requirepass" not in words and "masterauth" not in words and "$(" not in words, where
            for env in c.get("env", []):
                if "valueFrom" in env and "secretKeyRef" in env["valueFrom"]:
                    # EMQX takes its dashboard's first password from its configuration only.
                    assert env["name"] == "EMQX_DASHBOARD__DEFAULT_PASSWORD", (where, env["name"])
                value = str(env.get("value", ""))
                assert "$(" not in value and not re.search(r"://[^/@]*:[^/@]*@", value), (where, env)


def test_redis_exporter_serves_no_scrape_endpoint_and_only_to_the_scrapers() -> None:
    """Reproduction of issue 17 ("redis_exporter's /scrape?target=", v1.81, port 9121 open to all)."""
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    exporters = [c for d in docs for c in containers(d) if c["name"] == "exporter"]
    assert len(exporters) == 2
    for c in exporters:
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["REDIS_EXPORTER_DISABLE_SCRAPE_ENDPOINT"] == "true"
        assert env["REDIS_USER"] == redis_access.EXPORTER and "REDIS_PASSWORD" not in env
        major, minor = (int(x) for x in c["image"].rsplit(":v", 1)[1].split(".")[:2])
        assert (major, minor) >= (1, 83), c["image"]  # --disable-scrape-endpoint arrived in v1.83.0
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "tier0-redis"]
    (rule,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 9121]
    assert rule["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ]
    closed = objects(render(TIER0_CHART, "tier0", APP_NS, "--set-json", "networkPolicy.metricsFrom=[]"))
    (policy,) = [d for d in closed if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "tier0-redis"]
    assert [r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == [6379]


def test_one_device_cannot_fill_a_broker_the_packet_limit_reaches_each_emqx() -> None:
    """`emqx.maxPacketSize` is EMQX's `mqtt.max_packet_size` in each region's broker, the node's
    stand-in applies it, and the local stack (tier0_dev.programs) uses the chart's default."""
    default = yaml.safe_load((CHARTS / "tier0" / "values.yaml").read_text())["emqx"]["maxPacketSize"]
    assert default == programs.MQTT_MAX_PACKET
    docs = objects(render(TIER0_CHART, "tier0", APP_NS, "--set", "emqx.maxPacketSize=1MB"))
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for region in ("region1", "region2"):
        (emqx,) = [c for c in containers(by_name[("StatefulSet", f"tier0-emqx-{region}")]) if c["name"] == "emqx"]
        size = {e["name"]: e.get("value") for e in emqx["env"]}["EMQX_MQTT__MAX_PACKET_SIZE"]
        assert size == "1MB"
        assert programs.mosquitto_standin().limits_config(size) == ["max_packet_size 1048576"]


def test_the_brokers_refuse_anonymous_clients_and_close_their_administration() -> None:
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for region in ("region1", "region2"):  # a broker of each kind per region (brokers.perRegion)
        (emqx,) = [c for c in containers(by_name[("StatefulSet", f"tier0-emqx-{region}")]) if c["name"] == "emqx"]
        env = {e["name"]: e.get("value") for e in emqx["env"]}
        assert "built_in_database" in env["EMQX_AUTHENTICATION"] and "bootstrap_file" in env["EMQX_AUTHENTICATION"]
        assert env["EMQX_AUTHORIZATION__NO_MATCH"] == "deny" and "type = file" in env["EMQX_AUTHORIZATION__SOURCES"]
        # The stand-in on the node reads exactly these settings.
        assert programs.mosquitto_standin().emqx_access(env) is not None
        rabbitmq = by_name[("StatefulSet", f"tier0-rabbitmq-{region}")]
        (server,) = [c for c in containers(rabbitmq) if c["name"] == "rabbitmq"]
        assert not any(e["name"].startswith("RABBITMQ_DEFAULT_") for e in server.get("env", []))
        rabbit_policy = by_name[("NetworkPolicy", f"tier0-rabbitmq-{region}")]
        assert 15672 not in [r["ports"][0]["port"] for r in rabbit_policy["spec"]["ingress"]]  # adminFrom: []
    acl = by_name[("ConfigMap", "tier0-emqx-acl")]["data"]["acl.conf"]
    assert acl.strip() == (CHARTS / "tier0" / "files" / "emqx" / "acl.conf").read_text().strip()
    rabbit = by_name[("ConfigMap", "tier0-rabbitmq-config")]["data"]["10-tier0.conf"]
    assert "load_definitions = /etc/rabbitmq/definitions/definitions.json" in rabbit
    generated = {
        d["metadata"]["name"]: d["metadata"]["annotations"][GENERATE]
        for d in docs
        if d["kind"] == "Secret" and GENERATE in (d["metadata"].get("annotations") or {})
    }
    assert set(generated["tier0-mqtt"].split(",")) == set(mqtt_access.SECRET_KEYS.values())
    assert set(generated["tier0-redis"].split(",")) == set(redis_access.SECRET_KEYS.values())
    assert "app-password" in generated["tier0-rabbitmq"].split(",")


def test_the_users_the_chart_names_are_the_access_modules_users() -> None:
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    env: dict[str, set[str]] = {}
    for doc in docs:
        for c in containers(doc):
            for e in c.get("env", []):
                env.setdefault(e["name"], set()).add(str(e.get("value")))
    assert env["TIER0_REDIS_USERNAME"] == {redis_access.APP}
    assert env["TIER0_AMQP_USERNAME"] == {rabbitmq_access.APP}
    assert env["TIER0_MQTT_USERNAME"] == {mqtt_access.INGEST, mqtt_access.GATEWAY}
    assert all(v.endswith(f"/{topics.ACTIVITY_VHOST}") for v in env["TIER0_AMQP_URL"])
    (pair,) = [d for d in docs if d["kind"] == "RegionPair"]
    for region in pair["spec"]["regions"]:
        assert region["redis"]["username"] == redis_access.OPERATOR
        assert region["redis"]["passwordSecretRef"]["key"] == redis_access.SECRET_KEYS[redis_access.OPERATOR]
    rules = programs.mosquitto_standin().rules_by_user(
        programs.mosquitto_standin().parse_terms((CHARTS / "tier0" / "files" / "emqx" / "acl.conf").read_text())
    )
    assert set(rules) == set(mqtt_access.SECRET_KEYS)


def test_make_up_prints_how_to_read_the_charts_api_token() -> None:
    rel = deploy.Release(Path("/nonexistent"))
    secrets_rendered = [
        d["metadata"]["name"] for d in objects(render(TIER0_CHART, rel.name, rel.namespace)) if d["kind"] == "Secret"
    ]
    assert rel.api_secret in secrets_rendered


# --- issue 18: a region is a failure domain -------------------------------------------------------

ALL_ON = TIER0_CHART / "ci" / "all-on-values.yaml"
SHARED = TIER0_CHART / "ci" / "shared-brokers-values.yaml"
NODE_VALUES = ROOT / "hack" / "node-values.yaml"
REGION_WORKLOADS = {
    ("Deployment", "region-api"),
    ("StatefulSet", "ingest"),
    ("StatefulSet", "activity"),
    ("StatefulSet", "redis"),
    ("StatefulSet", "emqx"),
    ("StatefulSet", "rabbitmq"),
}
"""Everything a region runs (brokers.perRegion): what its placement must reach."""
HOSTNAME = "kubernetes.io/hostname"


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")}


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def selected(selector: dict[str, str], docs: list[dict[str, Any]]) -> set[str]:
    """The workloads whose pods `selector` (matchLabels) selects."""
    return {name for name, w in workloads(docs).items() if all(pod_labels(w).get(k) == v for k, v in selector.items())}


def env_of(workload: dict[str, Any]) -> dict[str, str]:
    (container,) = pod_spec(workload)["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def hostname_spread(pod: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
    """("required" | "preferred", the pods it keeps away from) of a hostname anti-affinity, or None."""
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    for term in anti.get("requiredDuringSchedulingIgnoredDuringExecution", []):
        if term["topologyKey"] == HOSTNAME:
            return "required", term["labelSelector"]["matchLabels"]
    for weighted in anti.get("preferredDuringSchedulingIgnoredDuringExecution", []):
        term = weighted["podAffinityTerm"]
        if term["topologyKey"] == HOSTNAME:
            return "preferred", term["labelSelector"]["matchLabels"]
    return None


def test_every_workload_of_a_region_is_placed_with_its_region() -> None:
    """ci/all-on-values.yaml places east by zone, nodeSelector, tolerations and a spread constraint
    and west by zone over two node selector terms of its own and a pod affinity: each lands on all
    six workloads of its region, merged (the zone required in every term), and on nothing else."""
    regions = {r["name"]: r for r in yaml.safe_load(ALL_ON.read_text())["regions"]}
    docs = objects(render(TIER0_CHART, "tier0", APP_NS, "-f", str(ALL_ON)))
    placed: dict[str, set[tuple[str, str]]] = {}
    for w in workloads(docs).values():
        pod, labels = pod_spec(w), pod_labels(w)
        region = labels.get("tier0.dev/region")
        if region is None:  # the simulators belong to no region
            assert not {"nodeSelector", "tolerations", "topologySpreadConstraints", "affinity"} & set(pod), w
            continue
        placed.setdefault(region, set()).add((w["kind"], labels["app.kubernetes.io/component"]))
        r, where = regions[region], w["metadata"]["name"]
        zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [r["zone"]]}
        node_affinity = r.get("affinity", {}).get("nodeAffinity", {})
        own_terms = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution", {}).get(
            "nodeSelectorTerms", [{}]
        )
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{**t, "matchExpressions": [*t.get("matchExpressions", []), zone]} for t in own_terms], where
        assert pod["affinity"].get("podAffinity") == r.get("affinity", {}).get("podAffinity"), where
        assert pod.get("nodeSelector") == r.get("nodeSelector"), where
        assert pod.get("tolerations") == r.get("tolerations"), where
        # A spread constraint without a labelSelector counts the workload's own pods.
        own = w["spec"]["selector"]["matchLabels"]
        wanted = [{"labelSelector": {"matchLabels": own}, **c} for c in r.get("topologySpreadConstraints", [])]
        assert pod.get("topologySpreadConstraints", []) == wanted, where
    assert placed == dict.fromkeys(regions, REGION_WORKLOADS)


@pytest.mark.parametrize(
    ("values", "redis", "brokers"),
    [(None, "required", "required"), (NODE_VALUES, "preferred", "preferred")],
    ids=["default", "node"],
)
def test_the_two_redis_and_the_two_brokers_of_a_kind_keep_apart(values: Path | None, redis: str, brokers: str) -> None:
    """Required by default (a node holds at most one Redis of the pair, one EMQX, one RabbitMQ);
    preferred on the single-node clusters, where required would leave the second one Pending. The
    API pods prefer different nodes (a node's loss leaves a region's other replica serving)."""
    docs = objects(render(TIER0_CHART, "tier0", APP_NS, *with_values(values)))
    found = workloads(docs)
    wanted = {"redis": redis, "emqx": brokers, "rabbitmq": brokers, "region-api": "preferred"}
    for component, want in wanted.items():
        group = {f"tier0-{component}-region1", f"tier0-{component}-region2"}
        for name in group:
            spread = hostname_spread(pod_spec(found[name]))
            assert spread is not None and spread[0] == want, (name, spread)
            assert selected(spread[1], docs) == group, (name, spread)  # both regions' pods, nothing else
    for name, w in found.items():  # nothing else is kept apart
        if not name.startswith(tuple(f"tier0-{c}-" for c in wanted)):
            assert hostname_spread(pod_spec(w)) is None, name
    shared = workloads(objects(render(TIER0_CHART, "tier0", APP_NS, "-f", str(SHARED))))
    for name, w in shared.items():  # antiAffinity none, and a shared broker has no other to avoid
        assert hostname_spread(pod_spec(w)) is None or name.startswith("tier0-region-api-"), name


def test_budgets_keep_a_drain_from_taking_both_redis_both_brokers_or_a_regions_api() -> None:
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    budgets = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert {name: selected(b["selector"]["matchLabels"], docs) for name, b in budgets.items()} == {
        "tier0-redis": {"tier0-redis-region1", "tier0-redis-region2"},
        "tier0-emqx": {"tier0-emqx-region1", "tier0-emqx-region2"},
        "tier0-rabbitmq": {"tier0-rabbitmq-region1", "tier0-rabbitmq-region2"},
        "tier0-region-api-region1": {"tier0-region-api-region1"},
        "tier0-region-api-region2": {"tier0-region-api-region2"},
    }
    for name, b in budgets.items():
        assert b["maxUnavailable"] == 1 and "minAvailable" not in b, name
        assert b["unhealthyPodEvictionPolicy"] == "AlwaysAllow", name  # a broken pod never blocks a drain
    shared = objects(render(TIER0_CHART, "tier0", APP_NS, "-f", str(SHARED)))
    assert not [d for d in shared if d["kind"] == "PodDisruptionBudget"]


def test_the_ai_stores_bounds_are_values_the_api_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The images, passages and day counts each region's Redis keeps are chart values, and what the
    chart renders is what the API's settings read."""
    docs = objects(render(TIER0_CHART, "tier0", APP_NS, "--set", "regionApi.aiStores.images=7"))
    env = env_of(workloads(docs)["tier0-region-api-region1"])
    for name, value in env.items():
        if name.startswith("TIER0_AI_"):
            monkeypatch.setenv(name, value)
    settings = ai_settings.AISettings()
    defaults = yaml.safe_load((TIER0_CHART / "values.yaml").read_text())["regionApi"]["aiStores"]
    assert (settings.images_max, settings.passages_max, settings.logs_max_days) == (
        7,
        defaults["passages"],
        defaults["logDays"],
    )


def test_the_api_rolls_and_terminates_gracefully_and_a_primary_redis_waits_for_a_switchover() -> None:
    """Issue 18: a rolling restart or a drain of the active region drops no request after one retry
    (surge first; the endpoint moves while the pod sleeps; in-flight requests finish), and a drained
    primary Redis is a switchover (its preStop waits while it is a primary with a replica)."""
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    found = workloads(docs)
    values = yaml.safe_load((TIER0_CHART / "values.yaml").read_text())
    api_values, redis_values = values["regionApi"], values["redis"]
    for region in ("region1", "region2"):
        api = found[f"tier0-region-api-{region}"]
        assert api["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        pod = pod_spec(api)
        (container,) = pod["containers"]
        sleep = api_values["preStopSleepSeconds"]
        assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": sleep}}} and sleep >= 3
        assert env_of(api)["TIER0_SHUTDOWN_TIMEOUT_SECONDS"] == str(api_values["shutdownTimeoutSeconds"])
        assert pod["terminationGracePeriodSeconds"] > sleep + api_values["shutdownTimeoutSeconds"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"

        redis = found[f"tier0-redis-{region}"]
        pod = pod_spec(redis)
        (server,) = [c for c in pod["containers"] if c["name"] == "redis"]
        wait = redis_values["switchoverWaitSeconds"]
        # Redis's own shutdown (shutdown-timeout 10 s for a replica to catch up) comes after the wait.
        assert pod["terminationGracePeriodSeconds"] >= wait + 10 + 5
        shell, flag, script = server["lifecycle"]["preStop"]["exec"]["command"]
        assert (shell, flag) == ("sh", "-c")
        probe_dir = "/var/run/secrets/tier0/redis-probe"
        assert f'REDISCLI_AUTH="$(cat {probe_dir}/exporter-password)"' in script and "export REDISCLI_AUTH" in script
        assert f"redis-cli --user {redis_access.EXPORTER} -p 6379" in script and " ROLE " in script
        assert f"+ {wait} ))" in script and "sleep 0.1" in script
        assert not re.search(r"redis-cli[^\n]*(\s-a\s|--pass|--askpass)", script)  # never in argv
        (mount,) = [m for m in server["volumeMounts"] if m["name"] == "redis-probe"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "redis-probe"]
        assert mount["mountPath"] == probe_dir and mount["readOnly"]
        assert volume["secret"]["items"] == [{"key": "exporter-password", "path": "exporter-password"}]
    shared = workloads(objects(render(TIER0_CHART, "tier0", APP_NS, "-f", str(SHARED))))
    assert "lifecycle" not in pod_spec(shared["tier0-region-api-region1"])["containers"][0]
    assert all("lifecycle" not in c for c in pod_spec(shared["tier0-redis-region1"])["containers"])


def test_brokers_run_per_region_behind_global_services_that_follow_the_pair() -> None:
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    found = workloads(docs)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    (pair_doc,) = [d for d in docs if d["kind"] == "RegionPair"]
    for region in ("region1", "region2"):
        for kind in ("emqx", "rabbitmq"):
            broker = found[f"tier0-{kind}-{region}"]
            assert broker["kind"] == "StatefulSet" and broker["spec"]["replicas"] == 1
            assert pod_labels(broker)["tier0.dev/region"] == region
            assert broker["metadata"]["labels"]["tier0.dev/region"] == region
            assert [t["metadata"]["name"] for t in broker["spec"]["volumeClaimTemplates"]] == ["data"]  # its own
            assert selected(services[f"tier0-{kind}-{region}"]["spec"]["selector"], docs) == {f"tier0-{kind}-{region}"}
        # Each region's workers consume from their own region's brokers.
        assert env_of(found[f"tier0-ingest-{region}"])["TIER0_MQTT_HOST"] == f"tier0-emqx-{region}"
        amqp = env_of(found[f"tier0-activity-{region}"])["TIER0_AMQP_URL"]
        assert amqp == f"amqp://tier0-rabbitmq-{region}:5672/{topics.ACTIVITY_VHOST}"
    # Publishers use the global Services: no selector (the operator's), the owner annotation.
    pair_name = pair_doc["metadata"]["name"]
    for name, port in (("tier0-mqtt", ("mqtt", 1883)), ("tier0-amqp", ("amqp", 5672)), ("tier0-region-api", None)):
        service = services[name]
        assert "selector" not in service["spec"], name
        assert service["metadata"]["annotations"]["tier0.dev/selector-owner"] == pair_name, name
        if port:
            assert [(p["targetPort"], p["port"]) for p in service["spec"]["ports"]] == [port]
    (simulator,) = [w for w in found.values() if w["kind"] == "Job"]
    assert env_of(simulator)["TIER0_MQTT_HOST"] == "tier0-mqtt"
    assert env_of(found["tier0-user-simulator"])["TIER0_AMQP_URL"] == f"amqp://tier0-amqp:5672/{topics.ACTIVITY_VHOST}"
    # The RegionPair lists them in a defined order, API first; its routes select exactly the active
    # region's pods of each (what the operator sets: patches.wanted_selector).
    assert "service" not in pair_doc["spec"]
    # The MQTT route feeds ingest: it moves only to a region whose ingest worker is subscribed (a
    # broker acknowledges and drops what nobody subscribes to); RabbitMQ's queues keep messages.
    assert pair_doc["spec"]["services"] == [
        {"name": "tier0-region-api"},
        {"name": "tier0-mqtt", "selector": {"app.kubernetes.io/component": "emqx"}, "feeds": "ingest"},
        {"name": "tier0-amqp", "selector": {"app.kubernetes.io/component": "rabbitmq"}},
    ]
    spec = rp.RegionPairSpec.model_validate(pair_doc["spec"])
    for region in ("region1", "region2"):
        picked = [selected(patches.wanted_selector(spec, region, route), docs) for route in spec.routes]
        assert picked == [{f"tier0-region-api-{region}"}, {f"tier0-emqx-{region}"}, {f"tier0-rabbitmq-{region}"}]
    # The e2e tier and `make up` name the same Services.
    assert {kit_service.format(release="tier0") for kit_service in (KIT_MQTT, KIT_AMQP)} == {"tier0-mqtt", "tier0-amqp"}
    rel = deploy.Release(Path("/nonexistent"))
    assert {rel.global_service, rel.mqtt_service, rel.amqp_service} <= set(services)
    # A region's broker admits its own region's workers and the publishers, not the other region's workers.
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    for region, other in (("region1", "region2"), ("region2", "region1")):
        for kind, worker, publisher in (
            ("emqx", "ingest", "device-simulator"),
            ("rabbitmq", "activity", "user-simulator"),
        ):
            peers = [
                p["podSelector"]["matchLabels"]
                for p in policies[f"tier0-{kind}-{region}"]["spec"]["ingress"][0]["from"]
            ]
            assert {
                "app.kubernetes.io/instance": "tier0",
                "app.kubernetes.io/component": worker,
                "tier0.dev/region": region,
            } in peers
            assert {"app.kubernetes.io/instance": "tier0", "app.kubernetes.io/component": publisher} in peers
            assert not any(p.get("tier0.dev/region") == other for p in peers)


def test_without_brokers_per_region_one_shared_broker_of_each_kind_serves_everyone() -> None:
    docs = objects(render(TIER0_CHART, "tier0", APP_NS, "-f", str(SHARED)))
    found = workloads(docs)
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    brokers = sorted(n for n in found if n.startswith(("tier0-emqx", "tier0-rabbitmq")))
    assert brokers == ["tier0-emqx", "tier0-rabbitmq"]
    assert all("tier0.dev/region" not in pod_labels(found[n]) for n in brokers)
    assert not {"tier0-mqtt", "tier0-amqp"} & services
    (pair_doc,) = [d for d in docs if d["kind"] == "RegionPair"]
    assert pair_doc["spec"]["services"] == [{"name": "tier0-region-api"}]
    for region in ("region1", "region2"):
        assert env_of(found[f"tier0-ingest-{region}"])["TIER0_MQTT_HOST"] == "tier0-emqx"
        assert env_of(found[f"tier0-activity-{region}"])["TIER0_AMQP_URL"].startswith("amqp://tier0-rabbitmq:5672/")
    (simulator,) = [w for w in found.values() if w["kind"] == "Job"]
    assert env_of(simulator)["TIER0_MQTT_HOST"] == "tier0-emqx"
    assert env_of(found["tier0-user-simulator"])["TIER0_AMQP_URL"].startswith("amqp://tier0-rabbitmq:5672/")
