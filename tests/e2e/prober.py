"""A client of the global Service, run inside a pod of the cluster under test (it reaches the Service
through the cluster's DNS and kube-proxy, like any client there). Standard library only.

  probe URL INTERVAL DURATION   GET URL every INTERVAL s for DURATION s, a fresh connection each
                                time and one immediate retry on failure; one line per tick:
                                `<epoch s> <tries> <region or -> <error or ->`
  get URL...                    GET each URL once (retrying while it fails, up to 30 s): `<status> <url>`
"""

import http.client
import json
import sys
import time
import urllib.parse


def once(url: urllib.parse.SplitResult, timeout: float) -> tuple[str | None, str]:
    conn = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=timeout)
    try:
        conn.request("GET", url.path or "/")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return None, f"http-{resp.status}"
        return str(json.loads(body).get("region") or "?"), "-"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, type(exc).__name__
    finally:
        conn.close()


def probe(url: str, interval: float, duration: float) -> None:
    target = urllib.parse.urlsplit(url)
    print("ready", flush=True)
    start = time.time()
    tick = start
    lines = []
    while tick < start + duration:
        t = time.time()
        region, error = once(target, timeout=2.0)
        tries = 1
        if region is None:
            region, error = once(target, timeout=2.0)
            tries = 2
        lines.append(f"{t:.3f} {tries} {region or '-'} {error}")
        tick += interval
        delay = tick - time.time()
        if delay > 0:
            time.sleep(delay)
        elif delay < -interval:
            tick = time.time()  # behind: keep the pace instead of a burst
    print("\n".join(lines), flush=True)


def get(urls: list[str]) -> None:
    for url in urls:
        status: int | str = "-"
        parts = urllib.parse.urlsplit(url)
        for _ in range(60):
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=3)
            try:
                conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
                status = conn.getresponse().status
                if status < 500:
                    break
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
            finally:
                conn.close()
            time.sleep(0.5)
        print(f"{status} {url}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        probe(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    else:
        get(sys.argv[2:])
