"""`tier0-dev up|down|status|supervise`: the local process stack (`make stack-up|stack-down|stack-status`)."""

import argparse
import sys

from tier0_dev import stack, supervise
from tier0_dev.procs import MissingProgramError, StartupError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tier0-dev",
        description="Run tier0's local stack on loopback: Redis x2, Mosquitto, RabbitMQ, "
        "etcd + kube-apiserver, and the tier0 components. State and logs go to .run/.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start every component not already running, print where it listens")
    names = ", ".join(c.name for c in stack.COMPONENTS)
    up.add_argument("--only", action="append", metavar="NAME", help=f"start only this component (repeatable): {names}")
    sub.add_parser("down", help="stop what `up` started (only that)")
    sub.add_parser(
        "status",
        help="show each component (pid, restarts, uptime, Redis role) and the RegionPair; exit 1 if any is down",
    )
    sub.add_parser("supervise", help="restart crashed components with backoff (`up` starts it, `down` stops it)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return stack.up(set(args.only) if args.only else None)
        if args.command == "down":
            return stack.down()
        if args.command == "supervise":
            return supervise.serve(stack.supervisor())
        return stack.status()
    except (MissingProgramError, StartupError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
