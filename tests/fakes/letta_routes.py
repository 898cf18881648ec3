"""The fake Letta's agent and group routes (list, get, history, send), each version's answers as its captures
give them; a 0.11.7 group send run by the pattern's runner in letta_shapes.py."""

from __future__ import annotations

import copy
import re
import threading
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import letta_groups as G
from . import letta_heartbeat, letta_runs, letta_tools
from . import letta_refusals as R
from . import letta_shapes as S
from .letta_shapes import new_id, wire_date

if TYPE_CHECKING:
    from .letta import Recorded, _Agent, _Stored

INTERNAL_ERROR = S.body("0.11.7", "llm500-agents-send")  # {"detail": "An internal server error occurred"}
SHAPES = {v: S.Shapes(v) for v in S.VERSIONS}


class AgentAndGroupRoutes:
    """Mixed into FakeLetta, which provides its state (_lock, _agents, _groups, _hist, _tools), _json, _store and
    the turn runners (_run_cancellable, _reply_for)."""

    _lock: threading.RLock
    _agents: dict[str, _Agent]
    _groups: dict[str, G.GroupSpec]
    _hist: dict[str, list[_Stored]]

    async def _health(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        body = S.body(v, "health")
        body["version"] = v
        return self._json(v, 200, body)

    def _agent_obj(self, v: str, agent: _Agent) -> dict[str, Any]:
        with self._lock:
            ids = list(dict.fromkeys(s.msg["id"] for s in self._hist.get(agent.id, [])))
        ids = ([agent.system_message_id] if S.is_v16(v) else []) + ids
        return SHAPES[v].agent(agent.id, agent.name, agent.created, agent.created, ids)

    def _agent_check(self, v: str, agent_id: str, *, existence: bool = True) -> web.Response | None:
        if not re.fullmatch(S.AGENT_ID_RE, agent_id):
            status, body = R.malformed_agent_id(v, agent_id)
            return self._json(v, status, body)
        with self._lock:
            known = agent_id in self._agents
        if existence and not known:
            return self._json(v, 404, R.agent_not_found(v, agent_id))
        return None

    async def _agent_list(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        with self._lock:
            agents = list(self._agents.values())
        q = request.query
        if "name" in q:
            agents = [a for a in agents if a.name == q["name"]]
        if q.getall("tags", []):
            agents = []  # fake agents carry no tags
        items = [self._agent_obj(v, a) for a in agents]
        page = S.page_objects(items, limit=S.to_int(q.get("limit"), 50), before=q.get("before"), after=q.get("after"),
                              descending=q.get("order", "desc") != "asc")
        return self._json(v, 200, page)

    async def _agent_get(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        err = self._agent_check(v, p["agent_id"])
        if err is not None:
            return err
        with self._lock:
            agent = self._agents[p["agent_id"]]
        return self._json(v, 200, self._agent_obj(v, agent))

    async def _agent_history(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        """0.11.7/0.12.1 ignore ``order`` (newest page); 0.16.x honour it. Pages are always listed oldest-first."""
        aid = p["agent_id"]
        err = self._agent_check(v, aid)
        if err is not None:
            return err
        q = request.query
        with self._lock:
            agent = self._agents[aid]
            stored = [s for s in self._hist.get(aid, []) if "group_id" not in q or s.group_id == q["group_id"]]
            entries = [copy.deepcopy(s.msg) for s in stored]
        shapes = SHAPES[v]
        if S.is_v16(v):  # 0.16.x lists the agent's system prompt first; 0.11.7 hides it
            entries.insert(0, shapes.message("system_message", id=agent.system_message_id,
                                             date=wire_date(agent.created), content=shapes.system_prompt()))
        types = q.getall("include_return_message_types", [])
        if types:
            entries = [e for e in entries if e["message_type"] in types]
        newest = not S.is_v16(v) or q.get("order", "desc") != "asc"
        page = S.page_messages(entries, limit=S.to_int(q.get("limit"), 100), before=q.get("before"),
                               after=q.get("after"), newest=newest)
        return self._json(v, 200, page)

    async def _agent_send(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        """A direct send: user_message stored at once, the reply after the agent's delay."""
        aid = p["agent_id"]
        if S.is_v16(v) and (err := self._agent_check(v, aid, existence=False)) is not None:
            return err  # 0.16.x validates the path pattern before the body
        msgs, bad = R.parse_send(v, rec.raw)
        if msgs is None:
            return self._json(v, 422, bad)
        err = self._agent_check(v, aid)
        if err is not None:
            return err
        shapes, text = SHAPES[v], S.joined_text(msgs)
        first = msgs[0] if msgs else {}
        otid, name = first.get("otid"), first.get("name")
        run = letta_runs.start(self, aid, "send_message")
        try:
            managed = await self._as_manager(v, aid, msgs, text, otid, name)
            if managed is not None:
                return self._json(v, 200, shapes.response(*managed))
            out, steps = await self.agent_turn(v, aid, msgs, run)
        finally:
            letta_runs.end(run)
        return self._json(v, 200, shapes.response(copy.deepcopy(out), steps))

    async def agent_turn(self, v: str, aid: str, msgs: list[dict[str, Any]], run: letta_runs.Run,
                         conversation: str | None = None) -> tuple[list[dict[str, Any]], int]:
        """One agent step as a real server runs it: the LLM call, then the user message (with its otid) and the
        replies stored together when the step ends (reference README section 19)."""
        shapes, text = SHAPES[v], S.joined_text(msgs)
        first = msgs[0] if msgs else {}
        otid, name = first.get("otid"), first.get("name")
        step_id, run_id = new_id("step"), (run.id if S.is_v16(v) else None)
        stored_otid = str(uuid.uuid4()) if otid is None and v == "0.16.8" else otid  # 0.16.8 fills a missing otid
        replies, run.cancelled = await self._run_cancellable(aid, text, msgs, otid, name, conversation=conversation,
                                                             run_id=run.id)
        user = shapes.message("user_message", id=new_id("message"), name=name, otid=stored_otid, step_id=step_id,
                              run_id=run_id, content=text)
        out, steps = shapes.turn(replies, name=None, step_id=step_id, run_id=run_id, date=wire_date())
        tools = self._tools.get(aid) if v == "0.16.8" else None
        if tools:
            out, steps = [*letta_tools.tool_messages(tools, step_id, run_id), *out], steps + len(tools)
        stored = out
        if aid in self._saves_memory:
            saved, said = letta_heartbeat.memory_save(v, step_id, run_id)
            stored, out, steps = [*saved, *out], [*said, *out], steps + 1
        self._store(aid, None, [user, *stored], conversation)
        return out, steps

    async def _as_manager(self, v: str, aid: str, msgs: list[dict[str, Any]], text: str, otid: str | None,
                          name: str | None) -> tuple[list[dict[str, Any]], int] | None:
        """0.11.7 runs a direct send to a supervisor's or dynamic group's manager as the whole group (it loads the
        manager's group: `agents-send-supervisor-manager`); None for any other agent."""
        if v != "0.11.7":
            return None
        with self._lock:
            group = next((copy.deepcopy(g) for g in self._groups.values() if g.manager_agent_id == aid
                          and g.manager_type in ("supervisor", "dynamic")), None)
        if group is None:
            return None
        out, steps = await G.GROUP_RUNNERS[group.manager_type](self, SHAPES[v], group, msgs, text, otid, name)
        return out, steps

    def _group_obj(self, v: str, g: G.GroupSpec) -> dict[str, Any]:
        return SHAPES[v].group(g.id, g.manager_type, g.agent_ids, g.description, g.manager_agent_id,
                                g.max_turns, g.termination_token)

    def _group_check(self, v: str, group_id: str) -> web.Response | None:
        if not re.fullmatch(S.GROUP_ID_RE, group_id):
            status, body = R.malformed_group_id(v, group_id)
            return self._json(v, status, body)
        with self._lock:
            known = group_id in self._groups
        return None if known else self._json(v, 404, R.group_not_found(v, group_id))

    async def _group_list(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        """0.11.7 sorts by id, ignores ``order`` and returns [] for any ``after`` (as captured); later versions page."""
        q = request.query
        with self._lock:
            groups = list(self._groups.values())
        if "manager_type" in q:
            groups = [g for g in groups if g.manager_type == q["manager_type"]]
        items = [self._group_obj(v, g) for g in groups]
        limit = S.to_int(q.get("limit"), 50)
        if v == "0.11.7":
            items = [] if "after" in q else sorted(items, key=lambda g: g["id"])
            return self._json(v, 200, S.page_objects(items, limit=limit, before=q.get("before"), after=None,
                                                     descending=False))
        page = S.page_objects(items, limit=limit, before=q.get("before"), after=q.get("after"),
                              descending=q.get("order") == "desc")
        return self._json(v, 200, page)

    async def _group_count(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        with self._lock:
            return self._json(v, 200, len(self._groups))

    async def _group_get(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        err = self._group_check(v, p["group_id"])
        if err is not None:
            return err
        with self._lock:
            group = self._groups[p["group_id"]]
        return self._json(v, 200, self._group_obj(v, group))

    async def _group_history(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        """0.11.7: merged member history for round_robin, 500 otherwise; 0.16.4: 500; 0.16.8: []."""
        gid = p["group_id"]
        if v == "0.12.1":  # not captured; assumed as broken as the send route
            return self._json(v, 500, INTERNAL_ERROR)
        err = self._group_check(v, gid)
        if err is not None:
            return err
        if v == "0.16.4":
            return self._json(v, 500, S.body(v, "groups-history-round_robin"))
        if v == "0.16.8":
            return self._json(v, 200, [])
        with self._lock:
            group = self._groups[gid]
            stored = sorted((s for items in self._hist.values() for s in items if s.group_id == gid),
                            key=lambda s: s.seq)
            entries = [copy.deepcopy(s.msg) for s in stored]
        if group.manager_type != "round_robin":
            return self._json(v, 500, INTERNAL_ERROR)
        q = request.query
        page = S.page_messages(entries, limit=S.to_int(q.get("limit"), 10), before=q.get("before"),
                               after=q.get("after"), newest=False)
        return self._json(v, 200, page)

    async def _group_send(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        """Group send per version: 0.11.7 runs it; 0.12.1 always 500; 0.16.4 validates, then 500.

        0.16.8 never gets here: it has no POST route, so the router answers 405.
        """
        gid = p["group_id"]
        failed = S.capture(v, "groups-send-round_robin")["response"]
        if v == "0.12.1":
            return self._json(v, failed["status"], failed["body"])
        if v == "0.16.4" and not re.fullmatch(S.GROUP_ID_RE, gid):
            return self._group_check(v, gid) or self._json(v, 500, INTERNAL_ERROR)  # 422: path pattern first
        msgs, bad = R.parse_send(v, rec.raw)
        if msgs is None:
            return self._json(v, 422, bad)
        err = self._group_check(v, gid)  # 0.11.7 answers 404 'Group not found' for malformed ids too
        if err is not None:
            return err
        if v == "0.16.4":
            return self._json(v, failed["status"], failed["body"])
        with self._lock:
            group = copy.deepcopy(self._groups[gid])
        text = S.joined_text(msgs)
        first = msgs[0] if msgs else {}
        otid, name = first.get("otid"), first.get("name")
        runner = G.GROUP_RUNNERS.get(group.manager_type, G.run_round_robin)
        try:
            out, steps = await runner(self, SHAPES[v], group, msgs, text, otid, name)
        except G.NoSpeaker:
            no_speaker = S.capture("0.11.7", "groups-send-dynamic-no-otid")["response"]
            return self._json(v, no_speaker["status"], no_speaker["body"])
        visible = [{**m, "step_id": None, "run_id": None} for m in copy.deepcopy(out)]  # 0.11.7 nulls both
        return self._json(v, 200, SHAPES[v].response(visible, steps))
