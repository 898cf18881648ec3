"""The soak behind docs/guarantees.md's figures, small enough for CI's slow stage, on both runners and on Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.guarantees_report import soak
from tests.pg import PgServer

pytestmark = pytest.mark.slow  # soak, kill -9 or several processes: .ci/run's slow stage


@pytest.mark.parametrize("version", ["0.11.7", "0.16.8"])
def test_mentions_survive_duplicates_and_kills_exactly_once(version: str, tmp_path: Path) -> None:
    figures = soak(tmp_path, mentions=10, kills=2, version=version, seed=7)
    assert figures.kills == 2 and figures.duplicates > 0
    assert figures.unanswered == 0, figures.lines()
    assert figures.doubled == 0, figures.lines()
    assert figures.letta_turns == figures.expected_turns, figures.lines()


def test_the_soak_holds_on_postgres(pg_server: PgServer, tmp_path: Path) -> None:
    figures = soak(tmp_path, mentions=10, kills=2, version="0.16.8", seed=7, database_url=pg_server.create_database())
    assert figures.kills == 2 and figures.unanswered == 0 and figures.doubled == 0, figures.lines()
    assert figures.letta_turns == figures.expected_turns, figures.lines()
