"""Generated Secrets (GitOps-safe charts): which keys the operator fills, and that it never replaces one."""

import base64

import pytest

from tier0_operator import secrets

pytestmark = pytest.mark.unit


def test_only_listed_missing_keys_are_generated() -> None:
    ann = {secrets.GENERATE_ANNOTATION: "password, token"}
    assert secrets.keys_to_generate(ann, None) == ["password", "token"]
    assert secrets.keys_to_generate(ann, {"password": "eA=="}) == ["token"]
    assert secrets.keys_to_generate(ann, {"password": "eA==", "token": "eQ=="}) == []
    assert secrets.keys_to_generate({}, None) == []


def test_the_patch_is_conditional_and_random() -> None:
    a, b = secrets.build_patch(["password"], "41"), secrets.build_patch(["password"], "41")
    assert a["metadata"] == {"resourceVersion": "41"}
    value = base64.b64decode(a["data"]["password"]).decode()
    assert len(value) == 32 and a["data"] != b["data"]


def test_keys_are_compared_with_the_keys_read_by_name() -> None:
    """The operator reads only which keys a Secret has (`SecretState.keys`), never their values."""
    ann = {secrets.GENERATE_ANNOTATION: "password"}
    assert secrets.keys_to_generate(ann, frozenset({"password"})) == []
    assert secrets.keys_to_generate(ann, frozenset()) == ["password"]


def test_named_secrets_are_read_often_until_filled_then_rarely() -> None:
    assert secrets.next_check(all_filled=False) == secrets.CHECK_SECONDS < secrets.next_check(all_filled=True)
