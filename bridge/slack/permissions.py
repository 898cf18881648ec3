"""Pure: may this member change a channel's binding? Slack lets anyone run a slash command, so the bridge decides.

- `admins` (default): workspace admins and owners, plus the user ids listed in config.
- `creator`: the channel's creator too (admins, owners and listed users keep their say).
- `everyone`: every member of the workspace.

Guests (multi- and single-channel) configure in no mode unless listed: a customer in a shared channel must not
rebind it. So Slack is asked about everyone not listed, and a lookup that failed grants nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.domain import ConfigureBy
from bridge.word_lists import and_list


@dataclass(frozen=True)
class Member:
    """What Slack says about the person running the command (users.info, conversations.info)."""

    user_id: str
    is_admin: bool = False
    is_owner: bool = False
    created_channel: bool = False
    is_guest: bool = False
    # The Slack error that kept users.info (admin, owner) or conversations.info (creator) from saying, if any: a
    # failed lookup grants nothing, and the refusal says why it could not tell.
    admin_unknown: str | None = None
    creator_unknown: str | None = None


# creator_unknown for a group DM: conversations.info refused for want of mpim:read, which the manifest does not grant,
# so its creator is never known (no scope `check` could suggest would tell).
GROUP_DM_CREATOR = "group_dm"


@dataclass(frozen=True)
class Policy:
    by: ConfigureBy = "admins"
    users: frozenset[str] = frozenset()


def may_configure(member: Member, policy: Policy) -> bool:
    if member.user_id in policy.users:
        return True
    if member.is_admin or member.is_owner:
        return True
    if member.is_guest or member.admin_unknown is not None:
        return False
    return policy.by == "everyone" or (policy.by == "creator" and member.created_channel)


def needs_lookup(member_id: str, policy: Policy) -> bool:
    """Whether Slack must be asked about the member at all (not for a listed user)."""
    return member_id not in policy.users


def who_may_configure(policy: Policy) -> str:
    """The rule in words (Slack mrkdwn), for the refusal message."""
    if policy.by == "everyone":
        return "members of this workspace (not guests)" + "".join(f", <@{u}>" for u in sorted(policy.users))
    who = ["workspace admins and owners"]
    if policy.by == "creator":
        who.insert(0, "the channel's creator")
    who.extend(f"<@{user}>" for user in sorted(policy.users))
    return and_list(who)


def configurers(policy: Policy) -> str:
    """Who may configure, said in a thread everyone reads: the listed users are not mentioned, since a mention
    notifies them each time it is posted."""
    listed = " (or someone the bridge lists)" if policy.users else ""
    if policy.by == "everyone":
        return "any member of this workspace who is not a guest" + listed
    creator = "the channel's creator or " if policy.by == "creator" else ""
    return f"{creator}a workspace admin or owner{listed}"
