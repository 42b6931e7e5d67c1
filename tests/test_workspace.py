"""The workspace folder: a path that cannot hold it is one line naming what is in the way."""

from __future__ import annotations

import pytest

from dogbreed.errors import ConfigError
from dogbreed.workspace import Workspace
from tests.conftest import dogbreed_cli


@pytest.mark.parametrize("below", ["", "sub/deeper"])
def test_a_workspace_that_is_a_file_or_under_one_names_the_file(tmp_path, below):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    root = blocker / below if below else blocker
    with pytest.raises(ConfigError, match=f"{blocker} is a file, not a folder; set `workspace`"):
        Workspace(root).ledger  # noqa: B018 - the property makes the folder
    with pytest.raises(ConfigError, match=f"{blocker} is a file"):
        Workspace(root).reports()
    assert blocker.read_text() == "not a folder"


def test_a_file_where_a_workspace_folder_goes_is_named(tmp_path):
    (tmp_path / "downloads").write_text("x")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'downloads'} is a file, not a folder"):
        Workspace(tmp_path).downloads()


def test_the_cli_says_it_in_one_line_exit_2(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = dogbreed_cli("status", "--set", f"workspace={blocker}")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: workspace {blocker}: {blocker} is a file, not a folder")
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
