"""The pure and client-side pieces: HTTP client over an injected transport, uploads under the
payload limit, safe model archives, image expansion, teardown selection, status costs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from dogbreed.backends import hourly_cost
from dogbreed.config import load_config
from dogbreed.errors import DogbreedError, NotFoundError
from dogbreed.ledger import Ledger
from dogbreed.serving import runtime_api
from dogbreed.serving.client import EndpointClient, HttpResponse
from dogbreed.serving.errors import EndpointUnavailableError, InvocationError
from dogbreed.serving.model_archive import prepare_model_dir
from dogbreed.serving.model_handler import Reply
from dogbreed.serving.upload import prepare
from dogbreed.workflows.deploy import resolve_model
from dogbreed.workflows.predict import expand_images
from dogbreed.workflows.teardown import select
from tests.serving.images import BEAGLE, encode, photo


class ScriptedTransport:
    """Answers from a list; records what was sent."""

    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[tuple] = []

    def request(self, method, url, headers, body, timeout):
        self.sent.append((method, url, dict(headers), body))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_client_sends_the_contract_headers_and_returns_the_body():
    transport = ScriptedTransport(HttpResponse(200, {}, b'{"predictions": []}'))
    client = EndpointClient("http://127.0.0.1:1234/", "ep", transport)
    assert client.invoke(b"jpeg", "image/jpeg", "application/json; top_k=2") == b'{"predictions": []}'
    assert transport.sent == [
        (
            "POST",
            "http://127.0.0.1:1234/invocations",
            {"Content-Type": "image/jpeg", "Accept": "application/json; top_k=2"},
            b"jpeg",
        )
    ]


def test_client_turns_answers_and_failures_into_typed_errors():
    refused = EndpointClient("http://127.0.0.1:1", "ep", ScriptedTransport(ConnectionRefusedError(111, "refused")))
    with pytest.raises(
        EndpointUnavailableError, match=r"endpoint ep at http://127.0.0.1:1 is not answering.*dogbreed deploy --endpoint ep"
    ):
        refused.invoke(b"x", "image/jpeg")
    bad = json.dumps({"error": "undecodable_image", "detail": "image 0 is not a readable image"}).encode()
    client = EndpointClient("http://h:1", "ep", ScriptedTransport(HttpResponse(400, {}, bad), TimeoutError()))
    with pytest.raises(InvocationError) as raised:
        client.invoke(b"x", "image/jpeg")
    assert (raised.value.status, raised.value.error) == (400, "undecodable_image")
    assert "image 0 is not a readable image (HTTP 400 undecodable_image)" in str(raised.value)
    with pytest.raises(InvocationError) as timed_out:
        client.invoke(b"x", "image/jpeg")
    assert timed_out.value.status == 504


def test_runtime_api_paths_and_model_error_shape():
    assert runtime_api.endpoint_in_path("/endpoints/my-ep/invocations") == "my-ep"
    assert runtime_api.endpoint_in_path("/endpoints/my%2Dep/invocations") == "my-ep"
    assert runtime_api.endpoint_in_path("/invocations") is None
    wrapped = runtime_api.model_error("ep", Reply.error(415, "unsupported_content_type", "send image/jpeg"))
    body = json.loads(wrapped.body)
    assert (wrapped.status, wrapped.headers["x-amzn-ErrorType"]) == (424, "ModelError")
    assert body["OriginalStatusCode"] == 415 and json.loads(body["OriginalMessage"])["detail"] == "send image/jpeg"


def test_small_files_go_as_they_are_with_a_sniffed_type(tmp_path):
    as_is = prepare(BEAGLE)
    assert (as_is.body, as_is.content_type, as_is.shrunk) == (BEAGLE.read_bytes(), "image/jpeg", False)
    misnamed = tmp_path / "really-a-png.jpg"
    misnamed.write_bytes(encode(photo(), "PNG"))
    assert prepare(misnamed).content_type == "image/png"


def test_big_files_are_shrunk_under_the_limit_and_kept_upright(tmp_path):
    # Noise does not compress: a 1600x1200 PNG of it is ~5.8 MB; limit it at 1 MB here.
    noise = Image.effect_noise((1600, 1200), 120).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees
    big = tmp_path / "big.jpg"
    big.write_bytes(encode(noise, "JPEG", quality=100, exif=exif.tobytes()))
    upload = prepare(big, limit=1_000_000)
    assert upload.shrunk and upload.content_type == "image/jpeg" and len(upload.body) <= 1_000_000
    width, height = Image.open(io.BytesIO(upload.body)).size
    assert height > width  # the orientation was applied before re-encoding
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\0" * 2_000_000)
    with pytest.raises(ValueError, match="not an image Pillow can shrink"):
        prepare(junk, limit=1_000_000)


def _tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize("evil", ["../escape.txt", "ABSOLUTE", "link"])
def test_unsafe_archive_entries_never_land_outside(tmp_path, evil):
    """PEP 706's data filter refuses `..` and links out, and re-roots absolute names inside."""
    outside = tmp_path / "escape.txt"
    if evil == "link":
        member = tarfile.TarInfo("code/link")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        entry = (member, None)
    else:
        entry = _file(str(outside) if evil == "ABSOLUTE" else evil)
    archive = _tar_with(tmp_path / "model.tar.gz", _file("model.pth"), entry)
    with pytest.raises(DogbreedError):
        prepare_model_dir(str(archive), tmp_path / "out" / "model")
    assert not outside.exists() and not (tmp_path / "out" / "escape.txt").exists()


def test_model_dirs_are_checked_and_s3_is_sent_to_the_right_backend(tmp_path, model_tar):
    extracted = prepare_model_dir(str(model_tar), tmp_path / "out")
    assert (extracted / "code" / "inference.py").is_file() and (extracted / "model.pth").is_file()
    incomplete = _tar_with(tmp_path / "incomplete.tar.gz", _file("model.pth"))
    with pytest.raises(DogbreedError, match="missing classes.json, hyperparameters.json, code/inference.py"):
        prepare_model_dir(str(incomplete), tmp_path / "out2")
    with pytest.raises(DogbreedError, match="--backend sagemaker"):
        prepare_model_dir("s3://bucket/model.tar.gz", tmp_path / "out3")
    with pytest.raises(NotFoundError):
        prepare_model_dir(str(tmp_path / "nothing.tar.gz"), tmp_path / "out4")


def test_expand_images_takes_files_folders_and_globs(tmp_path):
    (tmp_path / "a" / "deeper").mkdir(parents=True)
    for name in ("a/one.jpg", "a/deeper/two.PNG", "a/notes.txt", "three.jpeg"):
        (tmp_path / name).write_bytes(b"x")
    paths, errors = expand_images(
        [
            str(tmp_path / "a"),
            str(tmp_path / "*.jpeg"),
            str(tmp_path / "a" / "one.jpg"),
            str(tmp_path / "missing.jpg"),
            str(tmp_path / "*.gif"),
        ]
    )
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["a/deeper/two.PNG", "a/one.jpg", "three.jpeg"]
    assert [(Path(e["image"]).name, e["error"].split(" (")[0]) for e in errors] == [
        ("missing.jpg", "file not found"),
        ("*.gif", "no image files"),
    ]


def test_folders_leave_out_hidden_files_and_a_link_loop_says_what_it_is(tmp_path):
    """A folder copied from a Mac holds `._x.jpg` AppleDouble files (no image) beside each
    photo: ingest leaves them out, and so do predict and transform. A link loop given by
    name is a link loop, not a missing file."""
    (tmp_path / "photos" / ".cache").mkdir(parents=True)
    for name in ("photos/dog.JPG", "photos/._dog.JPG", "photos/.cache/thumb.jpg", "photos/scan.TIFF"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    paths, errors = expand_images([str(tmp_path / "photos"), str(tmp_path / "loop.jpg")])
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["photos/dog.JPG", "photos/scan.TIFF"]
    assert [(Path(e["image"]).name, e["error"]) for e in errors] == [
        ("loop.jpg", "a symbolic link whose target is missing or a loop; fix or remove the link")
    ]


def test_teardown_selects_only_ledger_endpoints_of_this_backend(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for name, backend, state in [
        ("old", "local", "deleted"),
        ("a", "local", "in-service"),
        ("b", "local", "gone"),
        ("sm", "sagemaker", "in-service"),
    ]:
        ledger.record("endpoint", name, backend, state=state)
    assert select(ledger, "local").targets == ["b"]  # the latest not yet deleted
    assert select(ledger, "local", all_=True).targets == ["a", "b"]
    named = select(ledger, "local", ["a", "old", "sm", "never"])
    assert (named.targets, named.not_found) == (["a"], ["old", "sm", "never"])


def test_cost_per_hour_comes_from_the_price_table(tmp_path):
    config = load_config(sets=["sagemaker.prices={ml.m5.large: 0.5, ml.g4dn.xlarge: 1.0}", "sagemaker.instance_count=2"])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    endpoint = ledger.record("endpoint", "e", "sagemaker", meta={"instance_type": "ml.m5.large"})
    job = ledger.record("training-job", "j", "sagemaker", state="InProgress")
    local = ledger.record("endpoint", "l", "local")
    assert (hourly_cost(config, endpoint), hourly_cost(config, job), hourly_cost(config, local)) == (0.5, 2.0, 0.0)


def test_latest_model_comes_from_the_ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with pytest.raises(NotFoundError, match="dogbreed train"):
        resolve_model(ledger, "latest")
    ledger.record("model", "train-1", "local", uri="/m/1.tar.gz", parent="train-1")
    ledger.record("model", "train-2", "local", uri="/m/2.tar.gz", parent="train-2")
    assert resolve_model(ledger, "latest") == ("/m/2.tar.gz", "train-2")
    assert resolve_model(ledger, "/given/model.tar.gz") == ("/given/model.tar.gz", None)


class ListingBackend:
    """A backend that can list what it runs (as the SageMaker backend does by tags)."""

    name = "sagemaker"

    def describe_endpoint(self, endpoint):
        from dogbreed.backends.base import EndpointInfo

        return EndpointInfo(name=endpoint, backend=self.name, state="in-service", instance_type="ml.m5.large")

    def list_resources(self):
        row = {"kind": "endpoint", "backend": "sagemaker", "created_at": None, "expires_at": None, "est_cost_per_hour": 0.1}
        return [
            {**row, "name": "a", "state": "in-service"},
            {**row, "name": "b", "state": "in-service"},
            {**row, "name": "c", "state": "gone"},
        ]


def test_status_checks_ledger_entries_and_adds_what_only_the_backend_knows(tmp_path):
    from dogbreed.workflows.status import status

    config = load_config(sets=["sagemaker.prices={ml.m5.large: 0.5}"])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.record("endpoint", "a", "sagemaker", state="creating")
    ledger.record("endpoint", "l", "local", state="in-service")
    rows = {r["name"]: r for r in status(config, ledger, {"sagemaker": ListingBackend()}).resources}
    assert sorted(rows) == ["a", "b", "l"]
    assert (rows["a"]["state"], rows["a"]["checked"], rows["a"]["est_cost_per_hour"]) == ("in-service", True, 0.5)
    assert ledger.get("endpoint", "a", "sagemaker").state == "in-service"  # corrected from what was seen
    assert rows["b"]["in_ledger"] is False
    assert (rows["l"]["state"], rows["l"]["checked"]) == ("in-service", False)  # other backend: from the ledger


def test_a_name_that_matches_nothing_suggests_the_closest_live_ones(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for name, state in [("dogbreed-demo", "in-service"), ("dogbreed-old", "deleted"), ("other", "in-service")]:
        ledger.record("endpoint", name, "local", state=state)
    plan = select(ledger, "local", ["dogbreed-dem0", "dogbreed-old", "zzz"])
    # An endpoint deleted earlier is done (not a typo); the other two match nothing.
    assert (plan.targets, plan.not_found) == ([], ["dogbreed-dem0", "dogbreed-old", "zzz"])
    assert plan.unknown == {"dogbreed-dem0": ["dogbreed-demo"], "zzz": []}
    message = str(plan.missing_error("local"))
    assert "endpoint dogbreed-dem0 matches no local endpoint; did you mean dogbreed-demo?" in message
    assert "endpoint zzz matches no local endpoint; live: dogbreed-demo, other" in message
    assert "--ignore-missing" in message
    assert select(ledger, "local", ["dogbreed-demo", "dogbreed-old"]).missing_error("local") is None


@pytest.mark.parametrize("kind", ["16-bit", "transparent"])
def test_a_photo_shrunk_to_fit_keeps_the_pixels_the_handler_would_see(kind):
    """Shrinking used convert("RGB"): a large 16-bit PNG became white, transparency black,
    where the handler (to_rgb) sees grey and white."""
    import numpy as np

    from dogbreed.serving.upload import fit

    if kind == "16-bit":
        image = Image.fromarray(np.full((300, 400), 32768, dtype=np.uint16))  # mid grey
        expected = 128
    else:
        image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))  # all transparent: white
        expected = 255
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)  # stored, so a JPEG of it is far smaller
    data = buffer.getvalue()
    sent = fit(data, limit=len(data) - 1)  # one byte over: shrunk to a JPEG
    assert sent.shrunk and sent.content_type == "image/jpeg"
    with Image.open(io.BytesIO(sent.body)) as shrunk:
        assert np.asarray(shrunk.convert("RGB")).mean() == pytest.approx(expected, abs=2)


def test_a_heic_photo_is_an_error_row_saying_to_convert_it(tmp_path):
    from dogbreed.serving.upload import fit

    (tmp_path / "phone").mkdir()
    heic = tmp_path / "phone" / "IMG_0001.HEIC"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    assert expand_images([str(tmp_path / "phone")])[0] == [heic]  # found, not silently left out
    with pytest.raises(ValueError, match=r"^a HEIC/HEIF photo, which Pillow here cannot decode; convert it to JPEG or PNG$"):
        fit(heic.read_bytes())
