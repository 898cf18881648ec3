"""How a thread's queue notice ends (bridge/notices.py), through the relay: a mention of the thread taken back
while another of it still waits must not make the notice deny the answer that comes; and a turn left for the next
start (its runs kept failing) is nothing a later mention waits behind. A mention taken back through another process
is said deleted or edited, as it would be through the notice's own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

import bridge.notice_words as notice_words
import bridge.notices as notices
import bridge.turn_runs as turn_runs
from bridge.turns import Job
from tests.unit.test_relay import CrashingWorker, SlowPoster, Worker, mention, relaying, until


class EditingPoster(SlowPoster):
    """Also edits notices, as the Web API client's chat.update does."""

    def __init__(self) -> None:
        super().__init__()
        self.client = SimpleNamespace(chat_update=self._update)

    async def _update(self, channel: str, ts: str, text: str) -> None:
        self.edits.append((ts, text))


@pytest.fixture
def poster(monkeypatch: pytest.MonkeyPatch) -> EditingPoster:
    """A poster whose notices are looked at again and edited at once."""
    monkeypatch.setattr(notices, "NOTICE_SPACING", 0.1)
    monkeypatch.setattr(notices, "EDIT_SPACING", 0.05)
    return EditingPoster()


def test_a_mention_taken_back_does_not_make_the_notice_deny_the_one_still_answered(
    tmp_path: Path, poster: EditingPoster
) -> None:
    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Worker, poster) as rig:
            await rig.relay.accept(mention(1, "first"))  # holds the channel until finish()
            await until(lambda: len(rig.worker.jobs) == 1)
            await rig.relay.accept(mention(2, "question one"))
            await rig.relay.accept(mention(3, "question two", thread=2))
            await until(lambda: any(thread == "2.000001" for thread, _ in poster.posts))
            await rig.relay.withdraw("T1", "C1", "3.000001")  # the person deletes question two
            rig.worker.finish()
            await until(lambda: "question one" in rig.worker.texts())
            await asyncio.sleep(1.0)  # the notice's next looks
            return [text for _, text in poster.edits]

    edits = asyncio.run(main())
    assert not [text for text in edits if text.startswith("Not answered")], edits


@pytest.mark.parametrize(
    ("why", "said"),
    [("deleted", notice_words.WITHDRAWN_NOTICE), ("addressed", notice_words.EDITED_AWAY_NOTICE),
     ("emptied", notice_words.EMPTIED_NOTICE), ("stop", notice_words.EDITED_STOP_NOTICE),
     ("unmentioned", notice_words.UNMENTIONED_NOTICE)],
)
def test_a_deleted_last_mention_still_says_it_will_not_be_answered(
    tmp_path: Path, poster: EditingPoster, why: notice_words.TakenBack, said: str
) -> None:
    """The rule above leaves this as it was: when nothing of the thread is answered, the notice says why (deleted,
    edited to speak to someone else, revBF: edited down to nothing to answer, or in a thread to `@bot stop`)."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Worker, poster) as rig:
            await rig.relay.accept(mention(1, "first"))
            await until(lambda: len(rig.worker.jobs) == 1)
            await rig.relay.accept(mention(2, "question one"))
            await until(lambda: any(thread == "2.000001" for thread, _ in poster.posts))
            await rig.relay.withdraw("T1", "C1", "2.000001", why)
            rig.worker.finish()
            await asyncio.sleep(1.0)
            return [text for _, text in poster.edits]

    assert asyncio.run(main()) == [said]


@pytest.mark.parametrize(
    ("why", "said"),
    [("deleted", notice_words.WITHDRAWN_NOTICE), ("addressed", notice_words.EDITED_AWAY_NOTICE),
     ("emptied", notice_words.EMPTIED_NOTICE), ("stop", notice_words.EDITED_STOP_NOTICE),
     ("unmentioned", notice_words.UNMENTIONED_NOTICE)],
)
def test_a_mention_taken_back_through_another_process_says_why(
    tmp_path: Path, poster: EditingPoster, why: notice_words.TakenBack, said: str
) -> None:
    """revBJ: the edit event reaches a process other than the one showing the notice, which reads from the store
    how the turn ended: an edit must not read there as a deletion (the message is still in Slack, edited)."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Worker, poster, processes=2) as rig:
            await rig.relay.accept(mention(1, "first"))  # holds the channel
            await until(lambda: any(w.jobs for w in rig.workers))
            await rig.relay.accept(mention(2, "question one"))  # process 1 shows its queue notice
            await until(lambda: any(thread == "2.000001" for thread, _ in poster.posts))
            await rig.relays[1].withdraw("T1", "C1", "2.000001", why)  # Slack's edit event reached process 2
            for worker in rig.workers:
                worker.finish()
            await asyncio.sleep(1.5)
            return [text for _, text in poster.edits]

    assert asyncio.run(main()) == [said]


class SlowCrashingWorker(CrashingWorker):
    """As CrashingWorker, and a turn that runs takes a moment (a real one asks Letta)."""

    async def run(self, job: Job) -> str:
        if self.crashes.get(job.turn.text, 0) <= 0:
            await asyncio.sleep(0.5)
        return await super().run(job)


def test_a_mention_in_an_idle_channel_gets_no_queue_notice_after_a_turn_was_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(turn_runs, "CRASH_PAUSES", (0.05, 0.05))
    poster = SlowPoster()

    async def main() -> list[tuple[str, str]]:
        async with relaying(tmp_path / "b.db", lambda store: SlowCrashingWorker(store, {"first": 99}), poster) as rig:
            await rig.relay.accept(mention(1, "first"))
            await until(lambda: len(rig.worker.jobs) == 3)  # three runs crashed: left for the next start
            await asyncio.sleep(0.2)
            await rig.relay.accept(mention(2, "second", user="U2"))  # nothing runs or waits ahead of it
            await until(lambda: "second" in rig.worker.texts())
            await asyncio.sleep(1.0)
            return poster.posts

    posts = asyncio.run(main())
    assert posts == [], f"a mention that waited behind nothing was told it is queued: {posts}"
