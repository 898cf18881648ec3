"""docs/mentions.md shows, under a reply, "one line ... per tool call with its outcome (🔧 `web_search(...) →
success`), each clipped to 300 characters". A call whose arguments are long (a search query, a code snippet, a
memory edit) was clipped from its end, so its outcome ("→ error") was cut off: the reader could not tell that the
call failed."""

from __future__ import annotations

from bridge.letta.models import ToolCallMessage, ToolReturnMessage
from bridge.letta.notes import NoteTaker
from bridge.slack.render import NOTE_CHARS, notes_blocks


def _line(kind: str, text: str) -> str:
    line: str = notes_blocks([(kind, text)])[0]["elements"][0]["text"]
    return line


def test_a_tool_call_with_long_arguments_still_shows_its_outcome() -> None:
    code = "import pandas as pd\\n" + "df = df.groupby('region').agg({'sales': 'sum'})\\n" * 8
    taker = NoteTaker()
    taker.add(
        ToolCallMessage.model_validate(
            {
                "id": "m1",
                "message_type": "tool_call_message",
                "tool_call": {"name": "run_code", "arguments": f'{{"code": "{code}"}}', "tool_call_id": "c1"},
            }
        ),
        "analyst",
    )
    taker.add(
        ToolReturnMessage.model_validate(
            {
                "id": "m2",
                "message_type": "tool_return_message",
                "tool_return": "Traceback ...",
                "status": "error",
                "tool_call_id": "c1",
            }
        ),
        "analyst",
    )
    notes = [(n.kind, n.text) for n in taker.pop("analyst")]
    assert notes and notes[0][1].endswith("→ error"), notes  # the note itself has the outcome
    line = notes_blocks(notes)[0]["elements"][0]["text"]
    assert line.startswith(':wrench: `run_code({"code": "import pandas as pd'), line
    assert line.endswith("…) → error`"), line


def test_the_arguments_are_clipped_so_the_note_keeps_its_length() -> None:
    line = _line("tool", "search(" + "q" * 1000 + ") → success")
    assert line.endswith("q…) → success`"), line
    assert len(line.removeprefix(":wrench: `").removesuffix("`")) == NOTE_CHARS


def test_a_long_call_still_running_keeps_its_closing_parenthesis() -> None:
    assert _line("tool", "search(" + "q" * 1000 + ")").endswith("q…)`")


def test_a_short_call_and_long_reasoning_are_shown_as_before() -> None:
    assert _line("tool", 'search({"q": "x"}) → success') == ':wrench: `search({"q": "x"}) → success`'
    assert _line("reasoning", "thinking " * 100).endswith(" th…_")
