"""The checker's pure parts: what the writer was acknowledged, and the verdicts drawn from it.

Device messages carry a per-device sequence number; the store keeps each device's newest message
only, so an acknowledged message can be checked exactly while it is still its device's newest.
The writer therefore spreads its rate over a fleet large enough that a device publishes at most
once between two checks (`Ledger.take()` reports how many were not), and every check compares the
newest acknowledged sequence of each device with the one the active Redis holds.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ack:
    device: str
    seq: int
    published: float
    """Wall-clock time the message was sent (also its payload timestamp)."""


@dataclass
class Ledger:
    """Acknowledged messages since the last check, per device."""

    pending: dict[str, list[Ack]] = field(default_factory=dict)
    total: int = 0

    def record(self, ack: Ack) -> None:
        self.pending.setdefault(ack.device, []).append(ack)
        self.total += 1

    def take(self) -> dict[str, list[Ack]]:
        taken, self.pending = self.pending, {}
        return taken


@dataclass(frozen=True)
class Verdict:
    acked: int
    lost: int
    """Acknowledged messages newer than what the active Redis holds for their device."""
    unverifiable: int
    """Acknowledged messages hidden by a newer acknowledged one of the same device before the check
    (present or not, the store cannot tell): 0 when the fleet is large enough."""
    lost_examples: tuple[str, ...] = ()


def check(acks: dict[str, list[Ack]], stored: dict[str, int]) -> Verdict:
    """Compare acknowledged messages with the newest sequence per device the active Redis holds."""
    acked = lost = hidden = 0
    examples: list[str] = []
    for device, items in acks.items():
        have = stored.get(device, 0)
        acked += len(items)
        missing = [a for a in items if a.seq > have]
        lost += len(missing)
        hidden += len(items) - len(missing) - (1 if len(missing) < len(items) else 0)
        if missing and len(examples) < 5:
            examples.append(f"{device}#{missing[0].seq} (stored #{have})")
    return Verdict(acked, lost, hidden, tuple(examples))


@dataclass(frozen=True)
class RoleSample:
    """Both regions' Redis at one instant: role (None: unreachable) and the store's write counter."""

    at: float
    roles: dict[str, str | None]
    stored: dict[str, int | None]


def dual_primary_acks(samples: Sequence[RoleSample]) -> tuple[int, float]:
    """Intervals (count, total seconds) between consecutive samples in which both regions were
    writable primaries and both stored (and so acknowledged) new messages: a split brain that
    acknowledged on both sides."""
    count, seconds = 0, 0.0
    for a, b in zip(samples, samples[1:], strict=False):
        regions = list(a.roles)
        both_master = all(a.roles.get(r) == "master" and b.roles.get(r) == "master" for r in regions)
        if len(regions) < 2 or not both_master:
            continue
        grew = [
            a.stored.get(r) is not None and b.stored.get(r) is not None and b.stored[r] > a.stored[r]  # type: ignore[operator]
            for r in regions
        ]
        if all(grew):
            count += 1
            seconds += b.at - a.at
    return count, seconds


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile; nan for no values."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
