"""A background run's stream cut mid-reply, and every re-attach after it answered by a gateway's 502 while Letta
(behind it) runs on and stores the whole reply: the reply is read from history once the gateway is back, not left
half said with "Letta failed ... Ask again" (asking again is a second turn)."""

from __future__ import annotations

import pytest

from bridge.domain import AgentFailure, AgentReply
from bridge.letta import exchange
from tests.fakes.letta import FakeLetta
from tests.unit.test_background_resume import REPLY, _cut_turn

NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
             b"</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def test_a_cut_stream_whose_re_attaches_all_meet_a_gateways_502_is_read_from_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exchange, "REATTACH_PAUSES", (0.0,) * 8)
    with FakeLetta(version="0.16.8", redis=True) as letta:
        events, cut = _cut_turn(letta, lambda: letta.fail_next(
            "POST", r"/v1/conversations/[^/]+/stream", 502, raw=NGINX_502, headers={"content-type": "text/html"},
            times=8))
        assert cut, "the relay never cut the stream"
        sends = [r for r in letta.requests if r.method == "POST" and r.path.endswith("/messages")]
        assert len(sends) == 1, "the message was sent again: a second turn"
        failures = [e.message for e in events if isinstance(e, AgentFailure)]
        assert [e.text for e in events if isinstance(e, AgentReply)] == [REPLY], (events, failures)
        assert not failures, failures
