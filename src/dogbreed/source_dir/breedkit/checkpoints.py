"""Per-epoch checkpoints that carry their own arguments, for resuming killed or spot runs.

One file, `<checkpoint dir>/checkpoint.pth`, replaced atomically after every epoch (SageMaker
syncs /opt/ml/checkpoints to S3 and back after a spot interruption). It holds everything
the next epoch depends on: model and optimizer state, the GradScaler, the best epoch so far
(with its weights when it is not the last epoch), the metric history and the run's
arguments. Randomness needs no saving: each epoch reseeds from (seed, epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write

CHECKPOINT_FILE = "checkpoint.pth"
FORMAT = 1


class ResumeMismatch(ValueError):
    """The checkpoint was written by a run with other arguments."""


@dataclass
class Best:
    epoch: int = 0
    valid_acc: float = float("-inf")
    valid_loss: float = float("inf")
    state: dict[str, torch.Tensor] | None = None  # None: the model's current weights

    def beaten_by(self, valid_acc: float, valid_loss: float) -> bool:
        """Higher valid_acc wins; equal valid_acc is broken by the lower valid_loss."""
        return (valid_acc, -valid_loss) > (self.valid_acc, -self.valid_loss)


@dataclass
class TrainingState:
    epoch: int  # the last finished epoch
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any]
    best: Best
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def save(directory: Path, state: TrainingState, run_args: dict[str, Any]) -> Path:
    best = state.best
    blob = {
        "format": FORMAT,
        "args": run_args,
        "epoch": state.epoch,
        "model": cpu_copy(state.model),
        "optimizer": state.optimizer,
        "scaler": state.scaler,
        "best": {
            "epoch": best.epoch,
            "valid_acc": best.valid_acc,
            "valid_loss": best.valid_loss,
            # The last epoch's weights are already under "model": do not store them twice.
            "state": None if best.epoch == state.epoch else best.state,
        },
        "history": state.history,
        "train_seconds": state.train_seconds,
    }
    return atomic_write(Path(directory) / CHECKPOINT_FILE, lambda handle: torch.save(blob, handle))


def load(directory: Path, run_args: dict[str, Any]) -> TrainingState | None:
    """The last checkpoint in `directory`, or None. Refuses one written with other args."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != FORMAT:
        raise ResumeMismatch(f"{path} has checkpoint format {blob.get('format')!r}, expected {FORMAT}")
    saved = blob["args"]
    keys = sorted(set(saved) | set(run_args))
    changed = {k: (saved.get(k), run_args.get(k)) for k in keys if saved.get(k) != run_args.get(k)}
    if changed:
        detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ResumeMismatch(
            f"{path} belongs to a run with other arguments ({detail}); resume with the same "
            "hyperparameters, or use an empty --checkpoint-dir to start afresh"
        )
    b = blob["best"]
    best = Best(b["epoch"], b["valid_acc"], b["valid_loss"], b["state"])
    return TrainingState(
        epoch=blob["epoch"],
        model=blob["model"],
        optimizer=blob["optimizer"],
        scaler=blob["scaler"],
        best=best,
        history=blob["history"],
        train_seconds=blob["train_seconds"],
    )
