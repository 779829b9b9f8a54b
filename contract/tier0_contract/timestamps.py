"""The one rule for message timestamps, shared by the device ingest and the activity consumer.

A message's own timestamp orders it against what is stored (a redelivered or older message never
replaces a newer one). That makes a sender's clock dangerous in both directions:

- **Future-dated** (a device or web node whose clock runs ahead): stored as-is it would stay
  "newest" and make every later, correctly dated message look stale (it froze the activity path
  for good), and keep a device "active". So a time beyond `now + FUTURE_SKEW_SECONDS` is clamped
  to the receive time and counted `future_clamped`; a time ahead by less than the allowance is
  clamped too, silently (ordinary clock jitter between hosts).
- **Far past** (a message replayed from an old backlog, a device with a reset clock): older than
  `MAX_AGE_SECONDS` it is rejected as `too_old` (dead-lettered with that reason, counted). The
  default is the activity path's deduplication window (`keys.ACTIVITY_SEEN_TTL_SECONDS`): a
  message older than that could no longer be recognised as a redelivery.

`now` is the receiver's clock at receipt; the rule is pure.
"""

from dataclasses import dataclass
from typing import Literal

FUTURE_SKEW_SECONDS = 5.0
"""How far ahead of the receiver a timestamp may be before it counts as `future_clamped`."""

MAX_AGE_SECONDS = 24 * 3600.0
"""Older than this (relative to the receiver) a message is rejected as `too_old`."""

Outcome = Literal["ok", "future_clamped", "too_old"]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    ts: float
    """The timestamp to store and order by (epoch s): the message's own, or `now` when clamped."""

    @property
    def rejected(self) -> bool:
        return self.outcome == "too_old"

    def reason(self, max_age: float = MAX_AGE_SECONDS) -> str:
        """Dead-letter reason of a rejected message."""
        return f"timestamp: older than {max_age:.0f} s (too_old)"


def clamp_or_reject(
    ts: float, now: float, *, skew: float = FUTURE_SKEW_SECONDS, max_age: float = MAX_AGE_SECONDS
) -> Verdict:
    """Judge a message time `ts` received at `now` (both epoch s)."""
    if ts > now:
        return Verdict("future_clamped" if ts > now + skew else "ok", now)
    if now - ts > max_age:
        return Verdict("too_old", ts)
    return Verdict("ok", ts)
