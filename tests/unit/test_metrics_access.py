"""bridge/metrics_access.py metrics_refusal: who may read GET /metrics."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from pydantic import SecretStr

from bridge.metrics_access import metrics_refusal

TOKEN = SecretStr("metrics-token-42")


@pytest.mark.parametrize("header", ["Bearer metrics-token-42", "bearer metrics-token-42", "BEARER  metrics-token-42"])
def test_the_token_is_taken_whatever_the_scheme_s_case(header: str) -> None:
    """The scheme's name is case-insensitive (RFC 9110); found by a review (revAW): `bearer …` was refused."""
    request = make_mocked_request("GET", "/metrics", headers={"Authorization": header})
    assert metrics_refusal(request, TOKEN, "203.0.113.9") is None


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer wrong", "Basic metrics-token-42", "metrics-token-42"])
def test_anything_else_is_refused_401(header: str) -> None:
    request = make_mocked_request("GET", "/metrics", headers={"Authorization": header} if header else {})
    refusal = metrics_refusal(request, TOKEN, "203.0.113.9")
    assert refusal is not None and refusal.status == 401


def test_without_a_token_only_this_host_s_own_clients_may_read_it() -> None:
    request = make_mocked_request("GET", "/metrics")
    assert metrics_refusal(request, None, "127.0.0.1") is None
    refused = metrics_refusal(request, None, "203.0.113.9")
    assert refused is not None and refused.status == 403
