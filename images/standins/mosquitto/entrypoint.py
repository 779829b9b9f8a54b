"""EMQX stand-in: runs mosquitto with the chart's EMQX_* settings and serves /status for the probes."""

import http.server
import os
import socket
import subprocess
import sys
import threading


def port_of(bind: str, default: int) -> int:
    return int(bind.rsplit(":", 1)[-1]) if bind else default


MQTT_PORT = port_of(os.environ.get("EMQX_LISTENERS__TCP__DEFAULT__BIND", ""), 1883)
STATUS_PORT = port_of(os.environ.get("EMQX_DASHBOARD__LISTENERS__HTTP__BIND", ""), 18083)
QUEUE = int(os.environ.get("EMQX_MQTT__MAX_MQUEUE_LEN", "1000000"))
CONF = "/opt/emqx/etc/mosquitto.conf"


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", MQTT_PORT), timeout=1):
            return True
    except OSError:
        return False


class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.startswith("/status") and broker_up()
        body = b"Node emqx@127.0.0.1 is started\nemqx is running\n" if ok else b"not running\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    with open(CONF, "w") as f:
        f.write(
            f"listener {MQTT_PORT} 0.0.0.0\nallow_anonymous true\n"
            "persistence true\npersistence_location /opt/emqx/data/\nautosave_interval 5\n"
            f"max_queued_messages {QUEUE}\nmax_inflight_messages 1000\n"
            "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n"
        )
    broker = subprocess.Popen(["mosquitto", "-c", CONF])
    server = http.server.ThreadingHTTPServer(("0.0.0.0", STATUS_PORT), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return broker.wait()


if __name__ == "__main__":
    sys.exit(main())
