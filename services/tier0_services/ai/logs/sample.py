"""A seeded generator of realistic access logs, with answers known by construction.

`generate(n, seed)` returns entries spread over a few days of 2024 from a pool of device and user
IPs hitting the region API's routes; a small set of "noisy" devices produce most of the 400s (the
first of them the most), so "which IP generates the most 400 errors" has one right answer, which
`expected_top_ip(400)` reports. The sample log is generated, never committed (`make ai-samples`).
"""

import random
from collections import Counter
from dataclasses import dataclass

from tier0_services.ai.logs.parse import LogEntry, format_combined

ROUTES = [
    ("GET", "/api/status"),
    ("GET", "/api/devices/active"),
    ("GET", "/api/devices/alerts"),
    ("GET", "/api/devices/metrics/site/WY-ALPHA"),
    ("GET", "/api/devices/metrics/site/TX-BRAVO"),
    ("GET", "/api/users/active"),
    ("GET", "/api/users/activity"),
    ("POST", "/api/images/search"),
    ("GET", "/api/images/list"),
    ("POST", "/api/diagnostics/query"),
    ("GET", "/health"),
    ("POST", "/api/telemetry/ingest"),
]
START = 1_717_200_000.0  # 2024-06-01T00:00:00Z


@dataclass(frozen=True)
class SampleLog:
    entries: list[LogEntry]
    noisy_ips: list[str]

    def count(self, status: int) -> Counter[str]:
        return Counter(e.ip for e in self.entries if e.status == status)

    def expected_top_ip(self, status: int) -> str:
        counts = self.count(status)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    def combined_lines(self) -> list[str]:
        return [format_combined(e) for e in self.entries]


def generate(n: int = 12_000, seed: int = 7) -> SampleLog:
    rng = random.Random(seed)
    devices = [f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(400)]
    users = [f"192.168.{rng.randint(0, 20)}.{rng.randint(1, 254)}" for _ in range(60)]
    noisy = devices[:5]
    entries: list[LogEntry] = []
    ts = START
    for _ in range(n):
        ts += rng.expovariate(1 / 30.0)  # one request every ~30 s: 12,000 lines span ~4 days
        roll = rng.random()
        if roll < 0.06:
            # Noisy devices send malformed telemetry: weights 8:4:2:1:1 make noisy[0] the top 400.
            ip = rng.choices(noisy, weights=[8, 4, 2, 1, 1])[0]
            method, path, status = "POST", "/api/telemetry/ingest", 400
        else:
            ip = rng.choice(devices) if rng.random() < 0.7 else rng.choice(users)
            method, path = rng.choice(ROUTES)
            status = rng.choices(
                [200, 201, 204, 304, 400, 401, 403, 404, 429, 500, 503],
                weights=[800, 40, 20, 30, 8, 10, 6, 30, 10, 6, 4],
            )[0]
        latency = float(max(1, int(rng.lognormvariate(3.0, 0.8)) + (400 if status >= 500 else 0)))
        entries.append(LogEntry(ip, round(ts, 3), method, path, status, latency, rng.randint(0, 4000)))
    return SampleLog(entries, noisy)


def write(path: str, n: int = 12_000, seed: int = 7) -> SampleLog:
    sample = generate(n, seed)
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(sample.combined_lines()) + "\n")
    return sample
