"""`belle admin create-team` and `create_team` refuse a name the teams table or a reader cannot use."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from belle_cli.commands.admin import app
from belle_shared.teams import MAX_TEAM_NAME, InvalidTeamName, check_team_name

BAD = ["", "   ", "x" * (MAX_TEAM_NAME + 1), "a\x00b", "tab\there", "new\nline", " lead", "trail ", "rtl\u202eeve"]


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidTeamName):
        check_team_name(name)


@pytest.mark.parametrize("name", ["a", "x" * MAX_TEAM_NAME, "研究 组-2", "team.one_2"])
def test_good_names_pass(name):
    assert check_team_name(name) == name


@pytest.mark.parametrize("name", ["   ", "x" * 300, "a\x01b"])
def test_the_cli_says_why_before_touching_the_database(name, tmp_path):
    result = CliRunner().invoke(app, ["create-team", name, "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "error:" in result.output and "team name" in result.output
    assert not (tmp_path / "none").exists()
