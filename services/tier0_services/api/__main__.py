"""`python -m tier0_services.api --port 8000`: serve the region API with uvicorn."""

import argparse

import uvicorn

from tier0_services.api.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="tier0 region API (settings from TIER0_* variables)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
