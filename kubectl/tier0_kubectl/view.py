"""Pure: what `kubectl tier0 status` and `history` show — the risks read from a RegionPair, its Events
as a model, the history newest first, and the text tables. No I/O, so every rule is unit-tested."""

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from tier0_contract import regionpair as rp

Severity = Literal["critical", "warning", "info"]


class _View(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore", serialize_by_alias=True
    )


class Risk(_View):
    severity: Severity
    what: str


class EventSource(_View):
    component: str = ""


class EventMeta(_View):
    name: str = ""
    creation_timestamp: datetime | None = None
    resource_version: str = ""


class PairEvent(_View):
    """A core/v1 Event about the pair (the fields `history` shows)."""

    metadata: EventMeta = EventMeta()
    type: str = "Normal"
    reason: str = ""
    message: str = ""
    count: int | None = None
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None
    event_time: datetime | None = None
    source: EventSource = EventSource()
    reporting_component: str | None = None

    @property
    def at(self) -> datetime | None:
        return self.last_timestamp or self.event_time or self.first_timestamp or self.metadata.creation_timestamp

    @property
    def revision(self) -> int:
        """The Event's etcd revision: Events carry second-resolution times, so this orders those of
        the same second (resourceVersion is opaque in theory, etcd's revision in every apiserver)."""
        return int(self.metadata.resource_version) if self.metadata.resource_version.isdigit() else 0

    @property
    def component(self) -> str:
        return self.source.component or self.reporting_component or ""


class HistoryEntry(_View):
    at: datetime | None
    type: str
    """Normal or Warning (an Event's type; a transition that did not succeed is a Warning)."""
    reason: str
    message: str
    source: str


class StatusView(_View):
    """`status -o json|yaml`: the pair as the operator reports it, plus what the plugin concludes."""

    name: str
    namespace: str
    phase: rp.Phase
    active_region: str | None
    requested_region: str
    """spec.activeRegion: the region the user wants."""
    paused: bool
    mode: str
    epoch: int
    bytes_at_risk: int
    regions: tuple[rp.RegionStatus, ...]
    services: tuple[rp.ServiceStatus, ...]
    transition: rp.TransitionStatus | None
    last_transition: rp.LastTransition | None
    conditions: tuple[rp.Condition, ...]
    at_risk: tuple[Risk, ...] = Field(default=())
    last_drill: rp.DrillReport | None = None


def last_drill(pair: rp.RegionPair) -> rp.DrillReport | None:
    """The report in the pair's `tier0.dev/last-drill` annotation (None: none, or not a report)."""
    raw = pair.metadata.annotations.get(rp.LAST_DRILL_ANNOTATION)
    if not raw:
        return None
    try:
        return rp.DrillReport.model_validate_json(raw)
    except ValidationError:
        return None


def standby_of(pair: rp.RegionPair) -> str | None:
    active = pair.status.active_region
    if active is None:
        return None
    return next((name for name in pair.spec.region_names if name != active), None)


def bytes_at_risk(pair: rp.RegionPair) -> int:
    """Acknowledged bytes the standby lacks: its replication lag behind the active primary (the
    offsets in status). A standby that does not replicate at all puts every write since it stopped
    at risk; the lag is then the last one measured."""
    standby = standby_of(pair)
    region = pair.status.region(standby) if standby else None
    return max(pair.status.lag_bytes, region.lag_bytes if region else 0)


def assess(pair: rp.RegionPair) -> tuple[Risk, ...]:
    """What stands between this pair and a failover without loss, worst first."""
    spec, status = pair.spec, pair.status
    risks: list[Risk] = []

    def add(severity: Severity, what: str) -> None:
        risks.append(Risk(severity=severity, what=what))

    active = status.active_region
    if active is None:
        add("critical", f"no active region yet (phase {status.phase}): the operator has not bootstrapped the pair")
    if status.phase == "Failed":
        add("critical", "phase Failed: the active region is down and nothing will be done automatically")
    ready = status.condition(rp.READY)
    if (
        ready is not None
        and ready.status == "False"
        and ready.reason in ("InvalidSpec", "RegionsChanged", "RoundFailed")
    ):
        add("critical", f"operator blocked ({ready.reason}): {ready.message}")
    if active is not None:
        region = status.region(active)
        if region is not None and not region.healthy:
            add(
                "critical",
                f"active region {active} unhealthy ({region.consecutive_failures} failed probes): {region.message}",
            )
        if region is not None and region.redis_endpoints in ("terminating", "notready", "absent"):
            add("critical", f"active region {active}'s Redis endpoints are {region.redis_endpoints}")
    standby = standby_of(pair)
    if standby is not None:
        region = status.region(standby)
        if region is None or not region.healthy:
            why = f": {region.message}" if region is not None and region.message else ""
            add("critical", f"standby {standby} is down: nothing to fail over to{why}")
        elif region.role != "replica" or not region.link_up:
            add(
                "critical",
                f"standby {standby} is not replicating (role {region.role}, link {'up' if region.link_up else 'down'})",
            )
    replication = status.replication
    if replication is not None and replication.at_risk:
        since = f" since {replication.at_risk_since.isoformat()}" if replication.at_risk_since else ""
        add("critical", f"writes are acknowledged by the primary alone{since} (whenStandbyDown: Accept)")
    elif replication is not None and replication.standby_out_of_sync_since is not None:
        add("warning", f"standby out of sync since {replication.standby_out_of_sync_since.isoformat()}")
    lag = bytes_at_risk(pair)
    if lag > 0:
        add("warning", f"{lag} bytes at risk: the standby's replication lag behind the primary")
    if spec.paused:
        add("warning", "paused: the operator probes but changes nothing (no switchover, no failover)")
    if spec.failover.mode == "Manual":
        add("warning", "failover mode Manual: a lost active region is not failed over automatically")
    if status.in_transition and status.transition is not None:
        t = status.transition
        add("info", f"{t.type} {t.from_region}->{t.to_region} in progress since {t.started_at.isoformat()}")
    matches = status.condition(rp.ACTIVE_REGION_MATCHES_SPEC)
    if matches is not None and matches.status == "False" and not status.in_transition:
        add("warning", f"spec.activeRegion {spec.active_region} is not active ({matches.reason}): {matches.message}")
    pipeline_ok = status.condition(rp.PIPELINE_HEALTHY)
    if pipeline_ok is not None and pipeline_ok.status == "False":
        add("warning", f"pipeline unhealthy ({pipeline_ok.reason}): {pipeline_ok.message}")
    order = {"critical": 0, "warning": 1, "info": 2}
    return tuple(sorted(risks, key=lambda r: order[r.severity]))


def status_view(pair: rp.RegionPair) -> StatusView:
    status = pair.status
    return StatusView(
        name=pair.metadata.name,
        namespace=pair.metadata.namespace,
        phase=status.phase,
        active_region=status.active_region,
        requested_region=pair.spec.active_region,
        paused=pair.spec.paused,
        mode=pair.spec.failover.mode,
        epoch=status.epoch,
        bytes_at_risk=bytes_at_risk(pair),
        regions=status.regions,
        services=status.services,
        transition=status.transition,
        last_transition=status.last_transition,
        conditions=status.conditions,
        at_risk=assess(pair),
        last_drill=last_drill(pair),
    )


STATUS_RANK = 1 << 62


def history(pair: rp.RegionPair, events: list[PairEvent]) -> list[HistoryEntry]:
    """The transition in progress, the last finished one (from status) and the pair's Events, newest
    first. Events have whole seconds, so within a second the Events come first, the newest revision
    first, then the status entries: the operator posts a transition's Events after writing its
    status, and a drill's after the transition."""
    entries: list[tuple[int, HistoryEntry]] = []  # (how many revisions older for an Event, STATUS; entry)
    status = pair.status
    if status.transition is not None:
        t = status.transition
        message = (
            f"{t.type} {t.from_region}->{t.to_region} in progress (epoch {t.epoch}, attempt {t.attempt}): {t.reason}"
        )
        entries.append(
            (
                STATUS_RANK,
                HistoryEntry(
                    at=t.started_at, type="Normal", reason="InProgress", message=message, source="status.transition"
                ),
            )
        )
    if status.last_transition is not None:
        done = status.last_transition
        message = (
            f"{done.type} {done.from_region}->{done.to_region} {done.outcome} in {done.duration_seconds:.3f}s "
            f"(trigger {done.trigger}, epoch {done.epoch}, lost {done.lost_bytes} bytes): {done.reason}"
        )
        kind = "Normal" if done.outcome == "Succeeded" else "Warning"
        entries.append(
            (
                STATUS_RANK,
                HistoryEntry(
                    at=done.completed_at,
                    type=kind,
                    reason=f"{done.type}{done.outcome}",
                    message=message,
                    source="status.lastTransition",
                ),
            )
        )
    newest = max((e.revision for e in events), default=0)
    for e in events:
        count = f" (x{e.count})" if e.count and e.count > 1 else ""
        entry = HistoryEntry(at=e.at, type=e.type, reason=e.reason, message=e.message + count, source=e.component)
        entries.append((newest - e.revision, entry))

    def key(item: tuple[int, HistoryEntry]) -> tuple[float, int]:
        at = item[1].at
        return (-math.floor(at.timestamp()) if at is not None else math.inf, item[0])

    return [entry for _, entry in sorted(entries, key=key)]


# --- text ------------------------------------------------------------------------------------------


def age(at: datetime | None, now: datetime) -> str:
    """Short ages as kubectl's (a unit once two of it have passed): 119s, 12m, 3h, 5d (`-`: unknown)."""
    if at is None:
        return "-"
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Columns as `kubectl get` aligns them (three spaces apart, no trailing blanks)."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in (header, *rows)]
    return "\n".join(lines)


def format_status(view: StatusView, now: datetime) -> str:
    active = view.active_region or "-"
    head = (
        f"RegionPair {view.namespace}/{view.name}: phase {view.phase}, active {active} "
        f"(spec.activeRegion {view.requested_region}), epoch {view.epoch}, mode {view.mode}"
        + (", PAUSED" if view.paused else "")
    )
    rows = []
    for r in view.regions:
        name = r.name + (" *" if r.name == view.active_region else "")
        link = "-" if r.role == "primary" else ("up" if r.link_up else "down")
        rows.append(
            (
                name,
                r.role,
                "healthy" if r.healthy else f"unhealthy ({r.consecutive_failures})",
                link,
                str(r.lag_bytes),
                r.redis_endpoints,
                r.api_endpoints,
                r.pipeline.state if r.pipeline else "-",
                age(r.last_probe_time, now),
            )
        )
    header = ("REGION", "ROLE", "HEALTH", "LINK", "LAG BYTES", "REDIS ENDPOINTS", "API ENDPOINTS", "PIPELINE", "PROBED")
    out = [head, "", table(header, rows) if rows else "(no region probed yet)", ""]
    if view.services:
        out.append("Services: " + ", ".join(f"{s.name} -> {s.region or '-'}" for s in view.services))
    if view.transition is not None:
        t = view.transition
        out.append(
            f"In progress: {t.type} {t.from_region}->{t.to_region} (epoch {t.epoch}) for {age(t.started_at, now)}"
        )
    if view.last_transition is not None:
        done = view.last_transition
        out.append(
            f"Last transition: {done.type} {done.from_region}->{done.to_region} {done.outcome} "
            f"in {done.duration_seconds:.3f}s, trigger {done.trigger}, lost {done.lost_bytes} bytes, "
            f"{age(done.completed_at, now)} ago"
        )
    else:
        out.append("Last transition: none")
    if view.last_drill is not None:
        out.append("Last drill: " + drill_line(view.last_drill, now))
    out.append(f"Bytes at risk: {view.bytes_at_risk}")
    if view.at_risk:
        out.append("At risk:")
        out.extend(f"  [{r.severity}] {r.what}" for r in view.at_risk)
    else:
        out.append("At risk: nothing")
    return "\n".join(out)


def drill_figures(report: rp.DrillReport) -> str:
    """The report's figures, one line: `detection 0.012s, transition 0.061s, outage 0.061s, ...`."""
    timed = (
        ("detection", report.detection_seconds),
        ("transition", report.transition_seconds),
        ("outage", report.outage_seconds),
    )
    figures = [f"{label} {value:.3f}s" for label, value in timed if value is not None]
    figures += [f"{report.bytes_at_risk} bytes at risk", f"lost {report.lost_bytes} bytes"]
    return ", ".join(figures)


def drill_line(report: rp.DrillReport, now: datetime) -> str:
    verdict = "passed" if report.passed else "FAILED"
    moved = f"{report.from_region}->{report.to_region}" if report.to_region else f"{report.from_region} (did not move)"
    return f"{report.kind} {moved} {verdict}: {drill_figures(report)}, {age(report.finished_at, now)} ago"


def format_history(entries: list[HistoryEntry], now: datetime) -> str:
    if not entries:
        return "No transitions or events recorded."
    rows = [(age(e.at, now), e.type, e.reason, e.source, e.message) for e in entries]
    return table(("AGE", "TYPE", "REASON", "FROM", "MESSAGE"), rows)
