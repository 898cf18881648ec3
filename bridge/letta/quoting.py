"""What an agent reads, built so that no message, name or reply can pass for another speaker's words.

Every earlier line an agent is shown (the group's replies it missed, a supervisor's workers, a dynamic turn so
far, a Slack thread's earlier messages) is one JSON object on one line, `{"agent": name, "text": ...}` or
`{"person": name, "text": ...}`, under a header line; a block ends at an empty line. JSON escapes every line
break inside a name or a text (Unicode's own line separators too), so nothing quoted can start a line of its
own, and the key says whether an agent or a person spoke. The person's own message comes last, after its context
prefix: on the prefix's line when it is one line; else with its lines and indentation (pasted code, a trace)
under the prefix, each behind "> " (`after_prefix`), so that none can start like a prefix or a quoted line.

Names are made fit for where they go: `label` for the prefix (one printable line, no brackets), and a person's
name never equals an agent's (`person_label`), so `name` on the Letta message cannot pass for an agent either.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Literal

from bridge.letta.wire import speaker_name

Speaker = Literal["agent", "person"]

# JSON leaves these alone, yet str.splitlines() (and many readers) break lines at them.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}
# Control, format (zero-width), separator, private-use and unassigned characters never belong in a name.
_DROPPED = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
LABEL_CHARS = 64
QUOTED_CHARS = 6000  # the most of one message a thread's earlier messages quote (turn_input.THREAD_CONTEXT_CHARS)


def quoted(speaker: Speaker, name: str, text: str, files: Sequence[dict[str, str]] = ()) -> str:
    """One line of a quoted block: a JSON object no content can break out of (with the files shared, if any)."""
    fields: dict[str, object] = {speaker: name, "text": text}
    if files:
        fields["files"] = list(files)
    line = json.dumps(fields, ensure_ascii=False)
    for char, escaped in _LINE_BREAKS.items():
        line = line.replace(char, escaped)
    return line


def after_prefix(prefix: str, words: str) -> str:
    """The person's message after its context prefix: on the prefix's line when it is one line; else under it, each
    line behind "> " (an empty one as ">", so no empty line ends a block), so that none starts like a prefix or a
    quoted line and passes for another speaker's words. Without a prefix (LETTA_CONTEXT_PREFIX="") the first line
    opens it: no blank line before it."""
    lines = words.splitlines()
    if len(lines) <= 1:
        return prefix + words
    head = prefix.rstrip()
    quoted_lines = "\n".join(f"> {line}" if line else ">" for line in lines)
    return f"{head}\n{quoted_lines}" if head else quoted_lines


def block(header: str, lines: Iterable[str]) -> str:
    """A header, then one quoted line each: `quoted` output only."""
    return "\n".join([header, *lines])


def label(name: str, fallback: str = "someone") -> str:
    """A name as it may appear in a prefix such as `[maria in #research on Slack]`: one line of printable
    characters, no square brackets, whitespace collapsed, at most 64 characters."""
    name = unicodedata.normalize("NFKC", name)
    kept = "".join(
        " " if c.isspace() else c for c in name if unicodedata.category(c) not in _DROPPED or c.isspace()
    )
    kept = " ".join(kept.replace("[", "(").replace("]", ")").split())[:LABEL_CHARS].strip()
    return kept or fallback


def _key(name: str) -> str:
    """What makes two names the same to a reader: letters and digits, case and width folded."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", name).casefold())


def person_label(name: str, user_id: str, agent_names: Sequence[str]) -> str:
    """A person's label, never the same as an agent's: `alice` spoken by a person named alice becomes
    `alice (person U0123ABCD)`."""
    shown = label(name, fallback=label(user_id))
    taken = {_key(a) for a in agent_names}
    if not _key(shown) or {_key(shown), _key(speaker_name(shown) or "")} & taken:
        shown = label(f"{shown} (person {user_id})")
    return shown
