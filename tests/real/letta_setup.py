"""Agents and groups on a real Letta server, made as the reference captures made them (explicit llm_config and
embedding_config pointing at the fake LLM; a persona that names the agent)."""

from __future__ import annotations

from typing import Any

import httpx


def llm_config(version: str, llm_url: str) -> dict[str, Any]:
    config: dict[str, Any] = {"model": "gpt-4-turbo", "model_endpoint_type": "openai", "model_endpoint": llm_url,
                              "context_window": 8192}
    if version.startswith("0.11"):
        config["put_inner_thoughts_in_kwargs"] = True
    return config


def embedding_config(llm_url: str) -> dict[str, Any]:
    return {"embedding_endpoint_type": "openai", "embedding_endpoint": llm_url,
            "embedding_model": "text-embedding-3-small", "embedding_dim": 1536, "embedding_chunk_size": 300}


class Setup:
    def __init__(self, base_url: str, version: str, llm_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120)
        self.version = version
        self.llm_url = llm_url

    def agent(self, name: str) -> str:
        body = {"name": name, "llm_config": llm_config(self.version, self.llm_url),
                "embedding_config": embedding_config(self.llm_url),
                "memory_blocks": [{"label": "persona", "value": f"My name is {name}. I am a friendly test agent."},
                                  {"label": "human", "value": "The human is a Slack user."}],
                "tags": ["slack-bridge-real"]}
        answer = self.http.post("/v1/agents/", json=body)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def group(self, agent_ids: list[str], manager_type: str = "round_robin", manager: str | None = None,
              description: str = "", **extra: Any) -> str:
        config: dict[str, Any] = {"manager_type": manager_type, **extra}
        if manager:
            config["manager_agent_id"] = manager
        answer = self.http.post("/v1/groups/", json={"agent_ids": agent_ids, "description": description or manager_type,
                                                     "manager_config": config})
        answer.raise_for_status()
        return str(answer.json()["id"])

    def history(self, agent_id: str) -> list[dict[str, Any]]:
        """Every message in the agent's history (all of its threads), oldest first."""
        out: list[dict[str, Any]] = []
        before: str | None = None
        for _ in range(50):
            params: dict[str, Any] = {"limit": 100}
            if before:
                params["before"] = before
            page = self.http.get(f"/v1/agents/{agent_id}/messages", params=params).json()
            if not page:
                break
            out = [*page, *out]
            if len(page) < 100:
                break
            before = page[0]["id"]
        return out

    def user_messages_with(self, agent_id: str, text: str) -> int:
        """How many user messages in the agent's real history carry `text` (a mention's text)."""
        count = 0
        for message in self.history(agent_id):
            if message.get("message_type") != "user_message":
                continue
            content = message.get("content")
            body = content if isinstance(content, str) else " ".join(
                str(p.get("text", "")) for p in content or [] if isinstance(p, dict))
            if text in body:
                count += 1
        return count
