from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.domain import Pattern
from bridge.slack.commands import Command, Usage, parse

G = "group-2a295a94-fb48-4739-8bc1-a06c1a881e2b"
A1 = "agent-7f3c2a10-1b2c-4d5e-8f90-a1b2c3d4e5f6"
A2 = "agent-00000000-0000-4000-8000-000000000000"


def test_connect_with_a_group_or_agents_in_order() -> None:
    assert parse(f"connect {G}") == Command("connect", (G,))
    assert parse(f"connect {A1} {A2}") == Command("connect", (A1, A2))
    assert parse(f"  CONNECT   `{A2}`, `{A1}` ") == Command("connect", (A2, A1))
    assert parse(f"connect &lt;{G}&gt;") == Command("connect", (G,))


def test_connect_alone_asks_for_the_menu() -> None:
    assert parse("connect") == Command("connect", ())


@pytest.mark.parametrize("text", ["status", "groups", "agents", "disconnect", "Status  "])
def test_read_and_remove_commands(text: str) -> None:
    command = parse(text)
    assert isinstance(command, Command) and command.action == text.strip().lower() and command.ids == ()


def test_only_connect_and_disconnect_change_anything() -> None:
    changes = {a: Command(a).changes for a in ("connect", "disconnect", "status", "groups", "agents")}  # type: ignore[arg-type]
    assert changes == {"connect": True, "disconnect": True, "status": False, "groups": False, "agents": False}


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "?"])
def test_help_and_empty_show_plain_usage(text: str) -> None:
    assert parse(text) == Usage()


def test_unknown_words_and_extra_arguments_say_what_was_wrong() -> None:
    unknown = parse("frobnicate now")
    assert isinstance(unknown, Usage) and "`frobnicate`" in unknown.problem
    extra = parse(f"status {G}")
    assert isinstance(extra, Usage) and "`status` takes nothing" in extra.problem


@settings(deadline=None)  # a loaded CI worker may stall one example past hypothesis's 200 ms
@given(st.text(max_size=200))
def test_any_text_parses_to_a_command_or_usage(text: str) -> None:
    assert isinstance(parse(text), Command | Usage)


def test_connect_takes_a_bridge_defined_groups_options_as_words() -> None:
    typed = parse(f"connect {A1} {A2} pattern=Supervisor manager=`{G}`")
    assert typed == Command("connect", (A1, A2), Pattern("supervisor", G))
    typed = parse(f"connect {A1} pattern=dynamic manager={A2} max_turns=4 token=DONE! ")
    assert typed == Command("connect", (A1,), Pattern("dynamic", A2, 4, "DONE!"))
    assert parse(f"connect {A1} {A2} pattern=round-robin max-turns=3") == Command(
        "connect", (A1, A2), Pattern("round_robin", max_turns=3)
    )
    # Unknown pattern names reach the shared rules (bridge.targets), which refuse them in words.
    assert parse(f"connect {A1} pattern=chaos") == Command("connect", (A1,), Pattern("chaos"))


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (f"connect {A1} colour=blue", "I don't know the option `colour`"),
        (f"connect {A1} pattern=dynamic pattern=supervisor", "`pattern` is given twice"),
        (f"connect {A1} token=A termination_token=B", "`termination_token` is given twice"),
        (f"connect {A1} manager=", "`manager=` needs a value"),
        (f"connect {A1} pattern=dynamic max_turns=lots", "`max_turns` is a number, not `lots`"),
        ("connect pattern=broadcast", "Give the agents too"),
    ],
)
def test_bad_options_say_what_was_wrong(text: str, said: str) -> None:
    usage = parse(text)
    assert isinstance(usage, Usage) and said in usage.problem, usage


@pytest.mark.parametrize(
    "text",
    [
        f"connect “{A1}” ‘{A2}’",  # a phone's smart quotes
        f"connect «{A1}», {A2}\u200b",  # guillemets, a zero-width space pasted with an id
        f"connect \u2060{A1}\ufeff {A2}",  # a word joiner and a byte-order mark
        f"connect {A1}; {A2}.",  # revAC: ids pasted into a sentence (before: "`agent-….` is not an agent id")
        f"connect `{A1}`, `{A2}`!",
    ],
)
def test_ids_come_clean_of_smart_quotes_and_invisible_characters(text: str) -> None:
    assert parse(text) == Command("connect", (A1, A2))


def test_a_termination_token_keeps_its_punctuation_and_a_question_mark_is_still_help() -> None:
    typed = parse(f"connect {A1} pattern=dynamic manager={A2} token=DONE!")
    assert typed == Command("connect", (A1,), Pattern("dynamic", A2, None, "DONE!"))
    assert parse("?") == Usage()


def test_an_option_ending_a_sentence_loses_its_full_stop_as_an_id_does() -> None:
    """revAD: `manager=agent-m.` was refused as "`agent-m.` is not an agent id", and a stop after a quoted token
    was read as one more id."""
    typed = parse(f"connect {A1} pattern=supervisor manager={A2}.")
    assert typed == Command("connect", (A1,), Pattern("supervisor", A2))
    assert parse(f"connect {A1} pattern=round_robin max_turns=3.") == Command(
        "connect", (A1,), Pattern("round_robin", None, 3)
    )
    assert parse(f'connect {A1} pattern=dynamic manager={A2} token="ALL DONE".') == Command(
        "connect", (A1,), Pattern("dynamic", A2, None, "ALL DONE")
    )


def test_option_values_come_clean_of_smart_quotes() -> None:
    """A phone turns "DONE" into “DONE”: kept as typed, the manager saying DONE would never end the turn."""
    typed = parse(f"connect {A1} pattern=dynamic manager=“{A2}” token=“DONE”")
    assert typed == Command("connect", (A1,), Pattern("dynamic", A2, None, "DONE"))


@pytest.mark.parametrize("quoted", ['"ALL DONE"', "“ALL  DONE”", "'ALL DONE'", "‘ALL DONE’"])
def test_a_quoted_option_value_keeps_its_spaces(quoted: str) -> None:
    """Before, `token="ALL DONE"` was split into `token=ALL` and an id `DONE`, refused as no agent id (the menu
    and the CLI's --termination-token take a token of several words)."""
    typed = parse(f"connect {A1} pattern=dynamic manager={A2} token={quoted}")
    assert typed == Command("connect", (A1,), Pattern("dynamic", A2, None, "ALL DONE"))


@pytest.mark.parametrize("turns", ["²", "½", "3.0"])
def test_max_turns_in_other_digits_is_usage_not_a_crash(turns: str) -> None:
    """`str.isdigit` is true for ² (which `int` refuses): the command crashed before its ack."""
    usage = parse(f"connect {A1} pattern=dynamic manager={A2} max_turns={turns}")
    assert isinstance(usage, Usage) and "`max_turns` is a number" in usage.problem, usage


@pytest.mark.parametrize(
    "text", ["frob&lt;!here&gt;", f"connect {A1} x&lt;!channel&gt;=1", f"connect {A1} max_turns=a&lt;!here&gt;b"]
)
def test_what_was_typed_is_said_back_as_text_never_as_a_mention(text: str) -> None:
    """Slack sends `<` as `&lt;`; said back unescaped, `<!here>` in a usage answer was a live mention."""
    usage = parse(text)
    assert isinstance(usage, Usage) and "<" not in usage.problem and "&lt;" in usage.problem, usage


def test_a_long_word_is_said_back_cut_short() -> None:
    usage = parse("x" * 3000)
    assert isinstance(usage, Usage) and len(usage.problem) < 80, usage


@pytest.mark.parametrize("typed", ["disconnect ?", "unbind ?", "stop ?", "disconnect .", "disconnect !"])
def test_a_question_mark_after_a_command_is_no_go_ahead(typed: str) -> None:
    """revAF: `disconnect ?` (what does it do?) disconnected the channel once a lone `?` was dropped as a
    sentence's end."""
    assert isinstance(parse(typed), Usage), parse(typed)


def test_a_hyphenated_termination_token_keeps_its_punctuation() -> None:
    typed = parse(f"connect {A1} pattern=dynamic manager={A2} termination-token=DONE!")
    assert isinstance(typed, Command) and typed.pattern is not None
    assert typed.pattern.termination_token == "DONE!"
