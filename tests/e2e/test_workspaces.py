"""One bridge, many workspaces (issue 21): installed through Slack's OAuth redirect flow, each workspace on its own
Letta server, isolation, uninstall and revocation, token rotation, Enterprise Grid; on SQLite here, on Postgres with
two processes in test_workspaces_postgres.py."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.e2e.harness import inbox_drained
from tests.e2e.oauth import Installed, Many, many_world
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import Call, Grant

ACME, BETA = "T0ACME001", "T0BETA002"


def bind(world: Many, team: str, channel: str, letta: FakeLetta, names: tuple[str, ...]) -> dict[str, str]:
    agents = {name: letta.add_agent(name) for name in names}
    group = letta.add_group(list(agents.values()), description=f"{team} crew")
    world.slack.add_channel(channel, f"chan-{channel.lower()}")
    ack, url = world.command(f"connect {group}", channel, team)
    assert ack.status_code == 200, ack.text
    assert "Connected this channel" in world.answer(url), world.answer(url)
    return agents


def done(world: Many, channel: str, ts: str, timeout: float = 15.0) -> None:
    world.slack.wait_for(lambda: bool({"white_check_mark", "warning"} & world.slack.reactions(channel, ts)), timeout)


def test_a_forged_state_is_refused_and_a_real_install_serves_its_workspace(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        # Nothing installed yet: a mention is acknowledged (Slack must not retry it) and never becomes a turn.
        refused_event, refused = world.mention("anyone?", "C0ACME001", ACME)
        assert refused.status_code == 200, refused.text
        inbox_drained(world.db)
        with sqlite3.connect(world.db) as db:
            made = db.execute("SELECT count(*) FROM turns WHERE message_ts=?", (refused_event["ts"],)).fetchone()[0]
        assert made == 0
        assert "authorize" in world.bridge.logs().lower(), world.bridge.logs()

        _, cookie = world.install_page()
        forged = world.redirect(f"code={world.slack.code_for(Grant(ACME, 'Acme'))}&state=forged.state", "forged.state")
        assert forged.status_code == 401, forged.text
        mismatch = world.redirect("code=x&state=" + cookie, "another")
        assert mismatch.status_code == 400, mismatch.text
        assert world.slack.calls_to("oauth.v2.access") == []  # no code was exchanged for a forged state

        done_page = world.install(Grant(ACME, "Acme"))
        assert done_page.status_code == 200, done_page.text
        [access] = world.slack.calls_to("oauth.v2.access")
        assert access.ok and access.headers["authorization"].startswith("Basic ")  # client id and secret
        [token] = world.slack.tokens_of(ACME)
        with sqlite3.connect(world.db) as db:
            dump = "\n".join(db.iterdump())
        assert token not in dump and "team_id" in dump  # stored encrypted
        assert token not in world.bridge.logs()

        # The same state cannot be used twice.
        _, cookie = world.install_page()
        world.slack.install_next(Grant(BETA, "Beta"))
        assert world.redirect(f"code=x&state={cookie}", cookie).status_code in (200, 401)
        assert world.redirect(f"code=x&state={cookie}", cookie).status_code == 401

        agents = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        event, response = world.mention("hello acme", "C0ACME001", ACME)
        assert response.status_code == 200
        done(world, "C0ACME001", event["ts"])
        [post] = world.slack.posts("C0ACME001", event["ts"])
        assert post.token == token and post.args["username"] == "alice"
        assert [i.agent_id for i in world.letta.inputs] == [agents['alice']]  # asked on this workspace's Letta


def test_two_workspaces_on_two_letta_servers_never_mix(tmp_path: Path) -> None:
    other = FakeLetta(version="0.16.8", api_key="sk-beta-letta")
    other.start()
    try:
        with many_world(tmp_path) as world:
            assert world.install(Grant(ACME, "Acme")).status_code == 200
            assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200

            # Beta's admin sets its own server: a wrong key is refused inline and nothing is saved.
            ack, url = world.command("setup", "C0BETA001", BETA, user="U0MEMBER1")
            assert "Only workspace admins" in ack.text
            ack, _ = world.command("setup", "C0BETA001", BETA)
            assert ack.status_code == 200 and ack.text == ""
            world.slack.wait_for(lambda: len(world.slack.calls_to("views.open")) == 1)  # opened after the ack
            [opened] = world.slack.calls_to("views.open")
            assert opened.ok and "initial_value" not in str(opened.args["view"]).split("letta_key")[1]
            wrong = world.submit_setup(BETA, other.base_url, "sk-wrong")
            assert wrong.status_code == 200 and '"response_action":"errors"' in wrong.text.replace(" ", "")
            saved = world.submit_setup(BETA, other.base_url, "sk-beta-letta")
            assert saved.status_code == 200 and "update" in saved.text, saved.text
            assert "sk-beta-letta" not in saved.text and "sk-beta-letta" not in world.bridge.logs()
            with sqlite3.connect(world.db) as db:
                assert "sk-beta-letta" not in "\n".join(db.iterdump())

            acme = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
            beta = bind(world, BETA, "C0BETA001", other, ("bruno",))
            world.letta.set_delay(acme["alice"], 0.5)
            other.set_delay(beta["bruno"], 0.5)
            a, _ = world.mention("hello from acme", "C0ACME001", ACME)
            b, _ = world.mention("hello from beta", "C0BETA001", BETA)
            done(world, "C0ACME001", a["ts"])
            done(world, "C0BETA001", b["ts"])
            [pa] = world.slack.posts("C0ACME001", a["ts"])
            [pb] = world.slack.posts("C0BETA001", b["ts"])
            assert pa.args["username"] == "alice" and pb.args["username"] == "bruno"
            assert pa.token in world.slack.tokens_of(ACME) and pb.token in world.slack.tokens_of(BETA)
            assert all("hello from beta" not in str(s.body) for s in world.letta.sends())
            assert all("hello from acme" not in str(s.body) for s in other.sends())
            assert any("hello from beta" in str(s.body) for s in other.sends())

            # /letta status in one workspace says nothing of the other.
            _, url = world.command("status", "C0ACME001", ACME)
            status = world.answer(url)
            assert "alice" in status and "bruno" not in status and other.base_url not in status

            listing = world.cli("workspaces", "list")
            assert listing.returncode == 0, listing.stderr
            assert ACME in listing.stdout and BETA in listing.stdout and other.base_url in listing.stdout
            check = world.cli("check")
            assert f"workspace {ACME}" in check.stdout and f"workspace {BETA}" in check.stdout, check.stdout
            assert other.base_url in check.stdout
    finally:
        other.stop()


def test_revoked_mid_turn_the_workspace_stops_and_says_nothing(tmp_path: Path) -> None:
    with many_world(tmp_path, UNINSTALLED_BINDINGS="keep") as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        assert world.install(Grant(BETA, "Beta")).status_code == 200
        agents = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        world.letta.set_delay(agents["alice"], 3.0)
        first, _ = world.mention("a long one", "C0ACME001", ACME)
        queued, _ = world.mention("and another", "C0ACME001", ACME)
        inbox_drained(world.db)  # both turns recorded before the revocation
        world.slack.wait_for(lambda: "eyes" in world.slack.reactions("C0ACME001", first["ts"]), 10)
        posts_before = len(world.slack.posts("C0ACME001"))
        world.slack.revoke(ACME)  # Slack's side, then its event
        assert world.event("tokens_revoked", ACME).status_code == 200
        time.sleep(4.0)
        assert len(world.slack.posts("C0ACME001")) == posts_before  # nothing posted after the revocation
        logs = world.bridge.logs()
        assert "the bot token was revoked" in logs and "turn ended" in logs
        with sqlite3.connect(world.db) as db:
            statuses = dict(db.execute("SELECT message_ts, status FROM turns").fetchall())
            kept = db.execute("SELECT count(*) FROM bindings WHERE team_id=?", (ACME,)).fetchone()[0]
        assert statuses[first["ts"]] == "uninstalled" and statuses[queued["ts"]] == "uninstalled"
        assert kept == 1  # UNINSTALLED_BINDINGS=keep

        # A request from the workspace that is gone is acknowledged and never becomes a turn.
        late, answer = world.mention("still there?", "C0ACME001", ACME)
        assert answer.status_code == 200, answer.text
        inbox_drained(world.db)
        with sqlite3.connect(world.db) as db:
            assert db.execute("SELECT count(*) FROM turns WHERE message_ts=?", (late["ts"],)).fetchone()[0] == 0

        # The other workspace goes on; removing it from the host works like an uninstall.
        removed = world.cli("workspaces", "remove", BETA)
        assert removed.returncode == 0 and "tokens are deleted" in removed.stdout, removed.stderr
        assert BETA not in world.cli("workspaces", "list").stdout


def test_a_workspace_removed_from_the_host_mid_turn_ends_its_turn_in_one_line(tmp_path: Path) -> None:
    """`workspaces remove` runs in a process of its own: the serving process learns of it at its turn's next Slack
    call (its token cache lives 10 s), which finds no installation."""
    with many_world(tmp_path, UNINSTALLED_BINDINGS="keep") as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        agents = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        world.letta.set_delay(agents["alice"], 11.0)  # the reply comes after the token cache has expired
        event, _ = world.mention("a long one", "C0ACME001", ACME)
        world.slack.wait_for(lambda: "eyes" in world.slack.reactions("C0ACME001", event["ts"]), 10)
        posts_before = len(world.slack.posts("C0ACME001"))
        removed = world.cli("workspaces", "remove", ACME)
        assert removed.returncode == 0 and "1 unfinished turns ended" in removed.stdout, removed.stdout
        # Two lines: why it ended, then the turn's own end line with its status (written just after).
        world.slack.wait_for(lambda: "status=uninstalled" in world.bridge.logs(), 20)
        assert "turn crashed" not in world.bridge.logs()
        assert len(world.slack.posts("C0ACME001")) == posts_before  # nothing said: the workspace removed the app
        with sqlite3.connect(world.db) as db:
            assert db.execute("SELECT status FROM turns").fetchall() == [("uninstalled",)]

def test_an_uninstall_delivered_after_the_workspace_installed_again_leaves_the_new_install(tmp_path: Path) -> None:
    """Slack delivers an event again for up to an hour when the bridge did not answer it (down, restarting): an
    uninstall's events that come after the workspace installed the app again are about the tokens it replaced."""
    with many_world(tmp_path) as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        uninstalled_at = time.time()
        world.slack.revoke(ACME)  # uninstalled in Slack; its events do not reach the bridge yet
        time.sleep(1.1)
        assert world.install(Grant(ACME, "Acme")).status_code == 200  # and installed again
        new_token = world.slack.tokens_of(ACME)[-1]
        assert world.event("app_uninstalled", ACME, at=uninstalled_at).status_code == 200
        assert world.event("tokens_revoked", ACME, at=uninstalled_at).status_code == 200
        event, _ = world.mention("still bound?", "C0ACME001", ACME)
        done(world, "C0ACME001", event["ts"])
        [post] = world.slack.posts("C0ACME001", event["ts"])
        assert post.token == new_token and post.args["username"] == "alice"
        assert ACME in world.cli("workspaces", "list").stdout
        assert "came before the workspace installed the app again" in world.bridge.logs()

def test_a_rotating_token_expiring_mid_turn_is_renewed(tmp_path: Path) -> None:
    with many_world(tmp_path, SLACK_TOKEN_ROTATION_MINUTES="1") as world:
        # Tokens live 62 s; the bridge renews them within their last minute, so at once and again each 2 s.
        assert world.install(Grant(ACME, "Acme", rotation=True, expires_in=62)).status_code == 200
        agents = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        world.letta.set_delay(agents["alice"], 2.5)
        event, _ = world.mention("rotate please", "C0ACME001", ACME)
        done(world, "C0ACME001", event["ts"])
        [post] = world.slack.posts("C0ACME001", event["ts"])
        refreshes = [c for c in world.slack.calls_to("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"]
        assert refreshes and all(c.ok for c in refreshes)  # no refresh token was spent twice
        assert post.token.startswith("xoxe.xoxb-") and post.ok
        assert not [c for c in world.slack.calls if c.error == "token_expired"]


def renewals(world: Many) -> list[Call]:
    return [c for c in world.slack.calls_to("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"]


def always_renewing(world: Many) -> int:
    """Acme installed with tokens that always expire within SLACK_TOKEN_ROTATION_MINUTES (1), so that each request
    renews its token first, and a channel bound; the renewals made so far."""
    assert world.install(Grant(ACME, "Acme", rotation=True, expires_in=60)).status_code == 200
    bind(world, ACME, "C0ACME001", world.letta, ("alice",))
    return len(renewals(world))


def test_a_mention_whose_token_renewal_fails_for_a_while_is_tried_again(tmp_path: Path) -> None:
    with many_world(tmp_path, SLACK_TOKEN_ROTATION_MINUTES="1") as world:
        before = always_renewing(world)
        world.slack.fail_next("oauth.v2.access", "ratelimited")  # Slack's rate limit, once
        event, ack = world.mention("renew, then answer", "C0ACME001", ACME)
        assert ack.status_code == 200
        done(world, "C0ACME001", event["ts"])
        [post] = world.slack.posts("C0ACME001", event["ts"])
        assert post.args["username"] == "alice" and post.token.startswith("xoxe.xoxb-")
        failed, renewed = renewals(world)[before : before + 2]
        assert failed.status == 429 and renewed.ok  # the first attempt's renewal was refused, the retry's worked
        logs = world.bridge.logs()
        assert "to be delivered again: the bot token could not be renewed" in logs
        assert "slack event not handled" in logs and "status=500" in logs


def test_without_the_inbox_a_failed_renewal_is_answered_500_for_slack_to_deliver_again(tmp_path: Path) -> None:
    with many_world(tmp_path, SLACK_TOKEN_ROTATION_MINUTES="1", HTTP_EVENTS_INBOX="false") as world:
        before = always_renewing(world)
        world.slack.fail_next("oauth.v2.access", "service_unavailable")  # one of Slack's errors for every method
        event = mention_event("renew, then answer", channel="C0ACME001", team=ACME)
        body = world.envelope(event_body(event, team_id=ACME), ACME)
        assert world.bridge.post(body).status_code == 500
        retried = world.bridge.post(body, timestamp=int(time.time()) + 1, **{"x-slack-retry-num": "1"})
        assert retried.status_code == 200, retried.text  # Slack's retry: the same body, signed again
        done(world, "C0ACME001", event["ts"])
        assert [p.args["username"] for p in world.slack.posts("C0ACME001", event["ts"])] == ["alice"]
        assert renewals(world)[before].error == "service_unavailable"


def test_a_mention_whose_refresh_token_is_refused_is_dropped_with_a_line(tmp_path: Path) -> None:
    with many_world(tmp_path, SLACK_TOKEN_ROTATION_MINUTES="1") as world:
        before = always_renewing(world)
        world.slack.fail_next("oauth.v2.access", "invalid_refresh_token")
        event, ack = world.mention("never answered", "C0ACME001", ACME)
        assert ack.status_code == 200
        inbox_drained(world.db)
        time.sleep(1.5)  # past the pause before a second attempt: none is made
        assert len(renewals(world)) == before + 1
        with sqlite3.connect(world.db) as db:
            assert db.execute("SELECT count(*) FROM turns WHERE message_ts=?", (event["ts"],)).fetchone()[0] == 0
        assert "slack request dropped: the bot token cannot be renewed error=invalid_refresh_token" in (
            world.bridge.logs()
        )


def test_an_org_wide_enterprise_grid_install_serves_each_workspace_of_the_org(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        grant = Grant(None, "", enterprise_id="E0ORG0001", enterprise_name="Acme Org", org_wide=True)
        assert world.install(grant).status_code == 200
        for team in ("T0GRIDA01", "T0GRIDB02"):  # two workspaces the org admin added the app to
            world.teams[team] = Installed(team, "E0ORG0001", org_wide=True)
        a = bind(world, "T0GRIDA01", "C0GRIDA01", world.letta, ("alice",))
        b = bind(world, "T0GRIDB02", "C0GRIDB02", world.letta, ("bob",))
        assert a and b
        ea, _ = world.mention("from grid a", "C0GRIDA01", "T0GRIDA01")
        eb, _ = world.mention("from grid b", "C0GRIDB02", "T0GRIDB02")
        done(world, "C0GRIDA01", ea["ts"])
        done(world, "C0GRIDB02", eb["ts"])
        [org_token] = world.slack.tokens_of("E0ORG0001")
        assert [p.token for p in world.slack.posts("C0GRIDA01", ea["ts"])] == [org_token]
        assert [p.args["username"] for p in world.slack.posts("C0GRIDB02", eb["ts"])] == ["bob"]
        with sqlite3.connect(world.db) as db:
            rows = set(db.execute("SELECT team_id, enterprise_id FROM slack_workspaces").fetchall())
            bound = set(db.execute("SELECT team_id, channel_id FROM bindings").fetchall())
        assert {("T0GRIDA01", "E0ORG0001"), ("T0GRIDB02", "E0ORG0001")} <= rows  # enterprise_id recorded
        assert bound == {("T0GRIDA01", "C0GRIDA01"), ("T0GRIDB02", "C0GRIDB02")}  # keyed by workspace, channel
        listing = world.cli("workspaces", "list").stdout
        assert "E0ORG0001" in listing and "org-wide" in listing


def _auth_tests(world: Many, team: str) -> int:
    tokens = set(world.slack.tokens_of(team))
    return sum(1 for c in world.slack.calls_to("auth.test") if c.token in tokens)


def test_slack_is_asked_who_the_bot_is_once_per_token_not_at_every_mention(tmp_path: Path) -> None:
    """Bolt's authorize asks auth.test before each request unless told to keep the answer: a round trip before
    every mention, and a burst past auth.test's rate limit would lose mentions (see the next test)."""
    with many_world(tmp_path) as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        first, _ = world.mention("first", "C0ACME001", ACME)
        done(world, "C0ACME001", first["ts"])
        asked = _auth_tests(world, ACME)
        for text in ("second", "third"):
            event, _ = world.mention(text, "C0ACME001", ACME)
            done(world, "C0ACME001", event["ts"])
        assert _auth_tests(world, ACME) == asked


def test_a_mention_whose_auth_test_fails_for_a_while_is_tried_again(tmp_path: Path) -> None:
    """Bolt reads an auth.test that failed on Slack's side as "not installed" and answers 200: the mention was
    lost."""
    with many_world(tmp_path) as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        world.slack.add_channel("C0ACME001", "chan-c0acme001")
        agents = {"alice": world.letta.add_agent("alice")}
        group = world.letta.add_group(list(agents.values()), description="crew")
        bound = world.cli("channels", "connect", "C0ACME001", group, "--team", ACME)  # not through Bolt's authorize
        assert bound.returncode == 0, bound.stderr
        world.slack.fail_next("auth.test", error="internal_error")  # (a 429 the client waits out itself)
        event, ack = world.mention("are you there?", "C0ACME001", ACME)
        assert ack.status_code == 200
        done(world, "C0ACME001", event["ts"], 20)
        assert [p.args["username"] for p in world.slack.posts("C0ACME001", event["ts"])] == ["alice"]
        assert "to be delivered again" in world.bridge.logs()


def test_setup_answers_within_slack_s_3_seconds_though_slack_is_slow_to_say_who_asks(tmp_path: Path) -> None:
    """/letta setup checks that the caller is an admin (users.info) before it answers: a rate-limited users.info,
    which the client waits out (1 s each, three times), kept the answer past Slack's 3 seconds."""
    with many_world(tmp_path) as world:
        assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
        world.slack.fail_next("users.info", "ratelimited", times=3)
        began = time.monotonic()
        ack, _ = world.command("setup", "C0BETA001", BETA)
        assert time.monotonic() - began < 2.5, time.monotonic() - began
        assert "Slack did not confirm in time that you are a workspace admin or owner" in ack.text, ack.text
        assert world.slack.calls_to("views.open") == []
