"""Per-epoch checkpoints that carry their own arguments, for resuming killed or spot runs.

One file, `<checkpoint dir>/checkpoint.pth`, replaced atomically after every epoch (SageMaker
syncs /opt/ml/checkpoints to S3 and back after a spot interruption); the one it replaces is
kept as `checkpoint.prev.pth`. A checkpoint that cannot be read (a disk or sync fault, an
edited file, a pickle payload that weights_only refuses) is passed over for the previous
one, with a note; when none is readable the run fails with one line that names the files
and the way out, instead of trapping every later resume in torch's unpickling error. It holds everything
the next epoch depends on: model and optimizer state, the GradScaler, the best epoch so far
(with its weights when it is not the last epoch), the metric history and the run's
arguments. Randomness needs no saving: each epoch reseeds from (seed, epoch).

Frozen parameters are left out of every saved and remembered state: they are still the
weights the run was built from (their identity is in the run's arguments, which a resume
must match), so a frozen-backbone checkpoint holds the head and the buffers: kilobytes
written per epoch instead of the whole network twice (mobilenet_v2: 28 MB), which was most
of a cached tuning trial's time.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write

CHECKPOINT_FILE = "checkpoint.pth"
PREVIOUS_FILE = "checkpoint.prev.pth"
CORRUPT_FILE = "checkpoint.corrupt.pth"
_FIELDS = ("args", "epoch", "model", "optimizer", "scaler", "best", "history", "train_seconds")
FORMAT = 2  # 2: frozen parameters left out; 1 (everything) still loads
READABLE_FORMATS = (1, 2)


class ResumeMismatch(ValueError):
    """The checkpoint was written by a run with other arguments."""


class CorruptCheckpoint(ResumeMismatch):
    """No checkpoint in the folder can be read; the message says what to delete."""


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


def frozen_parameters(model: torch.nn.Module) -> frozenset[str]:
    return frozenset(name for name, param in model.named_parameters() if not param.requires_grad)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of what training can change: the state dict without frozen parameters.
    Buffers (BatchNorm statistics) are kept whatever the freeze mode: they are small."""
    frozen = frozen_parameters(model)
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if k not in frozen}


def restore(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a trainable_state (or a whole state dict) into a model built as the run builds it."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    lacking = set(missing) - frozen_parameters(model)
    if unexpected or lacking:
        raise ResumeMismatch(
            f"saved weights do not fit the model (missing {sorted(lacking)[:3]}, unexpected {sorted(unexpected)[:3]}); "
            "use an empty --checkpoint-dir to start afresh"
        )


def save(directory: Path, state: TrainingState, run_args: dict[str, Any]) -> Path:
    """state.model and state.best.state as trainable_state makes them (CPU copies)."""
    best = state.best
    blob = {
        "format": FORMAT,
        "args": run_args,
        "epoch": state.epoch,
        "model": state.model,
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
    path = Path(directory) / CHECKPOINT_FILE
    if path.is_file():
        # Killed between these two renames, the folder holds only the previous one: load finds it.
        os.replace(path, path.with_name(PREVIOUS_FILE))
    return atomic_write(path, lambda handle: torch.save(blob, handle))


def _read(path: Path) -> dict[str, Any]:
    """The checkpoint's contents; any failure to read it as one is CorruptCheckpoint."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CorruptCheckpoint(f"{path} is unreadable ({type(exc).__name__}: {reason})") from None
    if not isinstance(blob, dict):
        raise CorruptCheckpoint(f"{path} is not a checkpoint of this training package")
    missing = [name for name in _FIELDS if name not in blob]
    if missing and blob.get("format") in READABLE_FORMATS:
        raise CorruptCheckpoint(f"{path} lacks {', '.join(missing)}")
    return blob


def load(directory: Path, run_args: dict[str, Any]) -> TrainingState | None:
    """The last readable checkpoint in `directory` (the latest, else the previous one), or
    None when there is none. Refuses one written with other args."""
    candidates = [p for p in (Path(directory) / CHECKPOINT_FILE, Path(directory) / PREVIOUS_FILE) if p.is_file()]
    if not candidates:
        return None
    problems = []
    for path in candidates:
        try:
            blob = _read(path)
        except CorruptCheckpoint as exc:
            problems.append(str(exc))
            continue
        state = _state(path, blob, run_args)
        if problems:
            # Set aside, not deleted (it may be worth a look), and out of the way of the next
            # save, which would otherwise shift it over the readable previous one.
            os.replace(candidates[0], candidates[0].with_name(CORRUPT_FILE))
            print(f"note: {problems[0]}; moved to {CORRUPT_FILE}, resuming from {path}", file=sys.stderr, flush=True)
        return state
    names = " and ".join(str(p) for p in candidates)
    raise CorruptCheckpoint(
        f"{problems[0]}, and no earlier checkpoint is readable; delete {names} to run this job again "
        "from epoch 1 (or start a new job under another name: dogbreed train --name NEW)"
    )


def _state(path: Path, blob: dict[str, Any], run_args: dict[str, Any]) -> TrainingState:
    if blob.get("format") not in READABLE_FORMATS:
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
