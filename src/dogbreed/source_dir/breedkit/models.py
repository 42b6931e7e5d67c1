"""torchvision classifiers with a new head for the breeds, split into backbone and head.

`build_model` returns the stock torchvision network (so inference.py can rebuild it from
hyperparameters.json alone) with its final Linear replaced by one for `num_classes`.
`split_backbone_head` returns two views that share the model's modules, so that
`head(backbone(x)) == model(x)` in eval mode: the backbone is what the feature cache
computes once, the head is what trains on it, and the artifact stays the whole model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tv_models

from . import imagenet

# arch -> dotted name of the final Linear that gets replaced.
HEAD_LINEAR = {
    "resnet18": "fc",
    "resnet34": "fc",
    "resnet50": "fc",
    "mobilenet_v2": "classifier.1",
    "mobilenet_v3_small": "classifier.3",
    "mobilenet_v3_large": "classifier.3",
    "efficientnet_b0": "classifier.1",
    "efficientnet_b1": "classifier.1",
    "convnext_tiny": "classifier.2",
}
ARCHS = tuple(HEAD_LINEAR)


class ModelError(ValueError):
    """An arch, freeze spec or weights file that cannot make the model asked for."""


class WeightsError(ModelError):
    """A weights file that does not fit the architecture, or cannot be read."""


def _check_arch(arch: str) -> None:
    if arch not in HEAD_LINEAR:
        raise ModelError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a .pth file, floats cast to float32 (vendored weights are float16).

    Accepts a bare state_dict, a checkpoint holding one under 'model'/'state_dict', and
    keys saved from DistributedDataParallel ('module.' prefix)."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise WeightsError(f"cannot read weights file {path}: {exc}") from exc
    for key in ("model", "state_dict"):
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{path} is not a state_dict (a dict of tensors)")
    out = {}
    for key, tensor in raw.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        out[key] = tensor.float() if tensor.is_floating_point() else tensor
    return out


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_identity(weights: str) -> str:
    """What the backbone's numbers depend on: 'imagenet', 'none', or the file's sha256."""
    if weights in ("imagenet", "none"):
        return weights
    return "sha256:" + file_sha256(weights)


def _get(model: nn.Module, dotted: str) -> nn.Module:
    return model.get_submodule(dotted)


def _set(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _stock_model(arch: str, weights: str) -> tuple[nn.Module, bool]:
    """The stock torchvision `arch` (its own classifier included) with `weights`, and whether
    that classifier holds pretrained rows."""
    if weights == "imagenet":
        enum = tv_models.get_model_weights(arch).DEFAULT  # e.g. MobileNet_V2_Weights.IMAGENET1K_V2
        try:
            return tv_models.get_model(arch, weights=enum), True
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad download a RuntimeError
            raise WeightsError(
                f"cannot get torchvision's {enum} ({exc}); without network, pass a state_dict file "
                "with --weights (a path, or a file in the weights channel)"
            ) from exc
    model = tv_models.get_model(arch, weights=None)
    if weights == "none":
        return model, False
    state = load_state_dict_file(weights)
    head = HEAD_LINEAR[arch]
    head_keys = {f"{head}.weight", f"{head}.bias"}
    own = model.state_dict()
    if any(k in state and state[k].shape != own[k].shape for k in head_keys):
        state = {k: v for k, v in state.items() if k not in head_keys}
    missing, unexpected = model.load_state_dict(state, strict=False)
    head_loaded = not any(k in missing for k in head_keys)
    missing = [k for k in missing if k not in head_keys]
    if missing or unexpected:
        raise WeightsError(
            f"{weights} does not fit torchvision {arch}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    return model, head_loaded


def build_model_and_source_head(arch: str, num_classes: int, weights: str = "none") -> tuple[nn.Module, nn.Linear | None]:
    """The torchvision `arch` with a fresh `num_classes` head, and the classifier it replaced
    when that one is a pretrained 1000-way ImageNet classifier (the source head), else None.

    weights: 'imagenet' (torchvision's DEFAULT weights, downloaded where there is network),
    'none' (random init), or a path to a state_dict of the 1000-class torchvision model
    (or of this re-headed model: a head of the wrong size is then left freshly initialised).
    The new head is initialised from torch's current RNG state, so seed before calling."""
    _check_arch(arch)
    model, head_loaded = _stock_model(arch, weights)
    old = _get(model, HEAD_LINEAR[arch])
    _set(model, HEAD_LINEAR[arch], nn.Linear(old.in_features, num_classes))
    source = old if head_loaded and old.out_features == imagenet.NUM_CATEGORIES else None
    return model, source


def build_model(arch: str, num_classes: int, weights: str = "none") -> nn.Module:
    """build_model_and_source_head without the source head."""
    return build_model_and_source_head(arch, num_classes, weights)[0]


def head_linear(model: nn.Module, arch: str) -> nn.Linear:
    """The final Linear: the new head's weights."""
    return _get(model, HEAD_LINEAR[arch])


@dataclass(frozen=True)
class HeadInit:
    matched: int  # rows copied from the pretrained classifier's rows for the same breed
    imprinted: int  # rows pointing at the mean features of the class's training photos
    fresh: int  # rows left as torch initialised them


@torch.no_grad()
def init_head(
    head: nn.Linear,
    source: nn.Linear,
    matches: list[tuple[int, ...]],
    features: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> HeadInit:
    """Start the new head where the pretrained classifier already is.

    A class the source task knows (`matches[c]`: the indices of its rows, imagenet.match)
    gets the mean of those rows and biases, so before any training the model ranks those
    breeds as the pretrained network does. A class it does not know gets an imprinted row
    (after Qi et al., "Low-shot learning with imprinted weights", CVPR 2018) computed from
    the training `features` and `labels`: see _imprint. Without features, or for a class
    without training photos, a row keeps its random init.

    Measured on cached features of the shared Stanford sample with 42 of 120 breeds treated
    as unknown (benchmarks/bench_accuracy.py): random rows for them 0.55 test top-1 after
    training, plain imprinting (the mean feature's direction at the rows' length) 0.28, since
    ReLU features all point the same way and such a row fires on every dog; centred and
    calibrated imprinting 0.71."""
    known = [(c, list(rows)) for c, rows in enumerate(matches) if rows]
    for c, rows in known:
        head.weight[c] = source.weight[rows].mean(0).to(head.weight)
        head.bias[c] = source.bias[rows].mean().to(head.bias)
    imprinted = 0
    if features is not None and labels is not None and len(known) < len(matches):
        imprinted = _imprint(head, source, [c for c, _ in known], [c for c, r in enumerate(matches) if not r], features, labels)
    return HeadInit(len(known), imprinted, len(matches) - len(known) - imprinted)


def _imprint(
    head: nn.Linear, source: nn.Linear, known: list[int], unknown: list[int], features: torch.Tensor, labels: torch.Tensor
) -> int:
    """Rows for the unknown classes on the known rows' scale; returns how many were set.

    Each row points from the mean of all training features to its class's mean (centred:
    uncentred, a row would score every photo high), and is scaled so that its logit is, on
    average, `own` on the class's own photos and `other` over all photos: the known rows'
    mean logit for a photo's own class and for the other known classes. With no known class
    the source classifier's own top and mean logits set the two levels."""
    features = features.float()
    if known:
        logits = features @ head.weight[known].T.float() + head.bias[known].float()
        is_own = labels.unsqueeze(1) == torch.tensor(known, device=labels.device)
        if not is_own.any() or is_own.all():
            return 0
        own, other = logits[is_own].mean(), logits[~is_own].mean()
    else:
        logits = features @ source.weight.T.float().to(features.device) + source.bias.float().to(features.device)
        own, other = logits.max(1).values.mean(), logits.mean()
    centre = features.mean(0)
    done = 0
    for c in unknown:
        photos = features[labels == c]
        if len(photos) == 0:
            continue
        direction = nn.functional.normalize(photos.mean(0) - centre, dim=0)
        reach = ((photos - centre) @ direction).mean()  # how far the class stands out along it
        if not reach > 0 or not own > other:
            continue
        scale = (own - other) / reach
        head.weight[c] = (scale * direction).to(head.weight)
        head.bias[c] = (other - scale * direction @ centre).to(head.bias)
        done += 1
    return done


def split_backbone_head(model: nn.Module, arch: str) -> tuple[nn.Sequential, nn.Sequential]:
    """(backbone, head) sharing the model's modules: head(backbone(x)) == model(x).

    The head is the new Linear plus the Dropout right before it (so training on cached
    features regularises the same way); the backbone ends with flat feature vectors."""
    _check_arch(arch)
    flat = nn.Flatten(1)
    if arch.startswith("resnet"):
        children = [m for name, m in model.named_children() if name != "fc"]
        return nn.Sequential(*children, flat), nn.Sequential(model.fc)
    if arch == "mobilenet_v2":
        pool = nn.AdaptiveAvgPool2d(1)  # mobilenet_v2 pools functionally in forward()
        return nn.Sequential(model.features, pool, flat), nn.Sequential(*model.classifier)
    if arch.startswith("mobilenet_v3"):
        c = model.classifier
        return nn.Sequential(model.features, model.avgpool, flat, c[0], c[1]), nn.Sequential(c[2], c[3])
    if arch.startswith("efficientnet"):
        return nn.Sequential(model.features, model.avgpool, flat), nn.Sequential(*model.classifier)
    # convnext: LayerNorm2d and Flatten stay frozen with the backbone.
    c = model.classifier
    return nn.Sequential(model.features, model.avgpool, c[0], c[1]), nn.Sequential(c[2])


def head_parameter_names(model: nn.Module, arch: str) -> set[str]:
    _, head = split_backbone_head(model, arch)
    head_ids = {id(p) for p in head.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in head_ids}


def freeze(model: nn.Module, arch: str, spec: str) -> list[str]:
    """Set requires_grad by `spec` and return the trainable parameter names.

    'backbone': the head only. 'none': everything. Otherwise a parameter-name prefix
    (e.g. 'features.17', 'layer4'): that layer and every layer after it train.
    Frozen BatchNorm layers must also stay in eval mode: see `train_mode`."""
    head = head_parameter_names(model, arch)
    names = [name for name, _ in model.named_parameters()]
    if spec == "backbone":
        trainable = set(head)
    elif spec == "none":
        trainable = set(names)
    else:
        start = next((i for i, n in enumerate(names) if n == spec or n.startswith(spec + ".")), None)
        if start is None:
            raise ModelError(
                f"--freeze {spec!r} matches no parameter of {arch}; use 'backbone', 'none' or a prefix "
                f"such as {names[len(names) // 2].rsplit('.', 2)[0]!r}"
            )
        trainable = set(names[start:]) | head
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    return [n for n in names if n in trainable]


_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def train_mode(model: nn.Module, freeze_bn_stats: bool = False) -> nn.Module:
    """model.train(), except BatchNorm whose parameters are frozen stays in eval mode.

    A frozen BN in train mode would still replace its running statistics with those of
    small batches (and normalise with batch statistics), silently changing the frozen
    backbone; with folded weights (examples/weights) BN carries no real statistics at all.
    freeze_bn_stats=True keeps every BN in eval mode (fine-tuning folded weights)."""
    model.train()
    for module in model.modules():
        if isinstance(module, _BATCHNORM):
            params = list(module.parameters(recurse=False))
            if freeze_bn_stats or not any(p.requires_grad for p in params):
                module.eval()
    return model


def param_group_name(name: str, head_names: set[str]) -> str:
    """Layer group of a parameter for per-group gradient norms: 'head', a stage of the
    backbone's `features` Sequential ('backbone.features.17': mobilenet, efficientnet,
    convnext), or a top-level child ('backbone.layer4', 'backbone.conv1': resnet)."""
    if name in head_names:
        return "head"
    parts = name.split(".")
    keep = parts[:2] if parts[0] == "features" and len(parts) > 2 else parts[:1]
    return "backbone." + ".".join(keep)


def load_trained(arch: str, num_classes: int, state_path: str | Path) -> nn.Module:
    """A trained model.pth back into its network, in eval mode (what inference.py needs).

    Not build_model(weights=path): that one treats the file as a backbone to fine-tune and
    keeps a fresh head when the sizes differ; here every key must fit."""
    model = build_model(arch, num_classes, "none")
    model.load_state_dict(load_state_dict_file(state_path), strict=True)
    return model.eval()
