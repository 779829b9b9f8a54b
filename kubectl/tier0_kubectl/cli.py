"""`kubectl tier0 ...` (the `kubectl-tier0` executable): parses kubectl-style arguments and
orchestrates — read the pair, patch it, wait on its status, record a drill — while the rules and the
text live in `view` and `drill`. Exit codes: 0 done, 1 error (pair not found, refused, API error, a
drill that failed), 2 usage (unknown command or region), 3 timeout."""

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import yaml

from tier0_contract import regionpair as rp
from tier0_kubectl import cluster, drill, view
from tier0_kubectl.cluster import Cluster, PluginError

POLL_SECONDS = 0.1

EPILOG = """exit codes: 0 done, 1 error (not found, refused, API error, failed drill), 2 usage, 3 timeout.
Configuration as kubectl: KUBECONFIG or --kubeconfig, --context, -n/--namespace (default: the
context's namespace). With one RegionPair in the namespace, PAIR may be left out."""


def _connection_flags(defaults: bool) -> argparse.ArgumentParser:
    """kubectl's connection flags, accepted before and after the command (after it without defaults,
    so they do not overwrite what was given before it)."""
    p = argparse.ArgumentParser(add_help=False)
    d: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    p.add_argument("--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)", **d)
    p.add_argument("--context", help="the kubeconfig context to use", **d)
    p.add_argument("-n", "--namespace", help="the namespace of the RegionPair (default: the context's)", **d)
    p.add_argument(
        "--request-timeout",
        type=float,
        help="seconds for each API request (default 10)",
        **({"default": 10.0} if defaults else d),
    )
    return p


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kubectl tier0",
        description="Operate a tier0 RegionPair: status, switchover, pause/resume, history, failover drills.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_connection_flags(True)],
    )
    common = _connection_flags(False)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_,
            description=help_,
            parents=[common],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def output(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text", help="output format")

    p = command(
        "status", "The pair, its regions (role, health, lag, endpoints), the last transitions and what is at risk."
    )
    p.add_argument("pair", nargs="?", metavar="PAIR")
    output(p)

    p = command(
        "switchover", "Make region TO active (spec.activeRegion) and wait until the operator has switched over."
    )
    p.add_argument("to", metavar="TO", help="the region to make active")
    p.add_argument("pair", nargs="?", metavar="PAIR")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the switchover (default 60)")
    p.add_argument("--no-wait", action="store_true", help="set spec.activeRegion and return")

    for name, help_ in (
        ("pause", "Pause the pair (spec.paused): the operator probes and reports but changes nothing, no failover."),
        ("resume", "Resume the pair (spec.paused: false)."),
    ):
        p = command(name, help_)
        p.add_argument("pair", nargs="?", metavar="PAIR")

    p = command("history", "Transitions (status) and the pair's Events, newest first.")
    p.add_argument("pair", nargs="?", metavar="PAIR")
    p.add_argument("--limit", type=int, default=50, help="at most this many entries (default 50)")
    output(p)

    p = command(
        "drill",
        "A failover drill: a planned switchover (default) or, with --unplanned, the active Redis taken down and "
        "restored after the failover. Prints the report and records it on the pair (annotation "
        f"{rp.LAST_DRILL_ANNOTATION}) and as an Event (DrillPassed / DrillFailed).",
    )
    p.add_argument("pair", nargs="?", metavar="PAIR")
    p.add_argument("--to", help="planned: the region to switch to (default: the standby)")
    p.add_argument(
        "--unplanned",
        action="store_true",
        help="rehearse an unplanned failover: force-delete the active region's Redis pod and scale its "
        "StatefulSet to 0, wait for the failover, scale it back, acknowledge the failover",
    )
    p.add_argument(
        "--statefulset",
        help="unplanned: the active Redis's StatefulSet (default: the tier0 chart's, the first label of redis.host)",
    )
    p.add_argument(
        "--no-acknowledge", action="store_true", help="unplanned: leave spec.activeRegion as it was after the failover"
    )
    p.add_argument("-y", "--yes", action="store_true", help="unplanned: do not ask for confirmation")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for each wait (default 120)")
    output(p)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except PluginError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


async def run(args: argparse.Namespace) -> int:
    c = await Cluster.connect(args.kubeconfig, args.context, args.namespace, args.request_timeout)
    try:
        name = await c.resolve(args.pair)
        handler: dict[str, Callable[[Cluster, str, argparse.Namespace], Any]] = {
            "status": status,
            "switchover": switchover,
            "pause": pause,
            "resume": pause,
            "history": history,
            "drill": run_drill,
        }
        result: int = await handler[args.command](c, name, args)
        return result
    finally:
        await c.close()


def now() -> datetime:
    return rp.now()


def emit(data: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")


def progress(start: float, line: str) -> None:
    print(f"[{time.monotonic() - start:6.2f}s] {line}", file=sys.stderr, flush=True)


# --- commands --------------------------------------------------------------------------------------


async def status(c: Cluster, name: str, args: argparse.Namespace) -> int:
    shown = view.status_view(await c.pair(name))
    if args.output == "text":
        print(view.format_status(shown, now()))
    else:
        emit(shown.model_dump(mode="json", by_alias=True), args.output)
    return 0


async def history(c: Cluster, name: str, args: argparse.Namespace) -> int:
    pair = await c.pair(name)
    entries = view.history(pair, await c.events(pair))[: max(0, args.limit)]
    if args.output == "text":
        print(view.format_history(entries, now()))
    else:
        emit([e.model_dump(mode="json", by_alias=True) for e in entries], args.output)
    return 0


async def pause(c: Cluster, name: str, args: argparse.Namespace) -> int:
    want = args.command == "pause"
    pair = await c.pair(name)
    if pair.spec.paused == want:
        print(f"regionpair/{name} already {'paused' if want else 'running (not paused)'}")
        return 0
    await c.set_paused(name, want)
    print(f"regionpair/{name} {'paused: the operator changes nothing until resumed' if want else 'resumed'}")
    return 0


async def wait(
    c: Cluster,
    name: str,
    check: Callable[[rp.RegionPair], drill.Progress],
    timeout: float,
    what: str,
    clock: float | None = None,
) -> rp.RegionPair:
    """Poll the pair until `check` says done; progress on stderr when it changes (times from `clock`,
    a monotonic start, default now). PluginError with the last state on failure (exit 1) or timeout
    (exit 3)."""
    start = time.monotonic()
    clock = start if clock is None else clock
    last_line = ""
    while True:
        pair = await c.pair(name)
        state = check(pair)
        if state.line != last_line:
            progress(clock, state.line)
            last_line = state.line
        if state.done:
            return pair
        if state.failed is not None:
            raise PluginError(f"{what} failed: {state.failed}")
        if time.monotonic() - start > timeout:
            raise PluginError(f"timed out after {timeout:.0f}s waiting for {what}: {state.line}", cluster.EXIT_TIMEOUT)
        await asyncio.sleep(POLL_SECONDS)


def check_region(pair: rp.RegionPair, region: str) -> None:
    if region not in pair.spec.region_names:
        known = ", ".join(pair.spec.region_names)
        raise PluginError(f'region "{region}" unknown: RegionPair {pair.metadata.name} has {known}', cluster.EXIT_USAGE)


async def switch(c: Cluster, name: str, pair: rp.RegionPair, to: str, timeout: float | None) -> rp.RegionPair:
    """Set spec.activeRegion to `to` and (timeout given) wait until the operator made it active."""
    current = pair.status.active_region
    if pair.spec.active_region == to and pair.status.requested_region == to and current not in (to, None):
        # The operator acts on a change of spec.activeRegion; after a failover away from `to` the spec
        # still names it, so acknowledge the failover first, then ask again.
        await c.request_region(name, current)
        await wait(
            c,
            name,
            lambda p: drill.Progress(p.status.requested_region == current, f"acknowledging the failover to {current}"),
            timeout or 30.0,
            "the acknowledgement",
        )
    await c.request_region(name, to)
    if timeout is None:
        return pair
    return await wait(
        c, name, lambda p: drill.switchover_progress(p, to, pair.status.epoch), timeout, f"the switchover to {to}"
    )


async def switchover(c: Cluster, name: str, args: argparse.Namespace) -> int:
    pair = await c.pair(name)
    check_region(pair, args.to)
    status_ = pair.status
    if status_.active_region == args.to and pair.spec.active_region == args.to and not status_.in_transition:
        print(f"regionpair/{name}: {args.to} is already active (phase {status_.phase}); nothing to do")
        return 0
    if pair.spec.paused and not args.no_wait:
        raise PluginError(
            f"regionpair/{name} is paused: the operator would not switch over (kubectl tier0 resume {name})"
        )
    after = await switch(c, name, pair, args.to, None if args.no_wait else args.timeout)
    if args.no_wait:
        print(f"regionpair/{name}: spec.activeRegion set to {args.to}")
        return 0
    last = after.status.last_transition
    took = (
        f" in {last.duration_seconds:.3f}s, lost {last.lost_bytes} bytes"
        if last is not None and last.to_region == args.to
        else ""
    )
    print(
        f"regionpair/{name}: switched over to {args.to}{took} (phase {after.status.phase}, epoch {after.status.epoch})"
    )
    return 0


# --- drill -----------------------------------------------------------------------------------------


def confirm(pair: rp.RegionPair, statefulset: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise PluginError("an unplanned drill takes the active Redis down: confirm on a terminal or pass --yes")
    active = pair.status.active_region
    print(
        f"This force-deletes the pod(s) of StatefulSet {statefulset} (region {active}'s Redis, the primary) and "
        f"scales it to 0 until the operator has failed over, then restores it.",
        file=sys.stderr,
    )
    answer = input(f"Type the pair's name ({pair.metadata.name}) to go on: ")
    if answer.strip() != pair.metadata.name:
        raise PluginError("not confirmed; nothing was changed")


def rejoin_line(pair: rp.RegionPair, lost: str) -> str:
    region = pair.status.region(lost)
    role = f"role {region.role}, link {'up' if region.link_up else 'down'}" if region is not None else "not probed"
    return f"waiting for {lost}'s Redis to be back ({role}, phase {pair.status.phase})"


async def run_drill(c: Cluster, name: str, args: argparse.Namespace) -> int:
    before = await c.pair(name)
    if (why := drill.refuse(before, args.unplanned)) is not None:
        raise PluginError(f"regionpair/{name}: no drill: {why}")
    report = await (unplanned(c, name, before, args) if args.unplanned else planned(c, name, before, args))
    await c.annotate(name, drill.annotation(report))
    await c.record_event(drill.event_body(before, report, now()))
    if args.output == "text":
        print(drill.format_report(report))
    else:
        emit(report.to_json(), args.output)
    return 0 if report.passed else cluster.EXIT_ERROR


async def planned(c: Cluster, name: str, before: rp.RegionPair, args: argparse.Namespace) -> rp.DrillReport:
    source = before.status.active_region or before.spec.active_region
    target = args.to or before.spec.other(source).name
    check_region(before, target)
    if target == source:
        raise PluginError(f"--to {target} is already active: a planned drill moves the pair", cluster.EXIT_USAGE)
    started = now()
    try:
        await switch(c, name, before, target, args.timeout)
    except PluginError as e:
        progress(time.monotonic(), f"drill: {e}")
    after = await c.pair(name)
    return drill.planned_report(before, after, started, started, now())


async def unplanned(c: Cluster, name: str, before: rp.RegionPair, args: argparse.Namespace) -> rp.DrillReport:
    lost = before.status.active_region or before.spec.active_region
    statefulset = args.statefulset or drill.statefulset_of(before.spec.region(lost))
    replicas, selector = await c.replicas(statefulset)
    confirm(before, statefulset, args.yes)
    started = now()
    t0 = time.monotonic()
    restored = False
    fault_at = started
    try:
        pods = await c.force_delete_pods(selector)
        await c.scale(statefulset, 0)
        fault_at = now()
        progress(
            t0,
            f"took {lost}'s Redis down: StatefulSet {statefulset} at 0, force-deleted: {', '.join(pods) or 'no pod'}",
        )
        try:
            await wait(
                c,
                name,
                lambda p: drill.failover_progress(p, before.status.epoch, lost),
                args.timeout,
                "the failover",
                t0,
            )
        except PluginError as e:
            progress(t0, f"drill: {e}")
    finally:
        await c.scale(statefulset, replicas)
        progress(t0, f"restored StatefulSet {statefulset} to {replicas} replica(s)")
    after = await c.pair(name)
    new_active = after.status.active_region
    # Back to Healthy: on the region failed over to (the lost one rejoined as its replica), or, when
    # no failover happened, on the lost region itself once its Redis is back.
    healthy_region = new_active if new_active is not None else lost
    if healthy_region != lost and not args.no_acknowledge and after.spec.active_region != healthy_region:
        await c.request_region(name, healthy_region)
        progress(t0, f"acknowledged the failover: spec.activeRegion {healthy_region}")
    try:
        await wait(
            c,
            name,
            lambda p: drill.Progress(drill.healthy_on(p, healthy_region), rejoin_line(p, lost)),
            args.timeout,
            f"{lost} to rejoin",
            t0,
        )
        restored = True
    except PluginError as e:
        progress(t0, f"drill: {e}")
    finished = now()
    return drill.unplanned_report(before, after, started, fault_at, finished, restored)
