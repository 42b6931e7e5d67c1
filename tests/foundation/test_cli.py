"""The CLI skeleton: exit codes, one-line errors, --json on stdout only, and the import fence."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dogbreed.cli.app import app, run
from tests.conftest import dogbreed_cli

HEAVY = ("torch", "torchvision", "sagemaker", "boto3", "botocore", "optuna", "matplotlib")


def test_help_imports_none_of_the_heavy_libraries():
    code = (
        "import sys\n"
        "from dogbreed.cli.app import run\n"
        "try:\n    run(['--help'])\nexcept SystemExit:\n    pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


@pytest.mark.parametrize("command", ["ingest", "tune", "train", "report", "deploy", "predict", "teardown", "status"])
def test_every_command_has_the_shared_options(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    for flag in ("--config", "--set", "--backend", "--json"):
        assert flag in result.output


def test_console_script_and_module_entry_point_run():
    result = dogbreed_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("dogbreed ")
    module = subprocess.run([sys.executable, "-m", "dogbreed", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout == result.stdout


def test_config_error_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    result = dogbreed_cli("config", "show", "-c", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and "train.epoch" in lines[0] and "'epochs'" in lines[0]


def test_usage_error_exit_2():
    result = dogbreed_cli("train", "--no-such-flag")
    assert result.returncode == 2
    assert "--no-such-flag" in result.stderr


def test_config_show_json_is_one_document_and_schema_is_json_schema():
    result = dogbreed_cli("config", "show", "--json", "--set", "train.lr=0.02", "--backend", "sagemaker")
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert document["train"]["lr"] == 0.02 and document["backend"] == "sagemaker"
    schema = json.loads(dogbreed_cli("config", "schema").stdout)
    train = schema["$defs"]["TrainConfig"]
    assert train["additionalProperties"] is False
    assert "description" in train["properties"]["lr"]


def test_unexpected_errors_are_one_line_and_verbose_shows_the_traceback(monkeypatch, capsys):
    from dogbreed.cli import session

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(session, "load_config", boom)
    assert run(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: disk on fire" in err and "second line" not in err and "Traceback" not in err
    assert run(["config", "show", "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_config_file_in_another_folder_names_its_missing_path(tmp_path):
    folder = tmp_path / "other" / "dir"
    folder.mkdir(parents=True)
    (folder / "local.yaml").write_text("workspace: state\ndata:\n  source: dogs\n")
    result = dogbreed_cli("ingest", "-c", "other/dir/local.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: other/dir/local.yaml: data.source: {folder / 'dogs'} not found (relative paths in a config file "
        "are read from the file's folder); fix the path"
    ]
    shown = json.loads(dogbreed_cli("config", "show", "-c", "other/dir/local.yaml", "--json", cwd=tmp_path).stdout)
    assert shown["workspace"] == str(folder / "state")
