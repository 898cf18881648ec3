"""A days setting past a hundred years (FINISHED_TURNS_DAYS=1000000, written for "keep for ever" by an admin who
did not read that 0 means it) was taken at start, and then every hourly pass failed with
`could not delete old finished turns error=OverflowError`. Such a value is refused at start, in the usual words,
saying what keeps everything; the longest allowed runs its pass (review revFG)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.config import Settings
from bridge.config_load import SettingsError, load_settings
from bridge.pruner import Pruner, Timing
from bridge.store import Store
from tests.unit.test_retention import accepted
from tests.unit.test_store import run

REQUIRED = {
    "SLACK_BOT_TOKEN": "xoxb-1-2-3",
    "SLACK_SIGNING_SECRET": "0123456789abcdef",
    "LETTA_BASE_URL": "http://127.0.0.1:1",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.lower() in Settings.model_fields or name == "BRIDGE_CONFIG":
            monkeypatch.delenv(name)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'b.db'}")
    monkeypatch.chdir(tmp_path)


def refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> list[str]:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return caught.value.lines


def test_a_million_days_of_finished_turns_is_refused_at_start_saying_0_keeps_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The admin learns at start what keeps everything, instead of an error in the log every hour."""
    assert refused(monkeypatch, "FINISHED_TURNS_DAYS", "1000000") == [
        "FINISHED_TURNS_DAYS must be a whole number of days from 0 to 36500 (0 keeps everything); got '1000000'"
    ]


def test_uninstalled_bindings_days_past_a_hundred_years_is_refused_saying_how_to_keep_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """0 deletes an uninstalled workspace's bindings at the next pass: keeping them is UNINSTALLED_BINDINGS=keep."""
    assert refused(monkeypatch, "UNINSTALLED_BINDINGS_DAYS", "1e6") == [
        "UNINSTALLED_BINDINGS_DAYS must be a number of days from 0 to 36500"
        " (UNINSTALLED_BINDINGS=keep keeps the bindings); got '1e6'"
    ]


def test_a_config_files_days_past_a_hundred_years_is_refused_with_the_hint_spelled_as_the_file_spells_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """secKP: a config file's refused value got the environment's spelling, UNINSTALLED_BINDINGS=keep, which is no
    TOML, and "keeps them" with nothing named: the hint names the setting as the rest of the line does."""
    Path("config.toml").write_text("uninstalled_bindings_days = 1e6\nfinished_turns_days = 1000000\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.lines == [
        "config.toml: uninstalled_bindings_days must be a number of days from 0 to 36500"
        ' (uninstalled_bindings = "keep" keeps the bindings); got 1000000.0',
        "config.toml: finished_turns_days must be a whole number of days from 0 to 36500 (0 keeps everything);"
        " got 1000000",
    ]


def test_the_longest_retention_allowed_runs_its_hourly_pass_and_keeps_a_recent_turn(database_url: str) -> None:
    """36500 days reaches back to 1926: the pass's cutoff is a date, not an overflow."""
    days = Settings(finished_turns_days=36500).finished_turns_days

    async def body(store: Store) -> None:
        turn = await accepted(store, 1)
        await store.finish_turn(turn, "done")
        result = await Pruner(store, days, Timing(first_after=0.0, pause=0.0)).run_once()
        assert result.turns == 0

    run(database_url, body)
