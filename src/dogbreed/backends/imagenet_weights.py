"""torchvision's ImageNet weights as a file on this machine, for jobs that have no internet.

With `model.weights: imagenet`, train.py asks torchvision, which downloads the weights from
download.pytorch.org inside the job. Under network isolation (sagemaker.network_isolation)
or in a VPC without NAT that download fails minutes into a billed job. Instead the host
resolves the very file torchvision would use (its hub cache, `$TORCH_HOME/hub/checkpoints`,
downloading it once if missing), and the job gets it as a state_dict in the weights channel:
a stock state_dict of the same architecture, which train.py loads as it loads any
--weights file.
"""

from __future__ import annotations

from pathlib import Path

from dogbreed.errors import DogbreedError


def imagenet_weights_url(arch: str) -> str:
    from torchvision import models

    try:
        return models.get_model_weights(arch).DEFAULT.url
    except (KeyError, ValueError) as exc:
        raise DogbreedError(f"model.arch {arch}: torchvision has no ImageNet weights for it ({exc})") from None


def imagenet_weights_file(arch: str) -> Path:
    """The cached file (downloaded into torchvision's cache when missing)."""
    import torch.hub

    url = imagenet_weights_url(arch)
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as exc:  # noqa: BLE001 - urllib's errors, and hash mismatches
        raise DogbreedError(
            f"cannot download the ImageNet weights of {arch} from {url} on this machine ({exc}); the job has no "
            f"internet (sagemaker.network_isolation=true), so they must come from here: put the file at {target}, "
            "or set model.weights to a state_dict file"
        ) from None
    return target
