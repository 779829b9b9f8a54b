"""The one error family of tier0's Kubernetes calls, split by what the caller can do about it.

The apiserver cannot be reached, answers 5xx or 429, or refuses our credentials
(`KubeUnavailableError`: try later, or fix the RBAC); the object (or its resource type: the CRD is
not installed) does not exist (`KubeNotFoundError`); someone changed it meanwhile
(`KubeConflictError`: re-read and decide afresh); the request itself was rejected
(`KubeRequestError`, e.g. a validation rule); the object does not parse as the contract's model
(`KubeObjectError`); no usable configuration (`KubeConfigError`). Every one carries the HTTP
`status` (0: no answer) and `conflict`, the compare-and-set test of the callers.
"""

import json

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
"""What the library raises when no answer came (wrapped into `KubeUnavailableError` by the client)."""


class KubeError(Exception):
    """Any failure talking to the Kubernetes API."""

    def __init__(self, message: str, status: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status of the answer (0: none came)."""
        self.body = body

    @property
    def conflict(self) -> bool:
        """The object changed since it was read: 409, or 422 from a failed JSON-patch `test` (the
        compare-and-set of the operator's status and Service patches)."""
        return isinstance(self, KubeConflictError)


class KubeConfigError(KubeError):
    """No usable configuration: not in a cluster and no (valid) kubeconfig."""


class KubeUnavailableError(KubeError):
    """The apiserver cannot be reached, answers 5xx or 429, or refuses our credentials."""


class KubeNotFoundError(KubeError):
    """The object (or its resource type: the CRD is not installed) does not exist."""


class KubeConflictError(KubeError):
    """The object changed since we read it: a resourceVersion precondition or a JSON-patch `test`."""


class KubeRequestError(KubeError):
    """The apiserver rejected the request (4xx other than 404/409), e.g. a validation rule."""


class KubeObjectError(KubeError):
    """The apiserver's object does not parse as the contract's model of it."""


def from_status(what: str, status: int, body: str, json_patch: bool = False) -> KubeError:
    """The error for an apiserver answer to a request about `what` (the Status object's message
    when the body is one); `json_patch`: the request was a JSON patch, whose failed `test` op the
    apiserver answers with 422."""
    try:
        message = str(json.loads(body).get("message") or body)
    except (ValueError, AttributeError):
        message = body[:500]
    if status == 404:
        # A custom resource (named `plural.group`) may be missing because its CRD is.
        hint = " (is the CRD installed and the object created?)" if "." in what.split(" ")[0] else ""
        return KubeNotFoundError(f"{what} not found{hint}", status, body)
    if status == 409 or (json_patch and status == 422 and "test" in body.lower()):
        return KubeConflictError(f"{what} changed meanwhile: {message}", status, body)
    if status in (401, 403):
        return KubeUnavailableError(
            f"{what}: kubernetes API refused our credentials ({status}): {message}", status, body
        )
    if status >= 500 or status == 429 or status == 0:
        return KubeUnavailableError(f"{what}: kubernetes API answered {status}: {message}", status, body)
    return KubeRequestError(f"{what}: kubernetes API answered {status}: {message}", status, body)


def from_api_exception(what: str, exc: ApiException, json_patch: bool = False) -> KubeError:
    body = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body or exc.reason or "")
    return from_status(what, int(exc.status or 0), body, json_patch)


def unreachable(what: str, exc: BaseException) -> KubeUnavailableError:
    return KubeUnavailableError(f"{what}: kubernetes API unreachable: {exc!r}")
