"""`python tests/support/tier0_testing/wedged.py MODULE [ARGS...]`: run `python -m MODULE ARGS...` so
that a test can wedge its loop for real (started by `tier0_testing.wedge.argv`).

On SIGUSR1 the main thread — where the operator's kopf loop, the ingest worker's asyncio loop and
the activity consumer's consume loop run — sleeps in a blocking call for `TIER0_TEST_WEDGE_SECONDS`
(default 5), exactly as a blocking call made on the loop would hold it; every other thread (the
metrics and health server) runs on. Standard library only: it runs as a script, without pytest's
pythonpath. Test support: never in a product image.
"""

import os
import runpy
import signal
import sys
import time
from types import FrameType

WEDGE_SECONDS_ENV = "TIER0_TEST_WEDGE_SECONDS"


def _wedge(signum: int, frame: FrameType | None) -> None:
    time.sleep(float(os.environ.get(WEDGE_SECONDS_ENV, "5")))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(f"usage: python {sys.argv[0]} MODULE [ARGS...]")
    module, *args = sys.argv[1:]
    signal.signal(signal.SIGUSR1, _wedge)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
