"""redis_exporter stand-in: Debian's prometheus-redis-exporter 1.45 behind a proxy that serves only
its metrics and health paths.

1.45 has no `--disable-scrape-endpoint` (upstream v1.83): its `/scrape?target=<address>` connects
to any address a caller names with the exporter's Redis credentials (upstream issue 1104). So the
exporter listens on loopback only and this process answers on the chart's address, forwarding the
telemetry path and /health and refusing everything else (404). Configuration is the chart's: the
exporter reads REDIS_ADDR, REDIS_USER, REDIS_PASSWORD_FILE... from the environment as ever;
REDIS_EXPORTER_WEB_LISTEN_ADDRESS is where this proxy listens, and
REDIS_EXPORTER_DISABLE_SCRAPE_ENDPOINT (upstream's switch, unknown to 1.45) is what it enforces.
"""

import http.server
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

EXPORTER = os.environ.get("TIER0_STANDIN_EXPORTER", "/usr/bin/prometheus-redis-exporter")
LISTEN = os.environ.get("REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "0.0.0.0:9121")
TELEMETRY = os.environ.get("REDIS_EXPORTER_WEB_TELEMETRY_PATH", "/metrics")
INTERNAL = os.environ.get("TIER0_STANDIN_INTERNAL_ADDRESS", "127.0.0.1:19121")
SERVED = (TELEMETRY, "/health")


def served(path: str) -> bool:
    """Whether a request path is forwarded (the telemetry path or /health, any query string)."""
    return path.split("?", 1)[0] in SERVED


class Proxy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if not served(self.path):
            self._answer(404, b"not served here: only the metrics and /health (no /scrape)\n", "text/plain")
            return
        try:
            with urllib.request.urlopen(f"http://{INTERNAL}{self.path}", timeout=30) as up:
                self._answer(up.status, up.read(), up.headers.get("Content-Type", "text/plain"))
        except urllib.error.HTTPError as exc:
            self._answer(exc.code, exc.read(), "text/plain")
        except OSError:
            self._answer(503, b"the exporter is not answering\n", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    env = {**os.environ, "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": INTERNAL}
    exporter = subprocess.Popen([EXPORTER, *sys.argv[1:]], env=env)
    host, _, port = LISTEN.rpartition(":")
    server = http.server.ThreadingHTTPServer((host or "0.0.0.0", int(port)), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: exporter.terminate())
    return exporter.wait()


if __name__ == "__main__":
    sys.exit(main())
