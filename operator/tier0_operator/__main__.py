"""`python -m tier0_operator [--namespace NS ...]`: run the RegionPair operator.

Without --namespace it watches every namespace (only the chart's clusterWide opt-in grants that;
by default it is given, and granted, the namespaces in watchNamespaces). Settings
come from TIER0_OPERATOR_* variables (settings.py); the apiserver from KUBECONFIG or the
in-cluster service account.
"""

import argparse
import logging
import sys

import kopf

from tier0_operator import handlers  # noqa: F401  (registers the handlers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tier0_operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=[], help="watch only this namespace (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not args.verbose:
        # kopf logs every event handler call ("Handler 'wake' succeeded.") at INFO.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=list(args.namespace),
        liveness_endpoint=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
