"""The feature cache: the right features, one key per what they depend on, and safe when
several trials fill the same cache at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from PIL import Image

from tests.source_dir.conftest import SOURCE_DIR

# Small crops of real photos keep the backbone cheap; the cache does not care about size.
RESIZE, CROP = 80, 64


def _key(breedkit, **changes):
    fields = {"dataset": "a" * 64, "arch": "mobilenet_v2", "weights": "none", "resize": RESIZE, "crop": CROP}
    return breedkit.feature_cache.CacheKey(**{**fields, **changes})


def test_key_changes_with_everything_the_features_depend_on(breedkit):
    import breedkit.feature_cache  # noqa: F401

    base = _key(breedkit)
    changed = [
        _key(breedkit, dataset="b" * 64),
        _key(breedkit, arch="resnet18"),
        _key(breedkit, weights="sha256:" + "0" * 64),
        _key(breedkit, resize=RESIZE + 1),
        _key(breedkit, crop=CROP + 1),
    ]
    digests = {base.digest(), *(k.digest() for k in changed)}
    assert len(digests) == 6
    assert base.digest() == _key(breedkit).digest()  # stable across processes: no hash()
    assert base.folder(SOURCE_DIR).name.startswith("mobilenet_v2-")


@pytest.mark.slow
def test_cached_features_are_the_backbone_of_the_eval_preset(breedkit, channel, imagenet_weights, tmp_path):
    from breedkit import data, feature_cache, models, presets

    index = data.load_index(channel)
    samples = index.splits["valid"]
    model = models.build_model("mobilenet_v2", 10, str(imagenet_weights))
    backbone, _ = models.split_backbone_head(model, "mobilenet_v2")
    key = _key(breedkit, dataset=index.identity, weights=models.weights_identity(str(imagenet_weights)))

    def extract():  # the same call both times: the second must find the first's files
        return feature_cache.load_or_extract(
            tmp_path,
            key,
            channel,
            {"valid": (samples, 3)},
            backbone,
            device=torch.device("cpu"),
            batch_size=4,
            num_workers=0,
        )

    got, report = extract()
    assert report.extracted_files == 3 and report.extracted_images == 30
    views = got["valid"].views
    assert views.shape == (3, 10, 1280) and views.dtype == torch.float32
    assert got["valid"].labels.tolist() == [s.index for s in samples]
    with Image.open(channel / samples[3].path) as image:
        x = presets.eval_transform(RESIZE, CROP)(presets.to_rgb(image)).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(views[0, 3], backbone.eval()(x)[0], rtol=1e-4, atol=1e-4)  # BN folded, activations fused
    assert not torch.allclose(views[1], views[0]) and not torch.allclose(views[2], views[1])  # augmented views
    again, report = extract()
    assert report.extracted_files == 0 and torch.equal(again["valid"].views, views)
    folder = key.folder(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock", "key.json", "valid.view0.pt", "valid.view1.pt", "valid.view2.pt",
    ]  # fmt: skip
    assert json.loads((folder / "key.json").read_text())["dataset"] == index.identity


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from breedkit import data, feature_cache, models
    cache, channel, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    index = data.load_index(channel)
    torch.manual_seed(0)
    backbone, _ = models.split_backbone_head(models.build_model("mobilenet_v2", 10, "none"), "mobilenet_v2")
    key = feature_cache.CacheKey(index.identity, "mobilenet_v2", "none", 80, 64)
    while not go.exists():  # start together, so the processes really race
        time.sleep(0.005)
    got, report = feature_cache.load_or_extract(
        cache, key, channel, {"valid": (index.splits["valid"], 2), "test": (index.splits["test"], 1)},
        backbone, device=torch.device("cpu"), batch_size=5, num_workers=0,
    )
    sums = [float(got[s].views.sum()) for s in ("valid", "test")]
    print(json.dumps({"extracted": report.extracted_files, "sum": sums}))
    """
)


@pytest.mark.slow
def test_concurrent_trials_share_one_extraction(tmp_path, channel):
    """Three processes ask for the same missing features at the same instant: one computes
    them under the lock, the others wait and read the finished files."""
    go = tmp_path / "go"
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(cache), str(channel), str(go)],
            cwd=SOURCE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(3)
    ]
    try:
        time.sleep(1.0)
        go.touch()
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(r["extracted"] for r in results) == [0, 0, 3]  # 2 valid views + 1 test view, once
    assert results[0]["sum"] == results[1]["sum"] == results[2]["sum"]
    (folder,) = cache.iterdir()
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # no partial files left


def _plain_features(backbone, channel, samples, transform, item_seed=None):
    """The reference: the unfused eager backbone, contiguous float32 tensors, the preset run
    per image with ToTensor and Normalize, as extraction did before it was made fast (#18)."""
    from breedkit import presets

    rows = []
    for i, sample in enumerate(samples):
        with Image.open(channel / sample.path) as image:
            rgb = presets.to_rgb(image)
        if item_seed is not None:
            torch.manual_seed(item_seed + i)
        rows.append(transform(rgb))
    with torch.no_grad():
        return backbone.eval()(torch.stack(rows).contiguous())


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 1])
def test_fast_extraction_equals_the_plain_contiguous_forward(breedkit, channel, imagenet_weights, tmp_path, num_workers):
    """Fused BatchNorm, channels_last, batched uint8 normalisation and overlapped decoding
    (in a thread, or worker processes) give the plain forward's numbers, for every view kind."""
    from breedkit import data, feature_cache, models, presets
    from torchvision import transforms

    index = data.load_index(channel)
    samples = index.splits["valid"]
    backbone, _ = models.split_backbone_head(models.build_model("mobilenet_v2", 10, str(imagenet_weights)), "mobilenet_v2")
    key = _key(breedkit, dataset=index.identity, weights=models.weights_identity(str(imagenet_weights)))
    got, _ = feature_cache.load_or_extract(
        tmp_path, key, channel, {"valid": (samples, 3)}, backbone,
        device=torch.device("cpu"), batch_size=4, num_workers=num_workers, mirrored={"valid"},
    )  # fmt: skip
    plain = backbone.eval().to(memory_format=torch.contiguous_format)
    evaluation = presets.eval_transform(RESIZE, CROP)
    want = {
        "view 0": _plain_features(plain, channel, samples, evaluation),
        "mirror": _plain_features(plain, channel, samples, transforms.Compose([evaluation, presets.hflip])),
        "view 1": _plain_features(plain, channel, samples, presets.train_transform(CROP), 1 * 1_000_000_007),
        "view 2": _plain_features(plain, channel, samples, presets.train_transform(CROP), 2 * 1_000_000_007),
    }
    have = {"view 0": got["valid"].views[0], "mirror": got["valid"].mirror, "view 1": got["valid"].views[1]}
    have["view 2"] = got["valid"].views[2]
    for name, features in have.items():
        assert features.shape == (10, 1280)
        assert torch.allclose(features, want[name], rtol=1e-4, atol=1e-4), (name, (features - want[name]).abs().max())
    assert not torch.allclose(have["mirror"], have["view 0"], rtol=1e-3, atol=1e-3)  # the comparison can fail


@pytest.mark.slow
def test_cache_files_keep_their_format(breedkit, channel, tmp_path):
    """A cache written before #18 must still read, and one written now must read in older
    trials: the same keys, dtypes, shapes and layout in every .pt file."""
    from breedkit import data, feature_cache, models

    index = data.load_index(channel)
    samples = index.splits["test"]
    torch.manual_seed(0)
    backbone, _ = models.split_backbone_head(models.build_model("mobilenet_v2", 10, "none"), "mobilenet_v2")
    key = _key(breedkit, dataset=index.identity)
    feature_cache.load_or_extract(
        tmp_path, key, channel, {"test": (samples, 1)}, backbone,
        device=torch.device("cpu"), batch_size=3, num_workers=0,
    )  # fmt: skip
    assert feature_cache.CACHE_FORMAT == 1
    blob = torch.load(feature_cache.view_file(key.folder(tmp_path), "test", 0), weights_only=True)
    assert sorted(blob) == ["features", "labels", "paths"]
    features = blob["features"]
    assert features.dtype == torch.float32 and features.shape == (len(samples), 1280) and features.is_contiguous()
    assert not features.is_inference()
    assert blob["labels"].dtype == torch.int64 and blob["labels"].tolist() == [s.index for s in samples]
    assert blob["paths"] == [s.path for s in samples]


def _damage(path, how):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 10)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "other files":
        blob = torch.load(path, weights_only=True)
        torch.save({**blob, "paths": list(reversed(blob["paths"]))}, path)
    else:  # "wrong shape": a valid file whose features do not fit the photos
        blob = torch.load(path, weights_only=True)
        torch.save({**blob, "features": blob["features"][:1]}, path)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "other files", "wrong shape"])
def test_an_unreadable_view_file_is_extracted_again_with_a_note(breedkit, channel, tmp_path, capfd, how):
    """A view file damaged outside our atomic writes (a full disk, a copy cut short, an edit)
    failed every trial that shared the cache with torch's own error; now it is extracted again."""
    from breedkit import data, feature_cache, models

    index = data.load_index(channel)
    samples = index.splits["test"]
    torch.manual_seed(0)
    backbone, _ = models.split_backbone_head(models.build_model("mobilenet_v2", 10, "none"), "mobilenet_v2")
    key = _key(breedkit, dataset=index.identity)

    def extract():
        return feature_cache.load_or_extract(
            tmp_path, key, channel, {"test": (samples, 1)}, backbone,
            device=torch.device("cpu"), batch_size=5, num_workers=0,
        )  # fmt: skip

    first, _ = extract()
    path = feature_cache.view_file(key.folder(tmp_path), "test", 0)
    _damage(path, how)
    capfd.readouterr()
    again, report = extract()
    assert report.extracted_files == 1 and torch.equal(again["test"].views, first["test"].views)
    assert f"{path} is unreadable" in capfd.readouterr().err
    assert extract()[1].extracted_files == 0  # and the new file is read from then on


def test_a_photo_that_fails_to_decode_fails_the_extraction(breedkit, dogs_dir, tmp_path):
    """The decoding thread's error reaches the caller, and nothing is written to the cache."""
    from breedkit import data, feature_cache, models

    from tests.source_dir.datasets import build_channel

    channel = build_channel(dogs_dir, tmp_path / "data")  # a copy of its own: one photo is broken
    index = data.load_index(channel)
    samples = index.splits["test"]
    (channel / samples[-1].path).write_bytes(b"not a jpeg")
    backbone, _ = models.split_backbone_head(models.build_model("mobilenet_v2", 10, "none"), "mobilenet_v2")
    key = _key(breedkit, dataset=index.identity)
    with pytest.raises(OSError, match="cannot identify image file"):
        feature_cache.load_or_extract(
            tmp_path / "cache", key, channel, {"test": (samples, 1)}, backbone,
            device=torch.device("cpu"), batch_size=2, num_workers=0,
        )  # fmt: skip
    assert not feature_cache.view_file(key.folder(tmp_path / "cache"), "test", 0).exists()


@pytest.mark.slow
def test_worker_processes_give_the_features_of_this_process(breedkit, channel, imagenet_weights, tmp_path, monkeypatch):
    """Extraction split over two forked workers (one backbone thread each) gives the same
    features, in the same order, for the evaluation view, a seeded augmented view and the
    mirrored view; and no worker outlives the extraction."""
    import multiprocessing

    from breedkit import data, feature_cache, models

    index = data.load_index(channel)
    splits = {"train": (index.splits["train"][:21], 2), "valid": (index.splits["valid"], 1)}
    model = models.build_model("mobilenet_v2", 10, str(imagenet_weights))
    backbone, _ = models.split_backbone_head(model, "mobilenet_v2")
    key = _key(breedkit, dataset=index.identity, weights=models.weights_identity(str(imagenet_weights)))
    in_workers = []
    real = feature_cache._features_in_processes
    monkeypatch.setattr(
        feature_cache, "_features_in_processes", lambda *a: in_workers.append(a[2]) or real(*a)
    )  # fmt: skip

    def extract(processes: int):
        got, report = feature_cache.load_or_extract(
            tmp_path / f"cache-{processes}", key, channel, splits, backbone, device=torch.device("cpu"),
            batch_size=6, num_workers=0, processes=processes, mirrored=("valid",),
        )  # fmt: skip
        assert report.extracted_images == 21 * 2 + 10 * 2
        return got

    alone, split_up = extract(1), extract(2)
    assert in_workers == [2]  # one pass: train.view0, train.view1, valid.view0 and valid.mirror
    assert multiprocessing.active_children() == []
    for split in splits:
        assert split_up[split].views.shape == alone[split].views.shape
        assert torch.allclose(split_up[split].views, alone[split].views, rtol=1e-4, atol=1e-4)
        assert torch.equal(split_up[split].labels, alone[split].labels)
    assert torch.allclose(split_up["valid"].mirror, alone["valid"].mirror, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(split_up["train"].views[1], split_up["train"].views[0])  # really augmented


def test_a_photo_that_fails_to_decode_in_a_worker_fails_with_its_own_error(breedkit, dogs_dir, tmp_path):
    """A worker's error is raised here as itself, one line (not rewrapped with the worker's
    traceback), the cache gets nothing, and the workers are gone."""
    import multiprocessing

    from breedkit import data, feature_cache, models

    from tests.source_dir.datasets import build_channel

    channel = build_channel(dogs_dir, tmp_path / "data")
    index = data.load_index(channel)
    samples = index.splits["train"][:12]
    (channel / samples[7].path).write_bytes(b"not a jpeg")
    backbone, _ = models.split_backbone_head(models.build_model("mobilenet_v2", 10, "none"), "mobilenet_v2")
    key = _key(breedkit, dataset=index.identity)
    with pytest.raises(OSError, match="cannot identify image file") as raised:
        feature_cache.load_or_extract(
            tmp_path / "cache", key, channel, {"train": (samples, 1)}, backbone,
            device=torch.device("cpu"), batch_size=4, num_workers=0, processes=2,
        )  # fmt: skip
    assert samples[7].path.split("/")[-1] in str(raised.value)
    assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)
    assert not feature_cache.view_file(key.folder(tmp_path / "cache"), "train", 0).exists()
    assert multiprocessing.active_children() == []


class _PhotoError(Exception):
    """An exception pickle can write but not read back (a required argument besides args)."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")


def test_a_worker_error_pickle_cannot_carry_arrives_as_its_text(breedkit):
    from breedkit import feature_cache

    class Photos(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            if i == 9:
                raise _PhotoError("dogs/9.jpg", "truncated")
            return torch.zeros(32, 32, 3, dtype=torch.uint8), 0

    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(RuntimeError, match=r"^_PhotoError: dogs/9\.jpg: truncated$"):
        feature_cache.extract(backbone, Photos(), device=torch.device("cpu"), batch_size=4, num_workers=0, processes=2)


class _BatchSizeSeen(torch.nn.Module):
    """Features: each image's mean pixel, then the size of the batch it ran in."""

    def forward(self, x):
        return torch.cat([x.mean((2, 3)), torch.full((len(x), 1), float(len(x)))], dim=1)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_short_last_batch_runs_at_the_full_batch_size(breedkit, processes):
    """The CPU backbone is a TorchScript graph that fuses itself anew (~0.5 s) for each input
    shape it meets: the last batch is padded to the others' size, and only its own images'
    features come back, in order."""
    from breedkit import feature_cache

    class Photos(torch.utils.data.Dataset):
        def __len__(self):
            return 11

        def __getitem__(self, i):
            return torch.full((8, 8, 3), 10 * i, dtype=torch.uint8), 0

    got = feature_cache.extract(
        _BatchSizeSeen(), Photos(), device=torch.device("cpu"), batch_size=4 * processes, num_workers=0, processes=processes
    )  # fmt: skip
    assert got.shape == (11, 4)
    assert got[:, 3].tolist() == [4.0] * 11  # 4 per backbone call: per worker with 2 processes
    means = got[:, 0]
    assert means.argsort().tolist() == list(range(11))  # each image's own features, in order
    assert len(set(means.tolist())) == 11
