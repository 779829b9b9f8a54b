"""`python -m tier0_services.access {redis,mqtt,rabbitmq} --secrets DIR --out DIR`: render a server's
users and permissions from its mounted Secret (the chart's init containers run this).

Prints the files written, never their content; a missing or malformed key fails with its file named.
"""

import argparse
import sys
from pathlib import Path

from tier0_contract import credentials
from tier0_services.access import mqtt, rabbitmq, redis, secretfiles


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tier0_services.access", description=__doc__.split("\n\n")[0])
    p.add_argument("server", choices=["redis", "mqtt", "rabbitmq"])
    p.add_argument("--secrets", type=Path, required=True, help="the mounted Secret (one file per key)")
    p.add_argument("--out", type=Path, required=True, help="where the server reads its files (memory-backed)")
    p.add_argument(
        "--exporter-addr",
        default=None,
        help="redis: also write redis_exporter's password file for this address (redis://127.0.0.1:6379)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.server == "redis":
            written = redis.write(args.secrets, args.out, exporter_addr=args.exporter_addr)
        elif args.server == "mqtt":
            written = mqtt.write(args.secrets, args.out)
        else:
            written = rabbitmq.write(args.secrets, args.out)
    except (credentials.CredentialError, secretfiles.SecretFormatError, OSError) as exc:
        print(f"python -m tier0_services.access {args.server}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
