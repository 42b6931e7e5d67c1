"""One epoch of training and one evaluation, for images and for cached features alike.

Inputs arrive as an iterator of (x, y) batches: images from a DataLoader (the backbone runs
every step) or feature vectors gathered from the cache (only the head runs). Everything
random in an epoch derives from (seed, epoch), so a run resumed at epoch e replays
exactly what an uninterrupted run would have done from e on.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .distributed import World, sum_across
from .recorder import Recorder


@dataclass(frozen=True)
class Stats:
    loss_sum: float
    correct: float
    count: float

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else math.nan

    @property
    def acc(self) -> float:
        return self.correct / self.count if self.count else math.nan


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_index_batches(n: int, batch_size: int, generator: torch.Generator, world: World) -> list[list[int]]:
    """This rank's shuffled batches of indices. With several ranks the permutation is padded
    by repeating its start (as DistributedSampler does) so every rank runs the same number of
    steps, a requirement of DDP's gradient all-reduce."""
    order = torch.randperm(n, generator=generator)
    if world.distributed:
        total = math.ceil(n / world.size) * world.size
        order = torch.cat([order, order[: total - n]])[world.rank :: world.size]
    return [chunk.tolist() for chunk in order.split(batch_size)]


def steps_per_epoch(n: int, batch_size: int, world: World) -> int:
    """Optimizer steps per epoch on each rank, as train_index_batches makes them."""
    per_rank = math.ceil(n / world.size) if world.distributed else n
    return max(1, math.ceil(per_rank / batch_size))


def eval_index_batches(n: int, batch_size: int, world: World) -> list[list[int]]:
    """This rank's share of 0..n-1, no padding: summed over ranks, every item counts once."""
    order = torch.arange(world.rank, n, world.size)
    return [chunk.tolist() for chunk in order.split(batch_size)]


class GradNorms:
    """Per layer-group L2 norms of the gradients, one device sync per step."""

    def __init__(self, groups: dict[str, list[nn.Parameter]]) -> None:
        self.groups = groups

    def __call__(self) -> dict[str, float]:
        names, norms = [], []
        for name, params in self.groups.items():
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                names.append(name)
                norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        if not norms:
            return {}
        return dict(zip(names, torch.stack(norms).float().tolist()))


def lr_factor(step: int, steps_per_epoch: int, epochs: int, schedule: str, warmup_epochs: float) -> float:
    """The learning rate's multiplier at global step `step` (0-based, counted over all epochs).

    'constant': 1 after the warm-up. 'cosine': after the warm-up, a half cosine from 1 toward
    0, which it reaches as the run ends (SGDR without restarts, Loshchilov & Hutter 2017). The warm-up
    rises linearly over `warmup_epochs` epochs. A pure function of the step, so a resumed run
    needs no scheduler state to continue the same curve."""
    total = max(1, steps_per_epoch * epochs)
    warm = min(total, round(warmup_epochs * steps_per_epoch))
    if step < warm:
        return (step + 1) / warm
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    return 1.0


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last for convolutions on CPU and CUDA: mobilenet_v2's backbone ran 1.5-2x
    faster so on this project's CPU (benchmarks/bench_feature_cache.py); MPS keeps the default."""
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    if x.dim() == 4:  # images; cached features are [N, D]
        return x.to(device, non_blocking=True, memory_format=memory_format(device))
    return x.to(device, non_blocking=True)


def _autocast(device: torch.device, amp: bool):
    # Mixed precision on CUDA only: float16 autocast with a GradScaler, as in torch's AMP recipe.
    return torch.autocast(device_type="cuda", dtype=torch.float16) if amp and device.type == "cuda" else nullcontext()


def train_epoch(
    module: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epoch: int,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp: bool,
    grad_norms: GradNorms,
    recorder: Recorder,
    world: World,
    lr_at: Callable[[int], float] | None = None,
) -> Stats:
    """One pass over `batches`; the module must already be in the right train/eval modes.
    `criterion` is a mean-reduced loss module (smdebug hooks it to record losses).
    `lr_at(step)` (1-based within the epoch) sets every parameter group's learning rate
    before the step; None keeps the optimizer's."""
    loss_sum = correct = count = 0.0
    iterator: Iterator = iter(batches)
    step = 0
    while True:
        started = time.perf_counter()
        try:
            x, y = next(iterator)
        except StopIteration:
            break
        x = to_device(x, device)
        y = y.to(device, non_blocking=True)
        fetched = time.perf_counter()
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step + 1)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            logits = module(x)
            loss = criterion(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # so the recorded norms are the true gradients
        norms = grad_norms() if recorder.enabled else {}
        scaler.step(optimizer)
        scaler.update()
        step_loss = loss.item()  # also waits for the device, so compute_time is real
        step_correct = (logits.argmax(1) == y).sum().item()
        done = time.perf_counter()
        step += 1
        n = len(y)
        loss_sum += step_loss * n
        correct += step_correct
        count += n
        if recorder.enabled:
            recorder.step(
                epoch=epoch,
                step=step,
                loss=step_loss,
                lr=optimizer.param_groups[0]["lr"],
                grad_norm=norms,
                data_time=fetched - started,
                compute_time=done - fetched,
                images_per_sec=n * world.size / max(done - started, 1e-9),
            )
    return Stats(*sum_across(world, [loss_sum, correct, count], device))


def _views(x: torch.Tensor | Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    return (x,) if isinstance(x, torch.Tensor) else x


@torch.no_grad()
def evaluate(
    module: nn.Module,
    batches: Iterable[tuple[torch.Tensor | Sequence[torch.Tensor], torch.Tensor]],
    *,
    device: torch.device,
    amp: bool,
    world: World,
    watched_loss: nn.Module | None = None,
    outputs: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Stats:
    """Mean loss and accuracy over all batches of all ranks. A batch's x is one tensor, or
    several views of the same images (test-time augmentation: the photo and its mirror
    image), whose class probabilities are averaged. `watched_loss` is the training
    criterion that a SageMaker Debugger hook is registered on: calling it on every batch
    lets the hook record EVAL-mode losses; the figures returned come from a sum-reduced
    loss, so the mean is exact whatever the batch sizes. `outputs`, when given, collects this
    rank's (log-probabilities, labels) per batch, on the CPU."""
    module.eval()  # the caller puts it back in train mode (see models.train_mode)
    loss_sum = correct = count = 0.0
    for x, y in batches:
        y = y.to(device, non_blocking=True)
        log_probs = _log_probabilities(module, _views(x), device, amp)
        if watched_loss is not None:
            watched_loss(log_probs, y)  # log-probabilities are logits whose softmax is themselves
        if outputs is not None:
            outputs.append((log_probs.cpu(), y.cpu()))
        loss_sum += nn.functional.nll_loss(log_probs, y, reduction="sum").item()
        correct += (log_probs.argmax(1) == y).sum().item()
        count += len(y)
    return Stats(*sum_across(world, [loss_sum, correct, count], device))


def _log_probabilities(module: nn.Module, views: Sequence[torch.Tensor], device: torch.device, amp: bool) -> torch.Tensor:
    """log of the class probabilities averaged over the views, float32; logsumexp keeps a
    probability that underflows in one view from becoming log(0)."""
    log_probs = []
    for view in views:
        with _autocast(device, amp):
            logits = module(to_device(view, device))
        log_probs.append(torch.log_softmax(logits.float(), dim=1))
    if len(log_probs) == 1:
        return log_probs[0]
    return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))
