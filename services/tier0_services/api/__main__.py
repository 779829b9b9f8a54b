"""`python -m tier0_services.api --port 8000`: serve the region API with uvicorn."""

import argparse
import logging

import uvicorn

from tier0_services.api.app import create_app
from tier0_services.api.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(description="tier0 region API (settings from TIER0_* variables)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    settings = get_settings()
    # Without a handler on the root logger Python prints only warnings, and the API's INFO lines
    # (what start-up loaded, which AI providers run) were lost; uvicorn configures only its own.
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )


if __name__ == "__main__":
    main()
