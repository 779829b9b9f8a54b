"""`python -m tier0_dev.kind ...`: the kind path's commands (the Makefile's docker-* and kind-* targets)."""

import sys

from tier0_dev.kind import cluster, engine, nodeimage
from tier0_dev.procs import StartupError

USAGE = (
    "usage: python -m tier0_dev.kind docker-up|docker-down|docker-status|node-image [--force]"
    "|up|e2e [pytest args]|down|status"
)


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "status"
    lay = engine.Layout.default()
    try:
        match cmd:
            case "docker-up":
                engine.up(lay)
                return 0
            case "docker-down":
                return engine.down(lay)
            case "docker-status":
                return engine.status(lay)
            case "node-image":
                want, _ = nodeimage.build(force="--force" in argv)
                found = engine.find(lay)
                if found is not None:
                    nodeimage.load(found, want)
                return 0
            case "up":
                return cluster.up()
            case "e2e":
                return cluster.e2e(argv[1:])
            case "down":
                return cluster.down()
            case "status":
                return cluster.status()
    except (StartupError, RuntimeError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
