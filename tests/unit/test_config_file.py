"""bridge/config_file.py earlier_settings: what `init` keeps of the config file it replaces."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bridge.config_file import earlier_settings


def test_earlier_settings_keeps_what_init_does_not_decide_as_toml(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text(
        'slack_bot_token = "xoxb-old"\ndatabase_url = "sqlite:///data/b\\"d.db"\nslack_follow_ups = false\n'
        'max_concurrent_turns = 32\nslack_configure_users = ["U01", "U02"]\n'
        '[slack_agents.alice]\ndisplay_name = "Alice (research)"\n[slack_agents."Research \\"Bot\\""]\n'
        'icon_emoji = ":owl:"\n[slack_agents.empty]\n'
    )
    kept, lost = earlier_settings(file, {"slack_bot_token"})
    assert lost == []
    assert tomllib.loads("\n".join(f"{k} = {v}" for k, v in kept.items())) == {
        "database_url": 'sqlite:///data/b"d.db',
        "slack_follow_ups": False,
        "max_concurrent_turns": 32,
        "slack_configure_users": ["U01", "U02"],
        # revBS: a table (each agent's look) was dropped, named among the settings not kept
        "slack_agents": {
            "alice": {"display_name": "Alice (research)"}, 'Research "Bot"': {"icon_emoji": ":owl:"}, "empty": {}
        },
    }


def test_earlier_settings_of_no_file_or_a_file_that_is_no_toml(tmp_path: Path) -> None:
    assert earlier_settings(tmp_path / "none.toml", set()) == ({}, [])
    broken = tmp_path / "config.toml"
    broken.write_text("this is = = not toml\n")
    assert earlier_settings(broken, set()) == ({}, [f"{broken} (not readable as TOML)"])
