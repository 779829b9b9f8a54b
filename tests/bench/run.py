"""`make bench`: run every tests/bench/bench_*.py in turn; each prints its own table(s).

A benchmark file is a script with a `main()` that starts what it needs (real programs on free
loopback ports, via tier0_dev), measures, prints `Table`s and returns 0 (or non-zero when a
correctness check inside it, such as zero loss, fails). `make bench BENCH=ingest` runs one.
"""

import importlib.util
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    only = os.environ.get("BENCH", "")
    sys.path[:0] = [str(HERE), str(HERE.parent / "support")]  # table.py, tier0_testing
    failed = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if only and name not in only.split(","):
            continue
        print(f"\n=== bench {name} ===", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        start = time.monotonic()
        rc = module.main()
        print(f"(bench {name}: {time.monotonic() - start:.1f} s, exit {rc})", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks with failed checks: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
