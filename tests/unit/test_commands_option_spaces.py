"""`/letta connect agent-… agent-… pattern = supervisor` (spaces around `=`) is answered in one plain sentence, not
with an empty option name."""

import pytest

from bridge.slack.commands import Usage, parse


@pytest.mark.parametrize(
    "options", ["pattern = supervisor manager = agent-m", "pattern =supervisor", "pattern= supervisor"]
)
def test_spaces_around_an_options_equals_sign_are_named_plainly(options: str) -> None:
    got = parse(f"connect agent-a agent-b {options}")
    assert isinstance(got, Usage)
    assert got.problem == "Write each option with no spaces around `=`, like `pattern=supervisor`.", got.problem


def test_a_value_that_ends_in_an_equals_sign_is_still_a_value() -> None:
    got = parse('connect agent-a agent-b pattern=round_robin token="DONE=" max_turns=2')
    assert not isinstance(got, Usage), got
    assert got.pattern is not None and got.pattern.termination_token == "DONE="
