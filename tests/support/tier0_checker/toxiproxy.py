"""Shopify's toxiproxy (a real TCP proxy, built by hack/install-tools.sh) driven over its HTTP API:
a proxy per link the checker may cut; `cut()` disables a proxy (every connection through it is
closed and new ones are refused) and `heal()` enables it again; toxics (latency, a blackout) make a
link slow or lossy without closing it."""

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tier0_dev.procs import Process, find_program, free_port, port_open


@dataclass
class Toxiproxy:
    api_port: int
    process: Process

    def _call(self, method: str, path: str, body: dict[str, object] | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def proxy(self, name: str, upstream_port: int) -> int:
        """A new proxy to 127.0.0.1:`upstream_port`; returns the port it listens on."""
        port = free_port()
        self._call(
            "POST",
            "/proxies",
            {"name": name, "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{upstream_port}", "enabled": True},
        )
        return port

    def cut(self, name: str) -> None:
        self._call("POST", f"/proxies/{name}", {"enabled": False})

    def heal(self, name: str) -> None:
        self._call("POST", f"/proxies/{name}", {"enabled": True})

    def add_toxic(
        self, proxy: str, name: str, kind: str, stream: str, attributes: dict[str, int], toxicity: float = 1.0
    ) -> None:
        """A toxic on one direction of `proxy` (`stream`: upstream = client -> server, downstream =
        server -> client): `latency` (latency, jitter in ms), `timeout` (timeout 0: data dropped while
        it is on), ... (toxiproxy's README lists them)."""
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        self._call("POST", f"/proxies/{proxy}/toxics", body)

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def toxics(self, proxy: str) -> list[str]:
        found = self._call("GET", f"/proxies/{proxy}/toxics")
        return [str(t["name"]) for t in found] if isinstance(found, list) else []


def start(state_dir: Path) -> Toxiproxy:
    binary = find_program("toxiproxy-server")  # raises with the install command when missing
    port = free_port()
    proc = Process("toxiproxy", [binary, "-host", "127.0.0.1", "-port", str(port)], state_dir / "toxiproxy.log")
    proc.start().wait_ready(lambda: port_open(port), timeout=15)
    return Toxiproxy(port, proc)
