"""A client of the global Service, run inside a pod of the cluster under test (it reaches the Service
through the cluster's DNS and kube-proxy, like any client there). Standard library only.

  probe URL INTERVAL DURATION   GET URL every INTERVAL s for DURATION s, a fresh connection each
                                time and one immediate retry on failure; one line per tick:
                                `<epoch s> <tries> <region or -> <error or ->`
  get URL...                    GET each URL once (retrying while it fails, up to 30 s): `<status> <url>`
  fresh SITE_URL ACTIVITY_URL INTERVAL DURATION
                                GET both every INTERVAL s for DURATION s (the telemetry and user
                                activity a reader sees): `<epoch s> <site last_seen or -> <newest
                                activity timestamp_utc or ->`, times as epoch seconds
  latency INTERVAL DURATION URL...
                                GET the URLs in turn, one every INTERVAL s for DURATION s, each over
                                a kept-alive connection (the endpoint's time, not the TCP setup's):
                                `<epoch s> <url index> <seconds> <status or error>`
"""

import http.client
import json
import sys
import time
import urllib.parse
from datetime import datetime


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


def read_json(url: urllib.parse.SplitResult, timeout: float) -> object:
    conn = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=timeout)
    try:
        conn.request("GET", url.path + (f"?{url.query}" if url.query else ""))
        resp = conn.getresponse()
        body = resp.read()
        return json.loads(body) if resp.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def epoch(value: object) -> str:
    """An ISO 8601 time from an answer as epoch seconds, or `-`."""
    if not isinstance(value, str):
        return "-"
    try:
        return f"{datetime.fromisoformat(value).timestamp():.3f}"
    except ValueError:
        return "-"


def fresh(site_url: str, activity_url: str, interval: float, duration: float) -> None:
    site, activity = urllib.parse.urlsplit(site_url), urllib.parse.urlsplit(activity_url)
    print("ready", flush=True)
    start = tick = time.time()
    lines = []
    while tick < start + duration:
        t = time.time()
        metrics, users = read_json(site, 1.0), read_json(activity, 1.0)
        seen = metrics.get("last_seen") if isinstance(metrics, dict) else None
        latest = users.get("latest") if isinstance(users, dict) else None
        stamp = latest.get("timestamp_utc") if isinstance(latest, dict) else None
        lines.append(f"{t:.3f} {epoch(seen)} {epoch(stamp)}")
        tick += interval
        delay = tick - time.time()
        if delay > 0:
            time.sleep(delay)
        elif delay < -interval:
            tick = time.time()
    print("\n".join(lines), flush=True)


def latency(interval: float, duration: float, urls: list[str]) -> None:
    targets = [urllib.parse.urlsplit(u) for u in urls]
    conns: dict[int, http.client.HTTPConnection] = {}
    print("ready", flush=True)
    start = tick = time.time()
    lines, n = [], 0
    while tick < start + duration:
        i = n % len(targets)
        n += 1
        url = targets[i]
        t = time.time()
        try:
            conn = conns.get(i) or http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=5)
            conns[i] = conn
            conn.request("GET", url.path + (f"?{url.query}" if url.query else ""))
            resp = conn.getresponse()
            resp.read()
            status = str(resp.status)
        except (OSError, http.client.HTTPException) as exc:
            broken = conns.pop(i, None)
            if broken is not None:
                broken.close()  # a fresh connection next time
            status = type(exc).__name__
        lines.append(f"{t:.3f} {i} {time.time() - t:.6f} {status}")
        tick += interval
        delay = tick - time.time()
        if delay > 0:
            time.sleep(delay)
        elif delay < -interval:
            tick = time.time()
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
    elif sys.argv[1] == "fresh":
        fresh(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    elif sys.argv[1] == "latency":
        latency(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
    else:
        get(sys.argv[2:])
