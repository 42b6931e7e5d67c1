"""torchvision classifiers with a new head for the breeds, split into backbone and head.

`build_model` returns the stock torchvision network (so inference.py can rebuild it from
hyperparameters.json alone) with its final Linear replaced by one for `num_classes`.
`split_backbone_head` returns two views that share the model's modules, so that
`head(backbone(x)) == model(x)` in eval mode: the backbone is what the feature cache
computes once, the head is what trains on it, and the artifact stays the whole model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tv_models

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


def build_model(arch: str, num_classes: int, weights: str = "none") -> nn.Module:
    """The torchvision `arch` with a fresh `num_classes` head.

    weights: 'imagenet' (torchvision's DEFAULT weights, downloaded where there is network),
    'none' (random init), or a path to a state_dict of the 1000-class torchvision model
    (or of this re-headed model: a head of the wrong size is then left freshly initialised).
    The new head is initialised from torch's current RNG state, so seed before calling."""
    _check_arch(arch)
    if weights == "imagenet":
        enum = tv_models.get_model_weights(arch).DEFAULT  # e.g. MobileNet_V2_Weights.IMAGENET1K_V2
        try:
            model = tv_models.get_model(arch, weights=enum)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad download a RuntimeError
            raise WeightsError(
                f"cannot get torchvision's {enum} ({exc}); without network, pass a state_dict file "
                "with --weights (a path, or a file in the weights channel)"
            ) from exc
    else:
        model = tv_models.get_model(arch, weights=None)
        if weights != "none":
            state = load_state_dict_file(weights)
            head = HEAD_LINEAR[arch]
            head_keys = {f"{head}.weight", f"{head}.bias"}
            own = model.state_dict()
            if any(k in state and state[k].shape != own[k].shape for k in head_keys):
                state = {k: v for k, v in state.items() if k not in head_keys}
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if k not in head_keys]
            if missing or unexpected:
                raise WeightsError(
                    f"{weights} does not fit torchvision {arch}: "
                    f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                    f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
                )
    old = _get(model, HEAD_LINEAR[arch])
    _set(model, HEAD_LINEAR[arch], nn.Linear(old.in_features, num_classes))
    return model


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
