"""Names listed as people write them, shared by every sentence the bridge says about several things."""

from __future__ import annotations

from collections.abc import Sequence


def and_list(names: Sequence[str]) -> str:
    """`bob`, `bob and carol`, `bob, carol and dave`."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
