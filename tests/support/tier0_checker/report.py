"""The checker's tables (benchmark output) and its pass/fail rule (the issue's targets)."""

import math

from tier0_checker.checker import Report, Row
from tier0_checker.ledger import percentile
from tier0_checker.sentinel import Result

FRESHNESS_TARGET = 1.0


def problems(report: Report, freshness_target: float = FRESHNESS_TARGET) -> list[str]:
    """Every way the run missed a target (empty: all met)."""
    out = [f"run stopped: {e}" for e in report.errors]
    for row in report.rows:
        if row.lost or row.activity_lost:
            out.append(f"{row.scenario}: {row.lost} device + {row.activity_lost} activity acknowledged messages lost")
        if row.dup_applied:
            out.append(f"{row.scenario}: {row.dup_applied} messages applied twice")
        if row.dual_primary:
            out.append(f"{row.scenario}: two writable primaries both acknowledged ({row.dual_primary} samples)")
        p99 = percentile(row.freshness, 0.99)
        if row.freshness and not p99 < freshness_target:  # nan (never fresh) fails too
            out.append(f"{row.scenario}: freshness p99 {p99:.3f} s (target < {freshness_target} s)")
        out += [f"{row.scenario}: {n}" for n in row.notes if n.startswith("FAILED")]
    return out + soak_problems(report)


def soak_problems(report: Report, stored_growth: int = 1000, rss_growth_mb: float = 10.0) -> list[str]:
    """Flat as standby: over the second half of a soak of at least a minute, the broker's store
    grows by fewer than `stored_growth` messages and the standby worker's RSS by < `rss_growth_mb`."""
    soak = report.soak
    if len(soak) < 3 or soak[-1].at < 60:
        return []
    base = next(x for x in soak if x.at >= soak[-1].at / 2)
    last = soak[-1]
    out = []
    if base.broker_stored is not None and last.broker_stored is not None:
        if last.broker_stored - base.broker_stored >= stored_growth:
            out.append(f"standby: broker store grew {base.broker_stored} -> {last.broker_stored} messages")
    if last.worker_rss_mb - base.worker_rss_mb >= rss_growth_mb:
        out.append(f"standby: worker RSS grew {base.worker_rss_mb:.0f} -> {last.worker_rss_mb:.0f} MB")
    return out


def _s(value: float) -> str:
    return "never" if math.isnan(value) else f"{value:.3f}"


def _p(values: list[float], q: float) -> str:
    return _s(percentile(values, q)) if values else "-"


def render(report: Report, side: list[Result], interval: float, threshold: int, rate: float, soak: float) -> int:
    from table import Table  # tests/bench/table.py (the benchmark runner puts it on sys.path)

    t = Table(
        f"tier0 under faults: {rate:.0f} device msg/s (QoS 1) + 10 activity msg/s (confirms); "
        f"detection budget {interval} s x {threshold}; lost = acknowledged but absent from the active Redis "
        "after the system settled (15 s)",
        [
            "scenario",
            "acked",
            "lost",
            "dup applied",
            "redeliveries refused",
            "activity confirmed",
            "activity lost",
            "fresh p50 (s)",
            "fresh p99 (s)",
            "activity fresh (s)",
            "API errors",
            "dual-primary acks",
            "notes",
        ],
    )
    for row in report.rows:
        t.add(
            row.scenario,
            row.acked,
            row.lost,
            row.dup_applied,
            row.redeliveries_refused,
            row.activity_confirmed,
            row.activity_lost,
            _p(row.freshness, 0.5),
            _p(row.freshness, 0.99),
            _p(row.activity_freshness, 0.99),
            row.api_errors,
            row.dual_primary,
            "; ".join(row.notes)[:160],
        )
    t.add("target", "", 0, 0, "", "", 0, "", "< 1", "", "", 0, "")
    t.print()

    if report.soak:
        s = Table(
            f"standby region over {soak:.0f} s (sampled)",
            ["t (s)", "standby", "standby worker RSS (MB)", "broker RSS (MB)", "broker stored messages"],
        )
        for x in report.soak:
            s.add(
                round(x.at, 1),
                x.standby,
                x.worker_rss_mb,
                x.broker_rss_mb,
                "?" if x.broker_stored is None else x.broker_stored,
            )
        s.print()

    f = Table(
        "failover side by side (same writer rate, same faults, same detection budget)",
        ["system", "fault", "failover time (s)", "acknowledged writes", "acknowledged lost", "how acknowledged"],
    )
    by_name = {r.scenario: r for r in report.rows}
    for name, fault in (("kill-redis", "kill -9 of the primary"), ("partition", "primary cut from control + replica")):
        row = by_name.get(name, Row(name))
        f.add("tier0", fault, _p(row.failover_time, 0.5), row.acked, row.lost, "PUBACK (broker), then ingest")
    for r in side:
        f.add("redis-sentinel", r.fault, _s(r.failover_time), r.acked, r.lost, "reply to the write (no WAIT)")
    f.print()
    print(f"device messages sent {report.sent:,}, activity messages sent {report.activity_sent:,}")
    missed = problems(report)
    for p in missed:
        print(f"CHECK FAILED: {p}")
    return 1 if missed else 0
