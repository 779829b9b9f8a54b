"""`python -m tier0_services.ai ...`: the AI features from the command line.

    logs generate --out sample.log [--entries 12000 --seed 7]   write the seeded sample access log
    logs import FILE...                                         aggregate log files into Redis
    images samples                                              embed and store the sample catalog
    docs add PATH...                                            add notes (files or folders)
    docs samples                                                add the labelled sample corpus
    ask "QUESTION"                                              answer as POST /api/diagnostics/query

Redis comes from `--redis-url` or `TIER0_REDIS_URL` (user and password file: `--redis-username`,
`--redis-password-file` or `TIER0_REDIS_USERNAME`, `TIER0_REDIS_PASSWORD_FILE`); providers from
`COHERE_API_KEY`/`TIER0_AI_*`.
"""

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from redis.asyncio import Redis

from tier0_contract import credentials
from tier0_services import connect
from tier0_services.ai import runtime
from tier0_services.ai.logs import sample
from tier0_services.ai.rag import corpus
from tier0_services.ai.settings import AISettings
from tier0_services.ai.vector_index import CatalogFullError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tier0_services.ai", description=__doc__.split("\n\n")[0])
    p.add_argument("--redis-url", default=os.environ.get("TIER0_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--redis-username", default=os.environ.get("TIER0_REDIS_USERNAME") or None)
    p.add_argument("--redis-password-file", default=os.environ.get("TIER0_REDIS_PASSWORD_FILE") or None)
    sub = p.add_subparsers(dest="group", required=True)
    logs = sub.add_parser("logs").add_subparsers(dest="command", required=True)
    gen = logs.add_parser("generate", help="write the seeded sample access log (combined format)")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--entries", type=int, default=12_000)
    gen.add_argument("--seed", type=int, default=7)
    imp = logs.add_parser("import", help="aggregate combined-format / JSON-lines files into Redis")
    imp.add_argument("files", type=Path, nargs="+")
    images = sub.add_parser("images").add_subparsers(dest="command", required=True)
    images.add_parser("samples", help="embed and store the labelled sample catalog")
    docs = sub.add_parser("docs").add_subparsers(dest="command", required=True)
    add = docs.add_parser("add", help="add .md/.txt notes (files or folders) to the corpus")
    add.add_argument("paths", type=Path, nargs="+")
    docs.add_parser("samples", help="add the labelled sample corpus")
    ask = sub.add_parser("ask", help="answer a question like POST /api/diagnostics/query")
    ask.add_argument("question")
    return p


async def run(args: argparse.Namespace) -> int:
    if args.group == "logs" and args.command == "generate":
        log = sample.write(str(args.out), args.entries, args.seed)
        print(json.dumps({"out": str(args.out), "entries": len(log.entries), "top_400_ip": log.expected_top_ip(400)}))
        return 0
    auth = connect.RedisAuth(args.redis_username, credentials.read_optional(args.redis_password_file))
    redis = Redis.from_url(args.redis_url, **auth.kwargs(args.redis_url))
    ai = await runtime.start(redis, AISettings(record_access_log=False))
    try:
        if args.group == "logs":
            for path in args.files:
                with path.open(encoding="utf-8", errors="replace") as lines:
                    result = await ai.logs.import_lines(lines)
                print(json.dumps({"file": str(path), **asdict(result)}))
        elif args.group == "images":
            count, mode = await ai.images.ingest_samples()
            print(json.dumps({"ingested": count, "mode": mode, "model": ai.providers.embedder.name}))
        elif args.group == "docs":
            if args.command == "samples":
                docs = corpus.sample_documents()
            else:
                docs = []
                for path in args.paths:
                    if path.is_dir():
                        docs += corpus.folder_documents(path)
                    else:
                        docs.append(corpus.parse_note(path.stem, path.read_text(encoding="utf-8"), f"file:{path.name}"))
            for doc in docs:
                passages, changed = await ai.corpus.add(doc)
                print(json.dumps({"doc_id": doc.doc_id, "passages": passages, "changed": changed}))
        else:
            answer = await ai.diagnostics.query(args.question)
            print(json.dumps(asdict(answer), indent=2, default=str))
    except CatalogFullError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    finally:
        await ai.stop()
        await redis.aclose()
    return 0


def main() -> None:
    sys.exit(asyncio.run(run(parser().parse_args())))


if __name__ == "__main__":
    main()
