"""The bodies of tier0's writes to Kubernetes objects (pure), and how each is sent.

A dict is a JSON merge patch (null deletes a field); a list is a JSON patch, whose `test` ops make a
write a compare-and-set (the operator's Service selector flip and status epoch). The product writes
a RegionPair's spec only through the intents below: a region asked for, paused, an annotation.
"""

from typing import Any

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

Patch = dict[str, Any] | list[dict[str, Any]]


def content_type(patch: Patch) -> str:
    return JSON_PATCH if isinstance(patch, list) else MERGE_PATCH


def with_resource_version(patch: dict[str, Any], resource_version: str | None) -> dict[str, Any]:
    """`patch`, applied by the apiserver only if the object is unchanged since it was read at
    `resource_version` (409 otherwise), so a decision taken on a stale view is never written."""
    if resource_version is None:
        return patch
    return {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": resource_version}}


def active_region(target: str, resource_version: str | None = None) -> dict[str, Any]:
    """Sets `spec.activeRegion` (a planned switchover for the operator)."""
    return with_resource_version({"spec": {"activeRegion": target}}, resource_version)


def paused(value: bool) -> dict[str, Any]:
    """Sets `spec.paused` (the operator changes nothing while it is true)."""
    return {"spec": {"paused": value}}


def annotations(values: dict[str, str | None]) -> dict[str, Any]:
    """Sets (or, with None, removes) annotations."""
    return {"metadata": {"annotations": dict(values)}}
