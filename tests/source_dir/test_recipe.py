"""The training recipe's parts, each against an independent computation: the head that starts
from the pretrained classifier, imprinted rows, the learning-rate schedule, and test-time
augmentation in evaluation and in the feature cache."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn


def test_known_breeds_start_from_the_pretrained_rows_and_the_model_ranks_them_as_imagenet_does(
    breedkit, imagenet_weights, dogs_dir
):
    """Before any training, the re-headed model's ranking of the 10 vendored breeds is the
    pretrained classifier's ranking restricted to those 10 categories."""
    from breedkit import imagenet, models, presets
    from breedkit.classes import classes_from_folders
    from PIL import Image

    classes = classes_from_folders([p.name for p in dogs_dir.iterdir()])
    model, source = models.build_model_and_source_head("mobilenet_v2", len(classes), str(imagenet_weights))
    assert source is not None and source.out_features == 1000
    matches = imagenet.match_classes(classes, imagenet.categories())
    done = models.init_head(models.head_linear(model, "mobilenet_v2"), source, matches)
    assert (done.matched, done.imprinted, done.fresh) == (10, 0, 0)

    rows = [m[0] for m in matches]
    transform = presets.eval_transform()
    photos = sorted(dogs_dir.glob("*/*.jpg"))[::9]
    x = torch.stack([transform(presets.to_rgb(Image.open(p))) for p in photos])
    backbone, _ = models.split_backbone_head(model.eval(), "mobilenet_v2")
    with torch.no_grad():
        ours = model(x)
        theirs = source(backbone(x))[:, rows]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)


def test_weights_without_an_imagenet_head_give_no_source_head(breedkit, imagenet_weights, tmp_path):
    from breedkit import models

    assert models.build_model_and_source_head("mobilenet_v2", 5, "none")[1] is None
    reheaded = models.build_model("mobilenet_v2", 7, str(imagenet_weights))
    torch.save(reheaded.state_dict(), tmp_path / "reheaded.pth")
    assert models.build_model_and_source_head("mobilenet_v2", 5, str(tmp_path / "reheaded.pth"))[1] is None


def test_imprinted_rows_score_their_own_photos_like_the_known_rows_do(breedkit):
    """The calibration _imprint promises, checked by recomputing it: a new row's mean logit
    is the known rows' mean own-class logit on its photos and their mean other-class logit
    over all photos; a class without photos keeps its random row."""
    from breedkit import models

    g = torch.Generator().manual_seed(0)
    num_classes, dim = 6, 32
    centres = torch.rand(num_classes, dim, generator=g) * 3
    labels = torch.arange(num_classes).repeat_interleave(20)
    labels = labels[labels != 5]  # class 5 has no training photos
    features = torch.relu(centres[labels] + torch.randn(len(labels), dim, generator=g))  # ReLU features, as a backbone's
    source = nn.Linear(dim, 1000)
    head = nn.Linear(dim, num_classes)
    random_row = head.weight[5].detach().clone()
    matches = [(3,), (7, 9), (), (), (11,), ()]
    done = models.init_head(head, source, matches, features, labels)
    assert (done.matched, done.imprinted, done.fresh) == (3, 2, 1)
    with torch.no_grad():
        torch.testing.assert_close(head.weight[1], source.weight[[7, 9]].mean(0))
        torch.testing.assert_close(head.bias[1], source.bias[[7, 9]].mean())
        torch.testing.assert_close(head.weight[5], random_row)
        logits = head(features)
    known = [0, 1, 4]
    own_mask = torch.zeros_like(logits, dtype=torch.bool)
    own_mask[torch.arange(len(labels)), labels] = True
    known_cols = logits[:, known]
    own = known_cols[own_mask[:, known]].mean()
    other = known_cols[~own_mask[:, known]].mean()
    for c in (2, 3):
        assert logits[labels == c, c].mean() == pytest.approx(own.item(), abs=1e-4)
        assert logits[:, c].mean() == pytest.approx(other.item(), abs=1e-4)


@pytest.mark.parametrize(
    ("schedule", "warmup", "expected"),
    [
        ("constant", 0, [1.0] * 8),
        ("constant", 1, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ("cosine", 0, [0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(8)]),
        ("cosine", 1, [0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)]),
    ],
)
def test_lr_factor_warms_up_linearly_then_follows_the_schedule(breedkit, schedule, warmup, expected):
    from breedkit import engine

    got = [engine.lr_factor(step, 4, 2, schedule, warmup) for step in range(8)]
    assert got == pytest.approx(expected)


def test_evaluate_averages_the_probabilities_of_the_views(breedkit):
    from breedkit import engine
    from breedkit.distributed import World

    module = nn.Linear(3, 4)
    x, mirror = torch.randn(5, 3), torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 3, 0])
    stats = engine.evaluate(module, [((x, mirror), y)], device=torch.device("cpu"), amp=False, world=World())
    with torch.no_grad():
        p = (module(x).softmax(1) + module(mirror).softmax(1)) / 2
    assert stats.loss == pytest.approx(nn.functional.nll_loss(p.log(), y).item(), rel=1e-5)
    assert stats.acc == pytest.approx((p.argmax(1) == y).float().mean().item())
    plain = engine.evaluate(module, [(x, y)], device=torch.device("cpu"), amp=False, world=World())
    with torch.no_grad():
        assert plain.loss == pytest.approx(nn.functional.cross_entropy(module(x), y).item(), rel=1e-5)


def test_the_cache_mirror_view_is_the_backbone_on_the_flipped_preset(breedkit, channel, imagenet_weights, tmp_path):
    from breedkit import models, presets
    from breedkit.data import load_index
    from breedkit.feature_cache import CacheKey, load_or_extract
    from PIL import Image

    index = load_index(channel)
    model = models.build_model("mobilenet_v2", len(index.classes), str(imagenet_weights)).eval()
    backbone, _ = models.split_backbone_head(model, "mobilenet_v2")
    key = CacheKey(index.identity, "mobilenet_v2", "test", 256, 224)
    valid = index.splits["valid"][:3]
    features, _ = load_or_extract(
        tmp_path, key, index.root, {"valid": (valid, 1)}, backbone,
        device=torch.device("cpu"), batch_size=4, num_workers=0, mirrored=("valid",),
    )  # fmt: skip
    transform = presets.eval_transform()
    x = torch.stack([transform(presets.to_rgb(Image.open(index.root / s.path))) for s in valid])
    with torch.no_grad():
        torch.testing.assert_close(features["valid"].mirror, backbone(x.flip(-1)), rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(features["valid"].views[0], backbone(x), rtol=1e-3, atol=1e-3)
    assert not torch.allclose(features["valid"].mirror, features["valid"].views[0], atol=1e-2)
