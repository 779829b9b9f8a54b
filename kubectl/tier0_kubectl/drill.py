"""Pure: when a switchover or a failover has finished as the operator reports it, whether a drill may
start, and the drill's report (its figures, its text, the annotation and Event that record it).

The figures come from the operator's status (transition start, end and duration, lostBytes, the
standby's lag) and the one instant only the drill knows: when it asked (spec.activeRegion patched)
or struck (the active Redis taken down)."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tier0_contract import regionpair as rp
from tier0_kubectl import view

EVENT_COMPONENT = "kubectl-tier0"


@dataclass(frozen=True)
class Progress:
    done: bool
    line: str
    """What the pair is doing now, one line (printed when it changes)."""
    failed: str | None = None
    """Why waiting longer is pointless (None: keep waiting)."""


def switchover_progress(pair: rp.RegionPair, target: str, since_epoch: int) -> Progress:
    """Where a switchover to `target`, asked for when the pair was at `since_epoch`, stands."""
    status = pair.status
    if status.transition is not None:
        t = status.transition
        return Progress(
            False, f"{status.phase}: {t.type} {t.from_region}->{t.to_region} (epoch {t.epoch}, attempt {t.attempt})"
        )
    if status.active_region == target and status.requested_region == target:
        return Progress(True, f"{target} is active (phase {status.phase}, epoch {status.epoch})")
    last = status.last_transition
    if last is not None and last.epoch > since_epoch and last.to_region == target and last.outcome != "Succeeded":
        line = f"{last.type} to {target} {last.outcome}: {last.reason}"
        if last.outcome == "Failed":
            return Progress(False, line, failed=line)
        return Progress(False, line + " (the operator retries after a backoff)")
    if pair.spec.paused:
        return Progress(
            False, "paused", failed="the pair is paused: the operator does not switch over (kubectl tier0 resume)"
        )
    return Progress(False, f"waiting for the operator (phase {status.phase}, active {status.active_region or '-'})")


def failover_progress(pair: rp.RegionPair, since_epoch: int, lost: str) -> Progress:
    """Where the failover away from `lost`, expected after the pair was at `since_epoch`, stands."""
    status = pair.status
    if status.transition is not None:
        t = status.transition
        return Progress(False, f"{status.phase}: {t.type} {t.from_region}->{t.to_region} (epoch {t.epoch})")
    last = status.last_transition
    if last is not None and last.epoch > since_epoch and last.from_region == lost:
        if last.outcome == "Succeeded":
            return Progress(True, f"{last.type} {last.from_region}->{last.to_region} in {last.duration_seconds:.3f}s")
        return Progress(
            False, f"{last.type} {last.outcome}: {last.reason}", failed=f"{last.type} {last.outcome}: {last.reason}"
        )
    region = status.region(lost)
    failures = f", {region.consecutive_failures} failed probes of {lost}" if region is not None else ""
    return Progress(False, f"waiting for the operator to detect the loss (phase {status.phase}{failures})")


def healthy_on(pair: rp.RegionPair, region: str) -> bool:
    status = pair.status
    return status.phase == "Healthy" and status.active_region == region and not status.in_transition


def refuse(pair: rp.RegionPair, unplanned: bool) -> str | None:
    """Why a drill must not start now (None: it may)."""
    status = pair.status
    if pair.spec.paused:
        return "the pair is paused (kubectl tier0 resume first)"
    if status.in_transition:
        return "a transition is in progress"
    if status.phase != "Healthy":
        return f"the pair is {status.phase}, not Healthy: a drill starts from a pair that could fail over without loss"
    if status.active_region != pair.spec.active_region:
        wish, active = pair.spec.active_region, status.active_region
        return f"spec.activeRegion {wish} is not the active region {active} (acknowledge the failover first)"
    if unplanned and pair.spec.failover.mode != "Automatic":
        return "failover mode is Manual: an unplanned loss would not be failed over"
    return None


def statefulset_of(region: rp.Region) -> str:
    """The region's Redis StatefulSet as the tier0 chart names it: its Service's name, the first label
    of `redis.host` (`tier0-redis-region1.tier0.svc`)."""
    return region.redis.host.split(".")[0]


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds(), 3)


def planned_report(
    before: rp.RegionPair, after: rp.RegionPair, started_at: datetime, requested_at: datetime, finished_at: datetime
) -> rp.DrillReport:
    """A planned switchover drill: requested at `requested_at`, `after` read once it finished (or the
    wait gave up)."""
    source = before.status.active_region or before.spec.active_region
    last = after.status.last_transition
    moved = last if last is not None and last.epoch > before.status.epoch else None
    passed = moved is not None and moved.outcome == "Succeeded" and moved.type == "Switchover" and moved.lost_bytes == 0
    if moved is None:
        message = f"no transition finished (phase {after.status.phase}, active {after.status.active_region})"
    else:
        message = moved.summary or f"{moved.type} {moved.from_region}->{moved.to_region} {moved.outcome}"
    return rp.DrillReport(
        kind="Planned",
        passed=passed,
        from_region=source,
        to_region=moved.to_region if moved is not None and moved.outcome == "Succeeded" else None,
        started_at=started_at,
        finished_at=finished_at,
        requested_at=requested_at,
        transition_type=moved.type if moved else None,
        outcome=moved.outcome if moved else None,
        epoch=moved.epoch if moved else None,
        detection_seconds=_seconds(moved.started_at, requested_at) if moved else None,
        transition_seconds=moved.duration_seconds if moved else None,
        outage_seconds=moved.duration_seconds if moved else None,
        bytes_at_risk=view.bytes_at_risk(before),
        lost_bytes=moved.lost_bytes if moved else 0,
        message=message,
    )


def unplanned_report(
    before: rp.RegionPair,
    after: rp.RegionPair,
    started_at: datetime,
    fault_at: datetime,
    finished_at: datetime,
    restored: bool,
) -> rp.DrillReport:
    """An unplanned-failover rehearsal: the active Redis taken down at `fault_at`; `after` read once
    the failover finished (or the wait gave up); `restored`: the Redis came back and rejoined."""
    lost = before.status.active_region or before.spec.active_region
    last = after.status.last_transition
    moved = last if last is not None and last.epoch > before.status.epoch and last.from_region == lost else None
    passed = moved is not None and moved.outcome == "Succeeded" and restored
    if moved is None:
        message = f"no failover finished (phase {after.status.phase}, active {after.status.active_region})"
    else:
        message = (moved.summary or f"{moved.type} {moved.from_region}->{moved.to_region} {moved.outcome}") + (
            "" if restored else f"; {lost} did not rejoin as a replica"
        )
    return rp.DrillReport(
        kind="Unplanned",
        passed=passed,
        from_region=lost,
        to_region=moved.to_region if moved is not None and moved.outcome == "Succeeded" else None,
        started_at=started_at,
        finished_at=finished_at,
        fault_at=fault_at,
        transition_type=moved.type if moved else None,
        outcome=moved.outcome if moved else None,
        epoch=moved.epoch if moved else None,
        detection_seconds=_seconds(moved.started_at, fault_at) if moved else None,
        transition_seconds=moved.duration_seconds if moved else None,
        outage_seconds=_seconds(moved.completed_at, fault_at) if moved else None,
        bytes_at_risk=view.bytes_at_risk(before),
        lost_bytes=moved.lost_bytes if moved else 0,
        restored=restored,
        message=message,
    )


def format_report(report: rp.DrillReport) -> str:
    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    rows = [
        ("drill", f"{report.kind} ({'passed' if report.passed else 'FAILED'})"),
        ("moved", f"{report.from_region} -> {report.to_region or '(stayed)'}"),
        ("transition", f"{report.transition_type or '-'} {report.outcome or ''} epoch {report.epoch or '-'}".strip()),
        (
            "detection",
            figure(report.detection_seconds)
            + ("  (request -> transition start)" if report.kind == "Planned" else "  (fault -> transition start)"),
        ),
        ("transition time", figure(report.transition_seconds)),
        (
            "outage (operator's view)",
            figure(report.outage_seconds)
            + ("  (writes paused)" if report.kind == "Planned" else "  (fault -> transition end)"),
        ),
        ("bytes at risk", f"{report.bytes_at_risk}  (standby lag when the drill started)"),
        ("lost bytes", f"{report.lost_bytes}  (lastTransition.lostBytes)"),
    ]
    if report.restored is not None:
        rows.append(("restored", "yes" if report.restored else "NO"))
    rows.append(("summary", report.message))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def annotation(report: rp.DrillReport) -> dict[str, str | None]:
    """The annotation recording the report on the pair (compact JSON in `tier0.dev/last-drill`)."""
    return {rp.LAST_DRILL_ANNOTATION: json.dumps(report.to_json(), separators=(",", ":"))}


def event_body(pair: rp.RegionPair, report: rp.DrillReport, at: datetime) -> dict[str, Any]:
    """A core/v1 Event on the pair: `DrillPassed` (Normal) or `DrillFailed` (Warning)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = pair.metadata
    moved = f"{report.from_region}->{report.to_region or '(stayed)'}"
    text = f"{report.kind} drill {moved} {'passed' if report.passed else 'FAILED'}: {view.drill_figures(report)}"
    return {
        "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
        "involvedObject": {
            "apiVersion": rp.API_VERSION,
            "kind": rp.KIND,
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
        },
        "reason": "DrillPassed" if report.passed else "DrillFailed",
        "message": f"{text} ({report.message})"[:1024],
        "type": "Normal" if report.passed else "Warning",
        "source": {"component": EVENT_COMPONENT},
        "reportingComponent": f"{rp.GROUP}/{EVENT_COMPONENT}",
        "reportingInstance": EVENT_COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
