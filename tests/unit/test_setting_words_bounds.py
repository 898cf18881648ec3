"""Settings errors as an admin reads them (revBS): a large bound said as a whole number, not `5e+07`; a channel's
or person's name refused where an id is wanted, not taken for one."""

from __future__ import annotations

import pytest

from bridge.config_load import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("BRIDGE_CONFIG", "FILE_MAX_BYTES", "LETTA_BASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))


@pytest.mark.parametrize("value", ["0", "60000000"])
def test_file_max_bytes_bounds_are_said_as_whole_numbers(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FILE_MAX_BYTES", value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    [line] = err.value.lines
    assert line == f"FILE_MAX_BYTES must be a whole number from 1 to 50000000; got '{value}'", line


@pytest.mark.parametrize(("variable", "name"), [
    ("SLACK_SHOW_REASONING_EXCEPT", "general"),
    ("LETTA_CONVERSATIONS_EXCEPT", "design"),
    ("SLACK_THREAD_FOLLOW_UPS_EXCEPT", "customers"),
    ("SLACK_CONFIGURE_USERS", "will"),
    ("SLACK_APPROVE_USERS", "wendy"),
    ("SLACK_CONFIGURE_USERS", "Will"),
    ("LETTA_TOOLS_EXCEPT", "Design"),
    # revBT: a name with a digit (a handle, a numbered channel) passed, upper-cased
    ("SLACK_CONFIGURE_USERS", "will2"),
    ("SLACK_APPROVE_USERS", "wendy99"),
    ("SLACK_THREAD_FOLLOW_UPS_EXCEPT", "general2"),
    ("LETTA_TOOLS_EXCEPT", "dev2"),
])
def test_a_channel_or_person_s_name_is_refused_not_taken_for_an_id(
    monkeypatch: pytest.MonkeyPatch, variable: str, name: str
) -> None:
    """config.example.toml: these take ids, and a name is refused at start (a name matches nobody, silently).
    `#general` is refused, but `general` passes as the channel id GENERAL (a G id), `will` as the member id WILL."""
    monkeypatch.setenv(variable, name)
    try:
        taken = getattr(load_settings(), variable.lower())
    except SettingsError as err:
        said = f"{name} is taken for a name, not a Slack"
        assert any(variable in line and said in line for line in err.lines), err.lines
        return
    pytest.fail(f"{variable}={name} was taken as {taken}")


@pytest.mark.parametrize(("variable", "value", "taken"), [
    ("SLACK_CONFIGURE_USERS", "u0123abcd", ("U0123ABCD",)),  # lower-cased, as the docs allow
    ("SLACK_CONFIGURE_USERS", "<@U0123ABCD|will>", ("U0123ABCD",)),  # a copied mention
    ("LETTA_TOOLS_EXCEPT", "c0123abcd", ("C0123ABCD",)),
    ("LETTA_TOOLS_EXCEPT", "CABCDEFGH", ("CABCDEFGH",)),  # in capitals, as Slack shows ids: taken as given
])
def test_ids_as_people_paste_them_are_still_taken(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, taken: tuple[str, ...]
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), variable.lower()) == taken


def test_an_older_id_written_in_small_letters_is_refused_with_how_to_write_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """revBY: an id issued before Slack's U0…/C0… ones (ULJ2T7LGP) written in small letters cannot be told from a
    name: refused, with words that say to write it as Slack shows it; in capitals it is taken."""
    monkeypatch.setenv("SLACK_CONFIGURE_USERS", "ulj2t7lgp")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert any("ulj2t7lgp" in line and "as Slack shows it, in capitals" in line for line in err.value.lines)
    monkeypatch.setenv("SLACK_CONFIGURE_USERS", "ULJ2T7LGP")
    assert load_settings().slack_configure_users == ("ULJ2T7LGP",)
