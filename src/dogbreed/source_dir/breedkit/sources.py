"""Where a training step's inputs come from: cached backbone features, or decoded images.

Both sources offer the same three things to train.py: the module that trains (the head, or
the whole model), this rank's training batches for an epoch's generator, and evaluation
batches of a split. The epoch's generator decides the shuffle, the augmented view of each
cached image, and the DataLoader workers' seeds, so an epoch is a function of (seed, epoch).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import nn

from . import engine, models
from .data import ImageDataset, Sample
from .distributed import World
from .feature_cache import SplitFeatures
from .presets import eval_transform, hflip, train_transform

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class CachedFeatures:
    """The head trains on features the frozen backbone computed once (feature_cache.py)."""

    def __init__(
        self, head: nn.Module, features: dict[str, SplitFeatures], batch_size: int, world: World, tta: bool = False
    ) -> None:
        self.module = head
        self.features = features
        self.batch_size = batch_size
        self.world = world
        self.tta = tta  # evaluation batches carry each photo's mirror view too

    def size(self, split: str) -> int:
        return len(self.features[split].labels)

    def set_train_mode(self) -> None:
        self.module.train()  # only the head's Dropout cares

    def _batches(self, split: str, index_batches: list[list[int]], view_of: torch.Tensor | None) -> Iterator:
        features = self.features[split]
        device = features.views.device
        for batch in index_batches:
            idx = torch.tensor(batch, device=device)
            views = view_of[idx] if view_of is not None else torch.zeros_like(idx)
            yield features.views[views, idx], features.labels[idx]

    def train_batches(self, generator: torch.Generator) -> Batches:
        n = self.size("train")
        batches = engine.train_index_batches(n, self.batch_size, generator, self.world)
        views = self.features["train"].views.shape[0]
        # One augmented view per image per epoch, drawn after the shuffle from the same generator.
        view_of = torch.randint(views, (n,), generator=generator) if views > 1 else None
        if view_of is not None:
            view_of = view_of.to(self.features["train"].views.device)
        return self._batches("train", batches, view_of)

    def eval_batches(self, split: str) -> Iterator:
        """View 0 of each photo, with its mirror view too under test-time augmentation."""
        features = self.features[split]
        for batch in engine.eval_index_batches(self.size(split), self.batch_size, self.world):
            idx = torch.tensor(batch, device=features.views.device)
            x = features.views[0, idx]
            yield ((x, features.mirror[idx]) if self.tta else x), features.labels[idx]


class DecodedImages:
    """The seed's way: every step decodes, augments and runs the backbone."""

    def __init__(
        self,
        model: nn.Module,
        root: Path,
        splits: dict[str, list[Sample]],
        *,
        resize: int,
        crop: int,
        batch_size: int,
        num_workers: int,
        freeze_bn_stats: bool,
        device: torch.device,
        world: World,
        tta: bool = False,
    ) -> None:
        self.module = model
        self.tta = tta
        train, evaluation = train_transform(crop), eval_transform(resize, crop)
        self.datasets = {
            split: ImageDataset(root, samples, train if split == "train" else evaluation) for split, samples in splits.items()
        }
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.freeze_bn_stats = freeze_bn_stats
        self.pin_memory = device.type == "cuda"
        self.world = world

    def size(self, split: str) -> int:
        return len(self.datasets[split])

    def set_train_mode(self) -> None:
        models.train_mode(self.module, self.freeze_bn_stats)

    def _loader(self, split: str, index_batches: list[list[int]], generator: torch.Generator | None):
        return torch.utils.data.DataLoader(
            self.datasets[split],
            batch_sampler=index_batches,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=generator,  # the workers' RNG seeds (augmentation) come from it
        )

    def train_batches(self, generator: torch.Generator) -> Batches:
        batches = engine.train_index_batches(self.size("train"), self.batch_size, generator, self.world)
        return self._loader("train", batches, generator)

    def eval_batches(self, split: str) -> Batches:
        loader = self._loader(split, engine.eval_index_batches(self.size(split), self.batch_size, self.world), None)
        if not self.tta:
            return loader
        return (((x, hflip(x)), y) for x, y in loader)
