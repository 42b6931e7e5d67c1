"""`predict` and `transform` send the same request for the same photo (serving/upload.py), so
a photo too large to send as it is gets the same answer from both, through the real console
script: a live local endpoint for predict, the in-process handler for transform.

The photos are small to make but too large to send: noise that no compression shrinks under
6 MB, and a flat photo of more pixels than the handler decodes (Pillow warns about it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from dogbreed.config import load_config
from dogbreed.ledger import Ledger
from dogbreed.serving.limits import MAX_PAYLOAD_BYTES
from dogbreed.serving.upload import MAX_PIXELS, prepare
from dogbreed.workflows.transform import build_request
from tests.conftest import dogbreed_cli

pytestmark = pytest.mark.usefixtures("no_server_left")


def _photos(folder: Path, predict_dir: Path) -> Path:
    folder.mkdir()
    shutil.copy(predict_dir / "Beagle_01141.jpg", folder / "beagle.jpg")  # sent as it is
    # A format the endpoint does not decode (ingest takes it, so models are trained on it):
    # the client converts it, and the same pixels get the JPEG's answer.
    with Image.open(folder / "beagle.jpg") as beagle:
        beagle.save(folder / "beagle.tif")
    # macOS's AppleDouble junk beside a photo: hidden, no image, left out as ingest leaves it.
    (folder / "._beagle.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(40))
    # Noise, stored uncompressed: 1500x1500x3 bytes, over the 6 MB payload limit.
    noise = Image.merge("RGB", [Image.effect_noise((1500, 1500), 100 + band) for band in range(3)])
    noise.save(folder / "noise.png", compress_level=0)
    assert (folder / "noise.png").stat().st_size > MAX_PAYLOAD_BYTES
    # Few bytes, too many pixels: the handler would refuse it ("downscale it before sending").
    wide = Image.new("L", (10_000, 9_000), 128)
    wide.paste(200, (2_000, 2_000, 6_000, 7_000))
    wide.save(folder / "wide.jpg", quality=80)
    assert 10_000 * 9_000 > MAX_PIXELS and (folder / "wide.jpg").stat().st_size < MAX_PAYLOAD_BYTES
    # Over the limit and no image: nothing can be made of it.
    (folder / "junk.jpg").write_bytes(b"\0" * (MAX_PAYLOAD_BYTES + 1))
    return folder


def _no_raw_warning(stderr: str) -> None:
    assert "Warning" not in stderr and "warnings.warn" not in stderr, stderr


# upload.py quiets Pillow's warning once per process; pytest restores the filters after each
# test, so here (not in the CLI runs, whose stderr is checked) it may show again.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_predict_and_transform_send_the_same_bytes_and_agree(tmp_path, model_tar, predict_dir):
    photos = _photos(tmp_path / "photos", predict_dir)
    Ledger(tmp_path / ".dogbreed" / "ledger.sqlite").record(
        "model", "train-1", "local", uri=str(model_tar), parent="train-1", meta={"training_job": "train-1"}
    )

    # The bytes: what transform reads for each photo is what predict's client sends.
    config = load_config(sets=[f"workspace={tmp_path / '.dogbreed'}"])
    request = build_request(config, Ledger(tmp_path / ".dogbreed" / "ledger.sqlite"), [str(photos)], tmp_path / "x.csv")
    items = {Path(item.image).name: item for item in request.images}
    assert sorted(items) == ["beagle.jpg", "beagle.tif", "junk.jpg", "noise.png", "wide.jpg"]
    for name in ("beagle.jpg", "beagle.tif", "noise.png", "wide.jpg"):
        sent = prepare(photos / name, MAX_PAYLOAD_BYTES, config.data.max_image_bytes)
        assert items[name].read() == sent.body, name
        assert sent.shrunk == (name != "beagle.jpg"), name
    with pytest.raises(ValueError, match="not an image Pillow can shrink"):
        items["junk.jpg"].read()

    deployed = dogbreed_cli("deploy", "--port", "0", "--ttl", "20m", "--json", cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    try:
        predicted = dogbreed_cli("predict", str(photos), "--top-k", "3", "--json", cwd=tmp_path)
    finally:
        down = dogbreed_cli("teardown", "--all", "--yes", "--json", cwd=tmp_path)
        assert down.returncode == 0, down.stderr
    scores = tmp_path / "scores.jsonl"
    transformed = dogbreed_cli("transform", str(photos), "-o", str(scores), "--top-k", "3", "--json", cwd=tmp_path)

    for run in (predicted, transformed):
        assert run.returncode == 1  # the junk, after everything else
        json.loads(run.stdout)  # exactly one JSON document
        _no_raw_warning(run.stderr)
    predictions = {Path(row["image"]).name: row for row in json.loads(predicted.stdout)["predictions"]}
    predict_errors = {Path(row["image"]).name: row["error"] for row in json.loads(predicted.stdout)["errors"]}
    rows = {Path(row["image"]).name: row for row in map(json.loads, scores.read_text().splitlines())}

    assert sorted(predictions) == ["beagle.jpg", "beagle.tif", "noise.png", "wide.jpg"]
    tif, jpg = predictions["beagle.tif"], predictions["beagle.jpg"]
    assert [t["label"] for t in tif["top"]] == [t["label"] for t in jpg["top"]]
    assert tif["top"][0]["probability"] == pytest.approx(jpg["top"][0]["probability"], abs=1e-4)
    for name, mine in predictions.items():
        theirs = rows[name]
        assert "error" not in theirs, theirs
        assert [t["label"] for t in mine["top"]] == [t["label"] for t in theirs["top"]], name
        for one, other in zip(mine["top"], theirs["top"]):
            assert one["probability"] == pytest.approx(other["probability"], abs=2e-6), name
        assert mine["dog_probability"] == pytest.approx(theirs["dog_probability"], abs=2e-6), name
        assert mine["is_dog"] == theirs["is_dog"]
    assert list(predict_errors) == ["junk.jpg"] and "not an image Pillow can shrink" in predict_errors["junk.jpg"]
    assert "not an image Pillow can shrink" in rows["junk.jpg"]["error"]
