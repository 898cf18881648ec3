"""`channels list` on the command line: each binding with its runner as set and as it resolves now (the server's
version asked once per server), and a managed group's manager as the group's record names it."""

from __future__ import annotations

import asyncio
import dataclasses

from bridge.cli_ids import CliError, served_as
from bridge.config import Settings
from bridge.domain import Binding
from bridge.pattern_words import manager_role
from bridge.store import Store
from bridge.store.database_url import database_name


def describe(binding: Binding) -> str:
    """A binding as the command line shows it: the target, its pattern and manager, its members."""
    t = binding.target
    manager = f" {manager_role(t)} {t.manager.name}" if t.manager is not None else ""
    pattern = f" [{t.manager_type}{manager}]" if t.manager_type else ""
    return f"{t.ref}{pattern} ({', '.join(a.name for a in t.agents)})"


async def list_channels(store: Store, settings: Settings, team: str | None) -> int:
    """The table `channels list` prints, under the database it read (whose file or host an operator checks)."""
    bindings = await store.list_bindings(team)
    print(f"database: {database_name(settings.database_url)}")
    if not bindings:
        print("no channels are connected yet: python -m bridge channels connect <channel> <group-id>")
        return 0
    runners, bindings = await runner_uses(settings, bindings)
    width = max(len("runner"), *(len(r) for r in runners))
    print(f"{'workspace':<12} {'channel':<12} {'runner':<{width}} {'bound by':<10} {'bound at':<17} target")
    for b, runner in zip(bindings, runners, strict=True):
        when = b.bound_at.strftime("%Y-%m-%d %H:%M")
        print(f"{b.team_id:<12} {b.channel_id:<12} {runner:<{width}} {b.bound_by:<10} {when:<17} {describe(b)}")
    return 0


async def runner_uses(settings: Settings, bindings: list[Binding]) -> tuple[list[str], list[Binding]]:
    """Each binding's runner setting and what it resolves to now (the server's version asked once, if needed), and
    each binding with a managed Letta group's manager as its record names it (the store keeps its members only;
    a lookup that fails leaves the binding as saved)."""
    from bridge.clients import letta_client, letta_kind
    from bridge.letta.chooser import resolve
    from bridge.letta.client import LettaClient
    from bridge.letta.errors import LettaError
    from bridge.letta.groups import as_recorded
    from bridge.letta.patterns import MANAGED

    clients: dict[str, LettaClient] = {}  # by server: in OAuth mode a workspace may have its own
    versions: dict[str, str | None] = {}
    workspaces: dict[str, Settings | None] = {}

    async def client_for(team: str) -> LettaClient | None:
        if team not in workspaces:
            try:
                workspaces[team] = await served_as(settings, team)
            except CliError:
                workspaces[team] = None  # a workspace that is gone: "not known now"
        served = workspaces[team]
        if served is None:
            return None
        if served.letta_base_url not in clients:
            kind = await letta_kind(served, lookups=True)
            clients[served.letta_base_url] = letta_client(served, kind=kind, lookups=True)
        return clients[served.letta_base_url]

    async def version_of(client: LettaClient) -> str | None:
        if client.base_url not in versions:
            versions[client.base_url] = None
            try:
                versions[client.base_url] = (await client.health()).version
            except LettaError:
                pass  # said as "not known now"
        return versions[client.base_url]

    async def shown(b: Binding, client: LettaClient) -> Binding:
        t = b.target
        try:
            return dataclasses.replace(b, target=await as_recorded(client, t))
        except LettaError:
            return b

    uses: list[str] = []
    listed = list(bindings)
    managers: dict[int, LettaClient] = {}  # each managed group's binding, by its place, and its server's client
    try:
        for i, b in enumerate(bindings):
            use = resolve(b, settings.letta_group_runner, None)
            managed = b.target.kind == "group" and b.target.manager_type in MANAGED and b.target.manager is None
            client = await client_for(b.team_id) if use.used is None or managed else None
            if use.used is None:
                version = await version_of(client) if client is not None else None
                use = resolve(b, settings.letta_group_runner, version)
            uses.append(str(use))
            if managed and client is not None:
                managers[i] = client
        try:  # all at once, within one LETTA_LOOKUP_TIMEOUT: a server that does not answer costs it once
            async with asyncio.timeout(settings.letta_lookup_timeout):
                found = await asyncio.gather(*(shown(bindings[i], c) for i, c in managers.items()))
            for i, b in zip(managers, found, strict=True):
                listed[i] = b
        except TimeoutError:
            pass  # the groups as saved
    finally:
        for client in clients.values():
            await client.aclose()
    return uses, listed
