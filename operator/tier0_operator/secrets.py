"""Generated Secrets, created once by the operator instead of by the chart.

A chart that renders a random password regenerates it on every `helm template` (what Argo CD and
Flux run), and `lookup` returns nothing there. So the tier0 chart renders a generated Secret with
no data and the annotation `tier0.dev/generate: password[,token...]`, and names it in its
RegionPair's `spec.generatedSecrets`; the operator (the Lease holder) reads each named Secret by
name and fills each listed key that is missing, once, with a random value. The chart never owns the
data, so a sync changes nothing, and a key that has a value is never replaced.

Why by name: a watch of annotated Secrets is still a list/watch of every Secret at the API (the
filter runs in the client), so every Secret of a namespace would stream into the operator's pod;
RBAC's `resourceNames` cannot narrow list/watch. Reading the named Secrets needs only get/patch.
"""

import base64
import secrets
from typing import Any

GENERATE_ANNOTATION = "tier0.dev/generate"
VALUE_BYTES = 24  # 32 URL-safe characters
CHECK_SECONDS = 10.0  # how often named Secrets are read while one is missing or unfilled
RECHECK_SECONDS = 60.0  # ... and once all are filled (a GitOps tool may re-create one empty)


def keys_to_generate(annotations: dict[str, str] | None, data: dict[str, str] | frozenset[str] | None) -> list[str]:
    """The listed keys the Secret does not have yet (pure)."""
    wanted = [k.strip() for k in (annotations or {}).get(GENERATE_ANNOTATION, "").split(",") if k.strip()]
    return [k for k in wanted if k not in (data or {})]


def build_patch(keys: list[str], resource_version: str) -> dict[str, Any]:
    """Merge patch adding random values for `keys`, applied only if the Secret is still the version
    we read (two replicas, or a person, racing: one wins, the other re-reads)."""
    data = {k: base64.b64encode(secrets.token_urlsafe(VALUE_BYTES).encode()).decode() for k in keys}
    return {"metadata": {"resourceVersion": resource_version}, "data": data}


def next_check(all_filled: bool) -> float:
    """Seconds until the named Secrets are read again (pure)."""
    return RECHECK_SECONDS if all_filled else CHECK_SECONDS
