"""A pattern's own rules (`bridge.targets.check_pattern`): said before Letta is asked, with what was typed said back
as typed (in code in Slack, so a sentence's capital does not change it) and cut short."""

from __future__ import annotations

import pytest

from bridge.domain import Pattern
from bridge.targets import TargetError, check_pattern

A1 = "agent-1d31f591-6414-4aa7-9fb2-3d0e7082a41e"


def test_an_unknown_pattern_is_said_as_typed_and_cut_short() -> None:
    with pytest.raises(TargetError) as caught:
        check_pattern([A1], Pattern("robin" + "x" * 3000), app_server=False)
    said = str(caught.value)
    assert said.startswith("`robin") and "…` is not a pattern: use one of" in said and len(said) < 200, said
    assert caught.value.usage


def test_the_rules_need_no_lookup_and_leave_a_group_s_own_pattern_to_its_record() -> None:
    with pytest.raises(TargetError, match="needs a manager"):
        check_pattern([A1], Pattern("supervisor"), app_server=False)
    check_pattern(["group-3a30ad74-0ed7-464d-b24f-605684f0d67f"], Pattern("supervisor"), app_server=False)
