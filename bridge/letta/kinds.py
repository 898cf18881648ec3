"""The few kinds of Letta failure the bridge tells apart (LettaError.kind)."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    ROUTE_MISSING = "route_missing"
    INVALID = "invalid"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    QUOTA = "quota"  # 402: the account's plan limit or credits are used up (Letta Cloud)
    SERVER_ERROR = "server_error"
    RUN_FAILED = "run_failed"
    BAD_RESPONSE = "bad_response"
