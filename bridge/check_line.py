"""One line of `python -m bridge check` (and of init's and `workspaces`' checks)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One line of `check`. A warning passes (ok) but is shown as `warn`: something to act on soon."""

    ok: bool
    name: str
    detail: str
    warning: bool = False

    def line(self) -> str:
        mark = "warn" if self.warning else ("ok  " if self.ok else "FAIL")
        return f"{mark} {self.name}: {self.detail}"
