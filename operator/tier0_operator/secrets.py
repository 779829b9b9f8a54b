"""Generated Secrets, created once by the operator instead of by the chart.

A chart that renders a random password regenerates it on every `helm template` (what Argo CD and
Flux run), and `lookup` returns nothing there. So the tier0 chart renders a generated Secret with
no data and the annotation `tier0.dev/generate: password[,token...]`; the operator (the Lease holder)
fills each listed key that is missing, once, with a random value. The chart never owns the data,
so a sync changes nothing, and a key that has a value is never replaced.
"""

import base64
import secrets
from typing import Any

GENERATE_ANNOTATION = "tier0.dev/generate"
VALUE_BYTES = 24  # 32 URL-safe characters


def keys_to_generate(annotations: dict[str, str] | None, data: dict[str, str] | None) -> list[str]:
    """The listed keys the Secret does not have yet (pure)."""
    wanted = [k.strip() for k in (annotations or {}).get(GENERATE_ANNOTATION, "").split(",") if k.strip()]
    return [k for k in wanted if k not in (data or {})]


def build_patch(keys: list[str], resource_version: str) -> dict[str, Any]:
    """Merge patch adding random values for `keys`, applied only if the Secret is still the version
    we read (two replicas, or a person, racing: one wins, the other re-reads)."""
    data = {k: base64.b64encode(secrets.token_urlsafe(VALUE_BYTES).encode()).decode() for k in keys}
    return {"metadata": {"resourceVersion": resource_version}, "data": data}
