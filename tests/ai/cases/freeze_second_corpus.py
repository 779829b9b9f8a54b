"""Freeze the second corpus: copy parts of tier0's operator docs into one-topic markdown files.

Run once (already run; the output in second_corpus/ is committed and must NOT be regenerated when
the repository's docs change: the cases in second_cases.yaml are written against these frozen
copies). Each file: a `# Title` line, a `tags:` line, a `source:` line (where the text came from and
at which commit), then the section's text verbatim.

    python3 freeze_second_corpus.py /work/main [--force]  # writes second_corpus/*.md
"""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(next((a for a in sys.argv[1:] if not a.startswith("--")), "/work/main"))
OUT = pathlib.Path(__file__).resolve().parent / "second_corpus"
COMMIT = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
COMMIT_ID = COMMIT.stdout.strip()

README = (REPO / "operator/README.md").read_text(encoding="utf-8").splitlines()
RUNBOOK = (REPO / "operator/RUNBOOK.md").read_text(encoding="utf-8").splitlines()


def block(lines: list[str], start: str, stop: tuple[str, ...]) -> list[str]:
    """Lines from the first one starting with `start` up to (excluding) the next line starting with
    any of `stop` (after the first line); trailing blank lines dropped."""
    begin = next(i for i, line in enumerate(lines) if line.startswith(start))
    end = len(lines)
    for j in range(begin + 1, len(lines)):
        if lines[j].startswith(stop):
            end = j
            break
    out = lines[begin:end]
    while out and not out[-1].strip():
        out.pop()
    return out


NEXT_PARA = ("**", "## ")
DOCS: list[tuple[str, str, str, str, list[list[str]]]] = [
    (
        "operator-overview",
        "tier0 operator: what a RegionPair does (overview and example run)",
        "operator, RegionPair, switchover, failover, fencing",
        'operator/README.md, introduction (up to "The resource")',
        [README[: next(i for i, line in enumerate(README) if line.startswith("## The resource"))]],
    ),
    (
        "regionpair-fields",
        "RegionPair resource: spec and status fields and their defaults",
        "operator, RegionPair, spec, status, defaults, CRD",
        'operator/README.md, section "The resource"',
        [block(README, "## The resource", ("## ",))],
    ),
    (
        "regionpair-phases",
        "RegionPair phases: Pending, Healthy, Degraded, SwitchingOver, FailingOver, Failed",
        "operator, RegionPair, phases, status",
        'operator/README.md, section "Phases"',
        [block(README, "## Phases", ("## ",))],
    ),
    (
        "operator-probing",
        "How the operator probes the two regions",
        "operator, probes, health, failover detection",
        'operator/README.md, "What each event does": Probing',
        [block(README, "**Probing.**", NEXT_PARA)],
    ),
    (
        "operator-switchover",
        "Planned switchover: the steps, rollback and timing",
        "operator, switchover, planned, CLIENT PAUSE, REPLICAOF, rollback",
        'operator/README.md, "What each event does": Switchover',
        [block(README, "**Switchover**", NEXT_PARA)],
    ),
    (
        "operator-failover",
        "Unplanned failover and how to acknowledge it",
        "operator, failover, unplanned, lostBytes, acknowledge",
        'operator/README.md, "What each event does": Failover',
        [block(README, "**Failover**", NEXT_PARA)],
    ),
    (
        "operator-fencing",
        "Fencing a returning old primary, and the pair's epoch in Redis",
        "operator, fencing, epoch, split brain, pair:epoch",
        'operator/README.md, "What each event does": Fencing; The pair\'s epoch in Redis',
        [block(README, "**Fencing.**", NEXT_PARA), block(README, "**The pair's epoch in Redis.**", NEXT_PARA)],
    ),
    (
        "operator-interrupted-transition",
        "Operator killed in the middle of a switchover or failover",
        "operator, transition, restart, resume, rollback",
        'operator/README.md, "What each event does": Operator killed mid-transition',
        [block(README, "**Operator killed mid-transition.**", NEXT_PARA)],
    ),
    (
        "operator-write-guard",
        "The write guard: min-replicas-to-write, Accept and Hold",
        "operator, write guard, replication, min-replicas-to-write, NOREPLICAS",
        'operator/README.md, "What each event does": The write guard',
        [block(README, "**The write guard", NEXT_PARA)],
    ),
    (
        "runbook-overview",
        "tier0 runbook: how to use it",
        "runbook, alerts, PrometheusRule",
        "operator/RUNBOOK.md, introduction",
        [RUNBOOK[: next(i for i, line in enumerate(RUNBOOK) if line.startswith("## "))]],
    ),
]
for section, title, tags in [
    ("region-down", "Runbook: Tier0RegionDown (a region's probes fail)", "runbook, alert, region down, probes"),
    ("replication-lag", "Runbook: Tier0ReplicationLagHigh (the standby lags)", "runbook, alert, replication lag"),
    (
        "ingest-errors",
        "Runbook: Tier0IngestErrors (invalid or failed MQTT writes)",
        "runbook, alert, ingest, dead letter",
    ),
    (
        "pipeline-stalled",
        "Runbook: Tier0PipelineStalled (telemetry pipeline dead or stalled)",
        "runbook, alert, pipeline",
    ),
    (
        "failover-happened",
        "Runbook: Tier0FailoverHappened (a failover in the last 10 minutes)",
        "runbook, alert, failover",
    ),
    (
        "transition-stuck",
        "Runbook: Tier0TransitionStuck (a transition takes too long)",
        "runbook, alert, transition, lease",
    ),
    (
        "writes-at-risk",
        "Runbook: Tier0WritesAtRisk (the primary acknowledges writes alone)",
        "runbook, alert, write guard",
    ),
]:
    DOCS.append(
        (
            f"runbook-{section}",
            title,
            tags,
            f'operator/RUNBOOK.md, section "{section}"',
            [block(RUNBOOK, f"## {section}", ("## ",))],
        )
    )

OUT.mkdir(exist_ok=True)
if any(OUT.glob("*.md")) and "--force" not in sys.argv:
    sys.exit(f"{OUT} already holds the frozen corpus; the cases are written against it (--force to overwrite)")
for doc_id, title, tags, source, parts in DOCS:
    body = "\n\n".join("\n".join(part) for part in parts)
    header = f"# {title}\ntags: {tags}\nsource: frozen copy of {source} at tier0 commit {COMMIT_ID[:12]}\n\n"
    (OUT / f"{doc_id}.md").write_text(header + body + "\n", encoding="utf-8")
    print(doc_id, len(body))
