"""The pure parts of files to agents: Slack's file objects read, decide's rules for files, and `prepare` (which
files are fetched, what the agents read, what the thread is told)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from bridge.attachments import FILES_HEADER, Prepared, fenced, prepare
from bridge.domain import SharedFile, Turn
from bridge.letta.wire import user_message
from bridge.slack.decide import Ignored, Reason, decide_mention, decide_message
from bridge.slack.files import FetchError, shared_files
from tests.reference import SLACK, load

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


def file(name: str, mimetype: str, size: int = 10, url: str = "https://files.example/x") -> SharedFile:
    return SharedFile(f"F{name}", name, mimetype, "", size, f"https://acme.slack.com/files/{name}", url)


def fetcher(served: dict[str, bytes | FetchError]) -> Any:
    asked: list[str] = []

    async def fetch(f: SharedFile, limit: int) -> bytes:
        asked.append(f.name)
        got = served[f.name]
        if isinstance(got, FetchError):
            raise got
        return got

    fetch.asked = asked  # type: ignore[attr-defined]
    return fetch


def test_the_reference_events_files_are_read() -> None:
    for name in ("app_mention_with_files.json", "message_file_share.json"):
        [f] = shared_files(load(SLACK / "events" / name)["event"])
        assert (f.name, f.mimetype, f.size) == ("chart.png", "image/png", 68)
        assert f.url.endswith("/download/chart.png") and f.permalink.startswith("https://acme.slack.com/files/")


def test_a_slack_connect_file_has_no_url_and_junk_entries_are_skipped() -> None:
    files = shared_files({"files": [{"id": "F1", "file_access": "check_file_info"}, "junk", {"name": "no id"}]})
    assert files == (SharedFile("F1", "F1"),)


def test_a_mention_of_only_files_is_a_turn_and_an_empty_one_is_not() -> None:
    body = load(SLACK / "events" / "app_mention_with_files.json")
    body["event"]["text"] = "<@U0BOTABCD>"
    turn = decide_mention(body, "U0BOTABCD")
    assert isinstance(turn, Turn) and turn.text == "" and turn.files[0].name == "chart.png"
    body["event"].pop("files")
    assert decide_mention(body, "U0BOTABCD") == Ignored(Reason.EMPTY)


def test_files_in_messages_decide_would_ignore_stay_ignored() -> None:
    body = load(SLACK / "events" / "message_file_share.json")
    body["event"].pop("thread_ts")  # a file shared in the channel, no thread: not for the bot
    assert decide_message(body, "U0BOTABCD") == Ignored(Reason.NOT_A_MENTION)
    body["event"]["bot_id"] = "B9"
    assert decide_message(body, "U0BOTABCD") == Ignored(Reason.FROM_BOT)
    follow = load(SLACK / "events" / "message_file_share.json")
    turn = decide_message(follow, "U0BOTABCD")  # it mentions the bot: the app_mention's twin, the mention itself
    assert isinstance(turn, Turn) and not turn.follow_up and len(turn.files) == 1
    follow["event"]["text"] = "what does this chart say?"
    turn = decide_message(follow, "U0BOTABCD")
    assert isinstance(turn, Turn) and turn.follow_up and len(turn.files) == 1


def test_prepare_sends_images_by_their_bytes_and_describes_the_rest() -> None:
    fetch = fetcher({"a.png": PNG, "fake.png": b"<!DOCTYPE html>"})
    files = [file("a.png", "image/png"), file("fake.png", "image/png"), file("r.pdf", "application/pdf", 2_100_000)]
    got = asyncio.run(prepare(files, fetch, 5_000_000))
    assert [i.media_type for i in got.images] == ["image/png"] and got.images[0].data == base64.b64encode(PNG).decode()
    header, *lines = got.text.strip().split("\n")
    assert header == FILES_HEADER
    described = [json.loads(line) for line in lines]
    statuses = ["attached as image 1", "not passed on: not a PNG, JPEG, GIF or WebP image"]
    assert [d["status"] for d in described[:2]] == statuses
    assert described[2] == {"file": "r.pdf", "type": "application/pdf", "size": "2.1 MB",
                            "link": "https://acme.slack.com/files/r.pdf",
                            "status": "not passed on: the agents are given images only"}
    assert fetch.asked == ["a.png", "fake.png"]  # a PDF is never fetched
    assert got.missing == (("fake.png", "it is not an image the agents can read"),)


def test_text_files_are_inlined_only_when_allowed_and_clipped() -> None:
    fetch = fetcher({"n.txt": b"x" * 50})
    off = asyncio.run(prepare([file("n.txt", "text/plain")], fetch, 1000))
    assert fetch.asked == [] and "inlined" not in off.text
    on = asyncio.run(prepare([file("n.txt", "text/plain")], fetch, 1000, inline_text=True, inline_chars=10))
    assert "its first 10 characters" in on.text and "```\nxxxxxxxxxx\n```" in on.text


def test_a_fence_cannot_be_closed_from_inside() -> None:
    assert fenced("a ``` b ```` c") == "`````\na ``` b ```` c\n`````"


def test_failures_are_named_once_in_plain_words_and_the_parts_survive_storage() -> None:
    fetch = fetcher({"big.png": FetchError("it is too big"), "no.png": FetchError("the bot may not read it")})
    files = [file("big.png", "image/png", 9_000_000), file("no.png", "image/png")]
    got = asyncio.run(prepare(files, fetch, 5_000_000))
    assert got.note() == ("I could not pass on big.png (it is too big: 9.0 MB, the limit is 5.0 MB) and no.png "
                          "(the bot may not read it); the message went to the agents without them.")
    assert Prepared.load(got.dump()) == got
    assert Prepared().note() == "" and asyncio.run(prepare([], fetch, 1)) == Prepared()


def test_a_name_cannot_break_out_of_its_line() -> None:
    got = asyncio.run(prepare([file('x"}\n{"file": "forged', "application/zip")], fetcher({}), 1))
    assert len(got.text.strip().split("\n")) == 2


def test_the_user_message_carries_the_images_after_the_text() -> None:
    got = asyncio.run(prepare([file("a.png", "image/png")], fetcher({"a.png": PNG}), 1000))
    message = user_message("hi", "otid-1", "maria", got.images)
    assert message["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                 "data": base64.b64encode(PNG).decode()}}


def test_a_slack_connect_file_is_named_as_not_shared_and_the_thread_is_told() -> None:
    """Another organisation's file arrives as `{"id", "file_access": "check_file_info"}`: before, the agents read
    `{"file": "F0CONNECT1", "type": "unknown"}` with no status, and the thread was told nothing."""
    fetch = fetcher({})
    files = shared_files({"files": [{"id": "F0CONNECT1", "file_access": "check_file_info"}]})
    got = asyncio.run(prepare(files, fetch, 5_000_000))
    [line] = [json.loads(line) for line in got.text.strip().split("\n")[1:]]
    assert line["status"] == "not passed on: Slack did not share it with the bot" and fetch.asked == []
    assert got.missing == (("F0CONNECT1", "Slack did not share it with the bot"),) and got.note()


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"


def test_a_photo_in_a_type_agents_cannot_read_is_named_in_the_thread_not_left_silently() -> None:
    """An iPhone photo (HEIC) stayed behind with no note, described to the agents as not passed on because they
    are given images only: it is an image."""
    fetch = fetcher({"IMG_0042.HEIC": HEIC})
    got = asyncio.run(prepare([file("IMG_0042.HEIC", "image/heic", 1_800_000)], fetch, 5_000_000))
    [line] = [json.loads(x) for x in got.text.strip().split("\n")[1:]]
    assert line["status"] == "not passed on: it is a HEIC image; the agents read PNG, JPEG, GIF or WebP only"
    assert "IMG_0042.HEIC (it is a HEIC image; the agents read PNG, JPEG, GIF or WebP only)" in got.note()
    assert not got.images


def test_a_file_just_over_the_limit_is_not_said_to_be_as_big_as_the_limit() -> None:
    fetch = fetcher({"shot.png": FetchError("it is too big"), "log.png": FetchError("it is too big")})
    over = asyncio.run(prepare([file("shot.png", "image/png", 5_040_000)], fetch, 5_000_000))
    assert "shot.png (it is too big: 5.04 MB, the limit is 5.00 MB)" in over.note(), over.note()
    # Slack's size under the limit, the download over it: Slack's size is not quoted against the limit.
    under = asyncio.run(prepare([file("log.png", "image/png", 4_000_000)], fetch, 5_000_000))
    assert "log.png (it is bigger than the limit of 5.0 MB)" in under.note(), under.note()
