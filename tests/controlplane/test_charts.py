"""The Helm charts, proven against a real kube-apiserver (tests/conftest.py's control plane).

What is tested:
- `helm lint --strict` passes for both charts, with default values and with ci/all-on-values.yaml;
- every object rendered with default values, and with the values file that turns everything on, is
  accepted by `kubectl apply --dry-run=server` (the RegionPair CRD from the operator chart installed
  first; minimal copies of the prometheus-operator CRDs for ServiceMonitor/PodMonitor/PrometheusRule);
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
from tier0_testing import operator as operator_testing

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
# Namespaces the all-on values files refer to (watched namespaces, the dashboards' namespace).
EXTRA_NS = ("tier0-a", "tier0-b", "monitoring")
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
    # controller-manager creates (tests/e2e runs them on a real cluster).
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
    out = run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s", *names])
    assert out.returncode == 0, out.stderr
    yield kubectl


@pytest.mark.parametrize("chart", [OPERATOR_CHART, TIER0_CHART], ids=lambda p: p.name)
@pytest.mark.parametrize("values", ["default", "all-on"])
def test_helm_lint_strict(chart: Path, values: str) -> None:
    extra = ["-f", str(chart / "ci" / "all-on-values.yaml")] if values == "all-on" else []
    out = helm("lint", "--strict", str(chart), "--kube-version", KUBE_VERSION, *extra)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values", ["default", "all-on"])
@pytest.mark.parametrize(
    ("chart", "namespace"), [(OPERATOR_CHART, OPERATOR_NS), (TIER0_CHART, APP_NS)], ids=["tier0-operator", "tier0"]
)
def test_every_rendered_object_is_accepted_by_the_apiserver(
    cluster: list[str], chart: Path, namespace: str, values: str
) -> None:
    extra = ["-f", str(chart / "ci" / "all-on-values.yaml")] if values == "all-on" else []
    manifest = render(chart, chart.name, namespace, *extra)
    docs = objects(manifest)
    assert docs, "the chart rendered nothing"
    if values == "all-on":
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
        (OPERATOR_CHART, ["--set", "replicaCount=0"], "/replicaCount"),
        (OPERATOR_CHART, ["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (OPERATOR_CHART, ["--set", "watchNamespaces[0]=Not_A_Namespace"], "/watchNamespaces/0"),
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
        assert "selector" not in live("service", "tier0-region-api")["spec"]
        await kube.patch_service(ns, "tier0-region-api", patches.build_service_patch(pair.spec, "region2"))
        await kube.patch_pair(ns, "tier0", {"spec": {"activeRegion": "region2"}})
    finally:
        await kube.close()
        proc.stop(timeout=5)
    before = {
        "selector": live("service", "tier0-region-api")["spec"]["selector"],
        "spec": live("regionpair", "tier0")["spec"],
        "secrets": {o["metadata"]["name"]: live("secret", o["metadata"]["name"])["data"] for o in generated},
    }
    versions = {(k, n): live(k, n)["metadata"]["resourceVersion"] for k, n in OWNED_BY_OTHERS}
    sync()  # the next GitOps sync of the unchanged chart
    after = {
        "selector": live("service", "tier0-region-api")["spec"]["selector"],
        "spec": live("regionpair", "tier0")["spec"],
        "secrets": {o["metadata"]["name"]: live("secret", o["metadata"]["name"])["data"] for o in generated},
    }
    assert after == before
    assert before["selector"]["tier0.dev/region"] == "region2" and before["spec"]["activeRegion"] == "region2"
    assert {(k, n): live(k, n)["metadata"]["resourceVersion"] for k, n in OWNED_BY_OTHERS} == versions


GENERATE = "tier0.dev/generate"
OWNED_BY_OTHERS = [("service", "tier0-region-api"), ("regionpair", "tier0"), ("secret", "tier0-redis")]


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


def test_the_brokers_refuse_anonymous_clients_and_close_their_administration() -> None:
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    (emqx,) = [c for c in containers(by_name[("StatefulSet", "tier0-emqx")]) if c["name"] == "emqx"]
    env = {e["name"]: e.get("value") for e in emqx["env"]}
    assert "built_in_database" in env["EMQX_AUTHENTICATION"] and "bootstrap_file" in env["EMQX_AUTHENTICATION"]
    assert env["EMQX_AUTHORIZATION__NO_MATCH"] == "deny" and "type = file" in env["EMQX_AUTHORIZATION__SOURCES"]
    acl = by_name[("ConfigMap", "tier0-emqx-acl")]["data"]["acl.conf"]
    assert acl.strip() == (CHARTS / "tier0" / "files" / "emqx" / "acl.conf").read_text().strip()
    # The stand-in on the node reads exactly these settings.
    assert programs.mosquitto_standin().emqx_access(env) is not None
    rabbit = by_name[("ConfigMap", "tier0-rabbitmq-config")]["data"]["10-tier0.conf"]
    assert "load_definitions = /etc/rabbitmq/definitions/definitions.json" in rabbit
    (server,) = [c for c in containers(by_name[("StatefulSet", "tier0-rabbitmq")]) if c["name"] == "rabbitmq"]
    assert not any(e["name"].startswith("RABBITMQ_DEFAULT_") for e in server.get("env", []))
    rabbit_policy = by_name[("NetworkPolicy", "tier0-rabbitmq")]
    assert 15672 not in [r["ports"][0]["port"] for r in rabbit_policy["spec"]["ingress"]]  # adminFrom: []
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
