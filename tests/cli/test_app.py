"""The CLI skeleton: exit codes, one-line errors, --json on stdout only, and the import fence."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dogbreed.cli.app import app, hoist_common_options, run, wants_traceback
from tests.conftest import dogbreed_cli

REPO = Path(__file__).resolve().parents[2]
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


@pytest.mark.parametrize("argv", [[], ["config"]])
def test_a_command_given_nothing_shows_its_help_as_it_is(argv, capsys):
    # Click raises the help as a usage error; it used to be flattened into one "error:" line.
    code = run(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("Usage: dogbreed") and "error:" not in err
    assert "\nCommands:\n" in err and len(err.splitlines()) > 8


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
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr("dogbreed.config.load_config", boom)  # session imports it when a command starts
    assert run(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: disk on fire" in err and "second line" not in err and "Traceback" not in err
    assert run(["config", "show", "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err


def _real_error(action):
    try:
        action()
    except OSError as exc:
        return exc
    raise AssertionError("no error")


def test_what_the_file_system_refuses_is_one_line_naming_the_file_and_what_to_do(tmp_path, monkeypatch, capsys):
    """A full disk, a file size limit, a read-only folder or a file where a folder should be
    met anywhere (a job's folder, a cache, a report) said `unexpected OSError`."""
    (tmp_path / "jobs").write_text("a file where the jobs folder goes")
    not_a_folder = _real_error(lambda: (tmp_path / "jobs" / "j1" / "status.json").write_text("{}"))
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "cache.pt"))
    too_big = OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(tmp_path / "model.tar.gz"))
    cases = [
        (not_a_folder, f"{tmp_path / 'jobs'} is a file where a folder is needed; move it away"),
        (full, f"{tmp_path / 'cache.pt'}: No space left on device; the disk is full"),
        (too_big, f"{tmp_path / 'model.tar.gz'}: File too large; the file size limit (ulimit -f)"),
    ]
    for error, said in cases:

        def refuse(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr("dogbreed.config.load_config", refuse)
        assert run(["config", "show"]) == 1
        err = capsys.readouterr().err
        assert said in " ".join(err.split()) and "unexpected" not in err and len(err.strip().splitlines()) <= 2


def test_a_stray_eof_error_is_unexpected_not_aborted(monkeypatch, capsys):
    # typer wraps an EOFError escaping a command in Abort: it was reported as Ctrl-C (130).
    def truncated(*args, **kwargs):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr("dogbreed.config.load_config", truncated)
    assert run(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert "error: unexpected EOFError: Compressed file ended" in err and "aborted" not in err


def test_end_of_input_at_a_prompt_is_still_aborted(monkeypatch, capsys):
    import io

    import typer

    def ask(*args, **kwargs):
        typer.confirm("go on?", default=False)

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # Ctrl-D: input() raises EOFError
    monkeypatch.setattr("dogbreed.config.load_config", ask)
    assert run(["config", "show"]) == 130
    assert "error: aborted" in capsys.readouterr().err


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


# What help must not load: the heavy libraries of the commands, and what typer's rich help
# pulls in (markdown-it, pygments, attrs via rich.pretty). `dogbreed --help` loads no pydantic
# or PyYAML either (the config's); a command's help does load pydantic, through typer itself
# (0.29 coerces the root group's parameters with pydantic TypeAdapters), not through us.
NOT_FOR_HELP = (
    "torch", "torchvision", "numpy", "PIL", "boto3", "botocore", "sagemaker", "optuna", "psutil",
    "rich.console", "typer.rich_utils", "rich.markdown", "rich.traceback", "rich.syntax", "rich.pretty", "markdown_it", "pygments", "attr",
)  # fmt: skip
NOT_FOR_TOP_HELP = ("pydantic", "pydantic_core", "yaml", *NOT_FOR_HELP)


@pytest.mark.parametrize(
    ("argv", "forbidden"),
    [(["--help"], NOT_FOR_TOP_HELP), (["train", "--help"], NOT_FOR_HELP), (["config", "--help"], NOT_FOR_HELP)],
)
def test_help_imports_none_of_the_heavy_modules(argv, forbidden):
    """An import probe, not a timer: pydantic and PyYAML load only when a command reads its
    config, the heavy libraries only in commands, and help is typer's plain one."""
    code = (
        "import sys\n"
        "from dogbreed.cli.app import run\n"
        f"run({argv!r})\n"
        f"print('LOADED=' + ','.join(m for m in {forbidden!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout and out.stdout.strip().splitlines()[-1] == "LOADED="


@pytest.mark.parametrize(
    "command",
    [["ingest"], ["tune"], ["train"], ["report"], ["deploy"], ["predict"], ["teardown"], ["status"], ["config", "show"]],
)
def test_every_command_shows_an_example(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    example = [line.strip() for line in result.output.splitlines() if line.strip().startswith("Example: ")]
    assert example and example[0].startswith(f"Example: dogbreed {' '.join(command)}")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-c", "x.yaml", "train"], ["train", "-c", "x.yaml"]),
        (["--json", "--set", "a.b=1", "-v", "status", "--all"], ["status", "--json", "--set", "a.b=1", "-v", "--all"]),
        (
            ["--config=x.yaml", "--backend", "local", "config", "show"],
            ["config", "show", "--config=x.yaml", "--backend", "local"],
        ),
        (["train", "-c", "x.yaml"], ["train", "-c", "x.yaml"]),
        (["--version"], ["--version"]),
        (["-c", "x.yaml"], ["-c", "x.yaml"]),  # no command: left to the usage error and its hint
    ],
)
def test_common_options_before_the_command_move_after_it(argv, expected):
    assert hoist_common_options(argv) == expected


def test_common_options_before_the_command_work_or_get_a_hint(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.5\n")
    before = dogbreed_cli("-c", "c.yaml", "--json", "config", "show", "--set", "train.epochs=3", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert (json.loads(before.stdout)["train"]["lr"], json.loads(before.stdout)["train"]["epochs"]) == (0.5, 3)
    alone = dogbreed_cli("-c", "c.yaml", cwd=tmp_path)
    assert alone.returncode == 2
    assert "-c needs a command to go with, e.g. dogbreed train -c c.yaml" in alone.stderr


def test_completion_is_offered():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in result.output and "--show-completion" in result.output


def test_package_metadata_is_publishable():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert any(c.startswith("Operating System :: MacOS") for c in project["classifiers"])
    torch = [d for d in project["dependencies"] if d.split(">")[0].split("<")[0].split("=")[0] in ("torch", "torchvision")]
    assert len(torch) == 2 and not any("<" in d or "==" in d for d in torch)  # this machine's pin lives in the Makefile
    assert "torch==" in (REPO / "Makefile").read_text()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "-v"], True),
        (["status", "--json", "--debug"], True),
        (["train", "--set", "-v"], False),  # the value of --set, not the flag
        (["predict", "--", "-v"], False),  # after `--`: an argument
        (["train", "--name", "x"], False),
    ],
)
def test_the_traceback_flag_is_read_from_the_command_line(argv, expected):
    assert wants_traceback(argv) is expected


def test_a_machine_with_no_aws_setup_gets_what_to_set_not_unexpected(tmp_path):
    from tests.conftest import error_line

    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true")  # no IMDS lookups: 127.0.0.1 only
    args = ("status", "--backend", "sagemaker", "--set", "sagemaker.region=us-east-1", "--set", f"workspace={tmp_path / 'ws'}")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dogbreed"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    line = error_line(done.stderr)
    assert line.startswith("error: AWS: Unable to locate credentials; set sagemaker.profile") and "unexpected" not in line
    profile = dogbreed_cli(*args, "--set", "sagemaker.profile=nope", env={"HOME": str(tmp_path)})
    assert "AWS: The config profile (nope) could not be found; set sagemaker.profile" in error_line(profile.stderr)
