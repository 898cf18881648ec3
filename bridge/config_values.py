"""Slack values as people paste them into settings (a member id, a channel id, an emoji's name, a slash command),
made into what Slack's API takes, or refused with words that say where to find the right one: a value that would
match nothing (a channel's #name, an email) grants or excepts nobody, silently."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

USER_ID = re.compile(r"[UW][A-Z0-9]+")  # a Slack member id (W: Enterprise Grid)
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")  # a channel, a private channel (older G ids) or a DM
EMOJI_NAME = re.compile(r"[a-z0-9_+\-\u0080-\uffff']+(::skin-tone-[2-6])?")  # Slack's emoji names
MOST_PROMPTS = 4  # assistant.threads.setSuggestedPrompts takes no more


def user_ids(value: tuple[str, ...]) -> tuple[str, ...]:
    """Member ids, as a copied mention (<@U0123|name>) or lower-cased too (with a digit after the first letter:
    a word without is taken for a name)."""
    where = "in Slack, open the person's profile, then ⋮ > Copy member ID"
    return _ids(value, "@", USER_ID, f"a Slack user id (like U0123ABCD: {where}")


def channel_ids(value: tuple[str, ...]) -> tuple[str, ...]:
    """Channel ids, as a copied link (<#C0123|name>) or lower-cased too (with a digit after the first letter:
    a word without is taken for a name)."""
    where = "in Slack, open the channel's details; its id is at the bottom"
    return _ids(value, "#", CHANNEL_ID, f"a Slack channel id (like C0123ABCD: {where}")


def _ids(value: tuple[str, ...], sign: str, shape: re.Pattern[str], what: str) -> tuple[str, ...]:
    ids = []
    for given in value:
        written = re.sub(rf"^<{sign}([^|>]*)(\|[^>]*)?>$", r"\1", given.strip())
        found = written.upper()
        # A word not in capitals is a name (`general`, `Will`, `will2`) unless a digit follows its first letter,
        # as in an id lower-cased (`u0123abcd`): a name would pass the shape upper-cased, then match nobody.
        if not shape.fullmatch(found):
            raise ValueError(f"{given[:40]} is not {what})")
        if not written.isupper() and not written[1:2].isdigit():
            raise ValueError(
                f"{given[:40]} is taken for a name, not {what}); an id with a letter after its first one is taken "
                "only as Slack shows it, in capitals"
            )
        ids.append(found)
    return tuple(ids)


def reaction_name(value: str) -> str:
    """An emoji's name without its colons, as reactions.add takes it; empty turns that reaction off."""
    name = value.strip().strip(":")
    if name and not EMOJI_NAME.fullmatch(name):
        raise ValueError(f"{value[:40]!r} is not an emoji's name (like eyes or white_check_mark); empty turns it off")
    return name


def command_name(value: str) -> str:
    """A slash command as Slack's manifest takes it, the / added where it was left out."""
    value = value.strip()
    if not value.startswith("/"):
        value = "/" + value
    if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
        raise ValueError("a slash command is / then up to 31 lower-case letters, digits, - or _ (like /letta)")
    return value


def suggested_prompts(value: object) -> object:
    """The prompts a new agent-view thread offers, from the environment separated by `|`: more than Slack shows
    would be dropped with no word."""
    if isinstance(value, str):
        value = tuple(part.strip() for part in value.split("|") if part.strip())
    if isinstance(value, (list, tuple)) and len(value) > MOST_PROMPTS:
        raise ValueError(
            f"holds {len(value)} prompts, and Slack shows at most {MOST_PROMPTS}: keep the {MOST_PROMPTS} to offer"
        )
    return value


def emoji_icon(value: str) -> str:
    """Slack takes an icon's emoji between colons; the bare name is what people type from the picker."""
    name = value.strip().strip(":")
    if not EMOJI_NAME.fullmatch(name):
        raise ValueError(f"icon_emoji must be an emoji's name, such as :owl:; got {value!r}")
    return f":{name}:"


class AgentLook(BaseModel):
    """How one agent appears in Slack (needs chat:write.customize)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None

    @field_validator("icon_emoji")
    @classmethod
    def _emoji(cls, value: str | None) -> str | None:
        return None if value is None else emoji_icon(value)

    @field_validator("icon_url")
    @classmethod
    def _icon_url(cls, value: str | None) -> str | None:
        """Slack fetches the icon itself: anything but an http(s) address is no icon at all."""
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"icon_url must be an image's http(s) address; got {value!r}")
        return value.strip()
