from __future__ import annotations

import pytest

from bridge.slack.permissions import Member, Policy, configurers, may_configure, needs_lookup, who_may_configure

ADMIN = Member("U0ADMIN01", is_admin=True)
OWNER = Member("U0OWNER01", is_owner=True)
LISTED = Member("U0LISTED1")
PLAIN = Member("U0PLAIN01")
CREATOR = Member("U0CREATE1", created_channel=True)
GUEST = Member("U0GUEST01", is_guest=True)
UNKNOWN = Member("U0UNKNOWN", admin_unknown="ratelimited")  # users.info failed: nothing is known about them


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("admins", {"admin": True, "owner": True, "listed": True, "plain": False, "creator": False, "guest": False,
                    "unknown": False}),
        ("creator", {"admin": True, "owner": True, "listed": True, "plain": False, "creator": True, "guest": False,
                     "unknown": False}),
        # Every member, not a guest (multi- or single-channel): a customer in a shared channel rebound it.
        ("everyone", {"admin": True, "owner": True, "listed": True, "plain": True, "creator": True, "guest": False,
                      "unknown": False}),
    ],
)
def test_the_permission_matrix(by: str, expected: dict[str, bool]) -> None:
    policy = Policy(by, frozenset({"U0LISTED1"}))  # type: ignore[arg-type]
    members = {"admin": ADMIN, "owner": OWNER, "listed": LISTED, "plain": PLAIN, "creator": CREATOR,
               "guest": GUEST, "unknown": UNKNOWN}
    assert {name: may_configure(m, policy) for name, m in members.items()} == expected


def test_slack_is_asked_only_when_it_can_change_the_answer() -> None:
    assert needs_lookup("U0PLAIN01", Policy("admins", frozenset({"U0LISTED1"})))
    assert not needs_lookup("U0LISTED1", Policy("admins", frozenset({"U0LISTED1"})))
    assert needs_lookup("U0PLAIN01", Policy("everyone"))  # whether they are a guest
    assert not needs_lookup("U0LISTED1", Policy("everyone", frozenset({"U0LISTED1"})))
    assert may_configure(Member("U0GUEST01", is_guest=True), Policy("everyone", frozenset({"U0GUEST01"})))


def test_the_rule_in_words() -> None:
    assert who_may_configure(Policy()) == "workspace admins and owners"
    assert who_may_configure(Policy("admins", frozenset({"U2", "U1"}))) == (
        "workspace admins and owners, <@U1> and <@U2>"
    )
    assert who_may_configure(Policy("creator")) == "the channel's creator and workspace admins and owners"
    assert who_may_configure(Policy("everyone")) == "members of this workspace (not guests)"


@pytest.mark.parametrize(
    ("by", "users", "expected"),
    [
        ("admins", (), "a workspace admin or owner"),
        ("admins", ("U0LISTED1",), "a workspace admin or owner (or someone the bridge lists)"),
        ("creator", (), "the channel's creator or a workspace admin or owner"),
        ("everyone", (), "any member of this workspace who is not a guest"),
        ("everyone", ("U0GUEST01",), "any member of this workspace who is not a guest (or someone the bridge lists)"),
    ],
)
def test_who_may_configure_said_in_a_thread_pings_nobody(by: str, users: tuple[str, ...], expected: str) -> None:
    """Said in a thread everyone reads (a channel not connected, an agent deleted): the listed users are not
    mentioned, or each such notice would notify them."""
    said = configurers(Policy(by, frozenset(users)))  # type: ignore[arg-type]
    assert said == expected and "<@" not in said
