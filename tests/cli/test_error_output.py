"""Error output that never breaks (#15 item 7): plain text, one line, and usage errors for
values that overflow, recurse or only look valid (exit 2, naming the key or flag)."""

from __future__ import annotations

import json

import pytest

from dogbreed.cli.app import run


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
@pytest.mark.parametrize("folder", ["photos [copy]", "[/x]", "[bold]x[/bold] [link=y]"])
def test_paths_with_brackets_are_printed_as_they_are(tmp_path, capsys, folder, json_flag):
    source = tmp_path / folder / "dogs"  # does not exist: the error line names it
    code, out, err = _run(capsys, "ingest", str(source), "--set", f"workspace={tmp_path / 'ws'}", *json_flag)
    assert code != 0
    assert out == ""
    assert "Traceback" not in err and "MarkupError" not in err and "unexpected" not in err
    assert str(source) in err
    assert len(err.strip().splitlines()) == 1


def test_control_characters_in_a_path_cannot_break_the_line_or_drive_the_terminal(tmp_path, capsys):
    source = tmp_path / "dogs\nerror: fake second line \x1b[31mred"
    code, _, err = _run(capsys, "ingest", str(source), "--set", f"workspace={tmp_path / 'ws'}")
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err
    assert "dogs\\nerror: fake second line \\x1b[31mred" in err


def test_a_deep_yaml_file_is_a_usage_error_naming_the_file(tmp_path, capsys):
    deep = tmp_path / "deep.yaml"
    deep.write_text("train:\n" + "a: " * 1 + "[" * 5000 + "]" * 5000 + "\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("".join(f"{' ' * depth}k{depth}:\n" for depth in range(60)) + " " * 60 + "v: 1\n")
    for path in (deep, nested):
        code, _, err = _run(capsys, "config", "show", "-c", str(path))
        assert code == 2, err
        assert str(path) in err and "Traceback" not in err and "unexpected" not in err


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("deploy.ttl=999999999999d", "deploy.ttl"),
        ("deploy.ttl=3000000d", "deploy.ttl"),
        ("sagemaker.max_run=99999999999999999999999h", "sagemaker.max_run"),
        ("train.lr=" + "1" * 5000, "train.lr"),
        ("train.lr=" + "1" * 4000, "train.lr"),
        ("train.seed=" + "9" * 30, "train.seed"),
        ("train.batch_size=true", "train.batch_size"),
        ("train.epochs=false", "train.epochs"),
        ("train.lr=true", "train.lr"),
        ("train.lr=" + "[" * 5000, "train.lr"),
    ],
)
def test_values_that_overflow_or_only_look_valid_are_usage_errors(capsys, setting, key):
    code, out, err = _run(capsys, "config", "show", "--json", "--set", setting)
    assert code == 2, err
    assert out == ""
    assert key in err and "unexpected" not in err
    line = err.strip()
    assert len(line.splitlines()) == 1 and len(line) < 400  # a 5,000-digit value is not echoed back


def test_a_huge_number_in_a_yaml_file_names_the_file(tmp_path, capsys):
    config = tmp_path / "big.yaml"
    config.write_text("train:\n  lr: " + "1" * 5000 + "\n")
    code, _, err = _run(capsys, "config", "show", "-c", str(config))
    assert code == 2 and str(config) in err and "unexpected" not in err


def test_a_bounded_ttl_still_reaches_deploy_without_overflow(capsys):
    from datetime import datetime, timezone

    from dogbreed.config import load_config
    from dogbreed.config.schema import MAX_DURATION, parse_duration

    config = load_config(sets=[f"deploy.ttl={MAX_DURATION.days}d"])
    assert datetime.now(timezone.utc) + parse_duration(config.deploy.ttl) > datetime.now(timezone.utc)


@pytest.mark.parametrize("command", ["train", "tune"])
@pytest.mark.parametrize("name", ["../x", "a/b", "x" * 200, "..", "a b"])
def test_bad_job_names_are_usage_errors_naming_the_flag(tmp_path, capsys, command, name):
    workspace = tmp_path / "ws"
    code, _, err = _run(capsys, command, "--name", name, "--dataset", str(tmp_path), "--set", f"workspace={workspace}")
    assert code == 2, err
    assert "--name" in err and "unexpected" not in err
    assert len(err.strip().splitlines()) == 1 and len(err) < 400
    assert not (tmp_path / "x").exists() and not (workspace / "jobs").exists()


def test_the_name_rule_says_what_it_checks():
    # SageMaker's own pattern allows repeated hyphens; the message used to say "single hyphens".
    from dogbreed.resource_names import InvalidNameError, check_name

    assert check_name("a--b") == "a--b"
    for bad in ("-a", "a-", "a_b"):
        with pytest.raises(InvalidNameError) as caught:
            check_name(bad, what="--name")
        message = str(caught.value)
        assert "single" not in message and "hyphens (not first or last)" in message


def _alias_bomb(levels: int = 9) -> str:
    """YAML whose last list stands for 9**levels strings through aliases: a few hundred bytes."""
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_not_walked_for_ever(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb())
    code, out, err = _run(capsys, "config", "show", "-c", str(bomb))
    assert code == 2, err
    assert out == "" and str(bomb) in err and "values" in err and len(err.strip().splitlines()) == 1
    inline = "[" + ", ".join(line.split(": ", 1)[1] for line in _alias_bomb(7).splitlines()) + "]"
    code, out, err = _run(capsys, "config", "show", "--set", f"train.lr={inline}")
    assert code == 2, err
    assert "--set train.lr" in err and "values" in err


def test_a_key_given_twice_in_a_yaml_file_names_both_lines(tmp_path, capsys):
    config = tmp_path / "twice.yaml"
    config.write_text("train:\n  lr: 0.001\n  epochs: 3\n  lr: 0.1\n")
    code, _, err = _run(capsys, "config", "show", "-c", str(config))
    assert code == 2, err
    assert f"{config}:4:" in err and "'lr' given twice, on lines 2 and 4" in err


def test_a_yaml_merge_may_still_override_what_it_merges(tmp_path, capsys):
    config = tmp_path / "merge.yaml"
    config.write_text("train:\n  <<: {lr: 0.001, epochs: 3}\n  lr: 0.002\n")
    code, out, err = _run(capsys, "config", "show", "--json", "-c", str(config))
    assert code == 0, err
    train = json.loads(out)["train"]
    assert train["lr"] == 0.002 and train["epochs"] == 3
