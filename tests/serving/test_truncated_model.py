"""A model.tar.gz cut short (a copy that stopped, `head -c 20000`): deploy and transform say
which file and what is wrong in one line, exit 1, never click's "aborted" / 130 (gzip's
EOFError reached typer, which took it for Ctrl-D), and the endpoint already serving under
that name keeps serving. Real archives: the trained model_tar, truncated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dogbreed.errors import DogbreedError
from dogbreed.serving.model_archive import prepare_model_dir
from tests.conftest import dogbreed_cli
from tests.serving.test_cli_end_to_end import cli

pytestmark = pytest.mark.usefixtures("no_server_left")

DAMAGED = "the archive is truncated or corrupt"


def _truncated(model_tar: Path, folder: Path, size: int) -> Path:
    cut = folder / f"truncated-{size}.tar.gz"
    cut.write_bytes(model_tar.read_bytes()[:size])
    return cut


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("size", [100, 20_000, -100], ids=["in-the-first-header", "in-the-code", "in-the-trailer"])
def test_extracting_a_truncated_archive_names_it(tmp_path, model_tar, size):
    cut = _truncated(model_tar, tmp_path, size if size > 0 else model_tar.stat().st_size + size)
    with pytest.raises(DogbreedError, match=rf"{cut.name}: {DAMAGED} \((EOFError|BadGzipFile): .*\); train again"):
        prepare_model_dir(str(cut), tmp_path / "out")


def test_deploy_of_a_truncated_archive_is_one_line_and_the_endpoint_serves_on(tmp_path, model_tar, predict_dir):
    cut = _truncated(model_tar, tmp_path, 20_000)
    common = ["--endpoint", "dogbreed", "--port", "0", "--ttl", "20m", "--json"]
    good = cli(tmp_path, "deploy", "--model", str(model_tar), *common)
    assert good.returncode == 0, good.stderr
    url = json.loads(good.stdout)["url"]
    try:
        bad = cli(tmp_path, "deploy", "--model", str(cut), *common)
        assert bad.returncode == 1, bad.stderr
        line = _one_error_line(bad.stderr)
        assert line.startswith(f"error: model {cut}: {DAMAGED} (EOFError: Compressed file ended"), line
        assert line.endswith("train again or copy the complete model.tar.gz"), line
        photo = predict_dir / "Beagle_01141.jpg"
        predicted = cli(tmp_path, "predict", str(photo), "--endpoint", "dogbreed", "--json")
        assert predicted.returncode == 0, predicted.stderr
        assert json.loads(predicted.stdout)["predictions"][0]["top"][0]["label"].lower() == "beagle"
        assert json.loads(cli(tmp_path, "status", "--json").stdout)["resources"][0]["url"] == url
    finally:
        cli(tmp_path, "teardown", "--json")


def test_transform_with_a_truncated_archive_is_one_line(tmp_path, model_tar, predict_dir):
    cut = _truncated(model_tar, tmp_path, 20_000)
    run = dogbreed_cli(
        "transform", str(predict_dir / "Beagle_01141.jpg"), "-o", "s.csv", "--model", str(cut),
        "--set", f"workspace={tmp_path / 'ws'}", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    line = _one_error_line(run.stderr)
    assert f"{cut}: {DAMAGED} (EOFError" in line and "aborted" not in line, line
    assert not (tmp_path / "s.csv").exists()
