"""Fine-tune a torchvision classifier on dog breeds: the one entry point for tuning and training.

Runs in the SageMaker PyTorch training container (script mode), under torchrun for data
parallel, and by hand:

    python train.py --data-dir dogImages --weights imagenet --epochs 5

Hyperparameters arrive as flags; paths come from SageMaker's environment (SM_CHANNEL_TRAINING,
SM_CHANNEL_WEIGHTS, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, SM_NUM_GPUS, SM_HOSTS, SM_CURRENT_HOST)
with fallbacks, and flags override them. One metric line per epoch and one at the end, in the
form of breedkit/metrics.json, are what SageMaker's metric regexes and the local backend read.
Only the stdlib, torch, torchvision, Pillow and numpy are imported (psutil and smdebug when
present): the containers have nothing else. See `python train.py --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from breedkit import checkpoints, debugger, distributed, engine, models
from breedkit.artifacts import write_model_dir
from breedkit.atomic import atomic_write_json
from breedkit.data import DatasetError, DatasetIndex, ImageDataset, load_index
from breedkit.feature_cache import CacheKey, SplitFeatures, load_or_extract
from breedkit.metric_lines import load_metric_names
from breedkit.presets import DEFAULT_CROP, DEFAULT_RESIZE, eval_transform, train_transform
from breedkit.recorder import RECORDS_FILE, Recorder

SAGEMAKER_CHECKPOINTS = Path("/opt/ml/checkpoints")
SAGEMAKER_TRAINING_CHANNEL = Path("/opt/ml/input/data/training")


def str2bool(text: str) -> bool:
    """SageMaker passes booleans as strings, and the toolkit turns JSON true into 'True'."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Fine-tune a torchvision classifier on dog breeds (SageMaker script mode or by hand).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument("--arch", default="mobilenet_v2", choices=models.ARCHS, help="torchvision classifier")
    hp.add_argument(
        "--weights",
        default="imagenet",
        help="'imagenet' (torchvision's weights, needs network), 'none' (random init), or a state_dict "
        "file: a path, or a file name in the weights channel (SM_CHANNEL_WEIGHTS / --weights-dir)",
    )
    hp.add_argument(
        "--freeze",
        default="backbone",
        help="'backbone' trains the new head only, 'none' trains everything, or a parameter-name prefix "
        "(e.g. features.17, layer4) from which layers train",
    )
    hp.add_argument("--epochs", type=int, default=5, help="passes over the training split")
    hp.add_argument("--batch-size", type=int, default=32, help="images per step, per process")
    hp.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    hp.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    hp.add_argument("--seed", type=int, default=0, help="seed of the head's init, shuffling and augmentation")
    hp.add_argument(
        "--feature-cache",
        type=str2bool,
        default=True,
        help="with --freeze backbone: compute backbone features once (cached in --cache-dir) and train the "
        "head on them; false runs the backbone every step",
    )
    hp.add_argument(
        "--augment-views",
        type=int,
        default=0,
        help="with the feature cache: augmented views per training image cached besides the plain one; "
        "each epoch draws one view per image",
    )
    hp.add_argument("--resize", type=int, default=DEFAULT_RESIZE, help="evaluation preset: short side resized to")
    hp.add_argument("--crop", type=int, default=DEFAULT_CROP, help="crop size of both presets")
    hp.add_argument(
        "--freeze-bn-stats",
        type=str2bool,
        default=False,
        help="keep every BatchNorm in eval mode even when it trains (fine-tuning folded weights); "
        "frozen BatchNorm layers are always in eval mode",
    )
    hp.add_argument(
        "--max-batches",
        type=int,
        default=0,
        help="pre-flight: use only this many batches per split (per process) per epoch; 0 = all",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes")
    run.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"), help="auto: cuda > mps > cpu")
    run.add_argument("--debugger", type=str2bool, default=False, help="register the smdebug hook when installed")
    paths = parser.add_argument_group("paths (flags override SageMaker's environment)")
    paths.add_argument("--data-dir", default=None, help="dataset root; default $SM_CHANNEL_TRAINING")
    paths.add_argument("--weights-dir", default=None, help="where weight file names resolve; default $SM_CHANNEL_WEIGHTS")
    paths.add_argument("--model-dir", default=None, help="model artifacts; default $SM_MODEL_DIR, else ./model")
    paths.add_argument(
        "--output-data-dir", default=None, help="metrics.json, records.jsonl; default $SM_OUTPUT_DATA_DIR, else ./output/data"
    )
    paths.add_argument(
        "--checkpoint-dir",
        default=None,
        help=f"per-epoch checkpoints; default {SAGEMAKER_CHECKPOINTS} when it exists, else 'checkpoints' beside the model dir",
    )
    paths.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache shared by trials; default <tmp>/dogbreed-features",
    )
    return parser


@dataclass(frozen=True)
class Hyperparameters:
    arch: str
    weights: str
    freeze: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    feature_cache: bool
    augment_views: int
    resize: int
    crop: int
    freeze_bn_stats: bool
    max_batches: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Hyperparameters:
        hp = cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})
        for name in ("epochs", "batch_size", "crop", "resize"):
            if getattr(hp, name) < 1:
                raise SystemExit(f"train.py: --{name.replace('_', '-')} must be at least 1")
        if hp.augment_views < 0 or hp.max_batches < 0:
            raise SystemExit("train.py: --augment-views and --max-batches must not be negative")
        return hp


@dataclass(frozen=True)
class JobPaths:
    data_dir: Path
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    cache_dir: Path
    weights_dir: Path | None


@dataclass(frozen=True)
class Cluster:
    """What SageMaker says about the machines: for the records and for who writes."""

    hosts: list[str]
    current_host: str
    num_gpus: int | None

    @property
    def is_first_host(self) -> bool:
        return not self.hosts or self.current_host == self.hosts[0]


def resolve_paths(args: argparse.Namespace, env: dict[str, str]) -> JobPaths:
    """Flags first, then SageMaker's variables, then defaults that work by hand."""
    data = args.data_dir or env.get("SM_CHANNEL_TRAINING")
    if not data and SAGEMAKER_TRAINING_CHANNEL.is_dir():
        data = str(SAGEMAKER_TRAINING_CHANNEL)
    if not data:
        raise SystemExit("train.py: no dataset; pass --data-dir or set SM_CHANNEL_TRAINING")
    model_dir = Path(args.model_dir or env.get("SM_MODEL_DIR") or "model")
    output_data_dir = Path(args.output_data_dir or env.get("SM_OUTPUT_DATA_DIR") or "output/data")
    if args.checkpoint_dir:
        checkpoint_dir = Path(args.checkpoint_dir)
    elif SAGEMAKER_CHECKPOINTS.is_dir():
        checkpoint_dir = SAGEMAKER_CHECKPOINTS
    else:
        checkpoint_dir = model_dir.resolve().parent / "checkpoints"
    cache_dir = Path(args.cache_dir or Path(tempfile.gettempdir()) / "dogbreed-features")
    weights_dir = args.weights_dir or env.get("SM_CHANNEL_WEIGHTS")
    return JobPaths(Path(data), model_dir, output_data_dir, checkpoint_dir, cache_dir, Path(weights_dir) if weights_dir else None)


def resolve_cluster(env: dict[str, str]) -> Cluster:
    hosts = json.loads(env.get("SM_HOSTS", "[]"))
    gpus = env.get("SM_NUM_GPUS")
    return Cluster(hosts, env.get("SM_CURRENT_HOST", hosts[0] if hosts else ""), int(gpus) if gpus else None)


def resolve_weights(weights: str, weights_dir: Path | None) -> str:
    """'imagenet', 'none', or the absolute path of the state_dict file."""
    if weights in ("imagenet", "none"):
        return weights
    candidates = [Path(weights).expanduser()]
    if weights_dir is not None and not Path(weights).is_absolute():
        candidates.insert(0, weights_dir / weights)  # the weights channel wins over the cwd
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    where = ", ".join(str(c) for c in candidates)
    raise SystemExit(f"train.py: --weights {weights}: no such file (looked at {where}); give 'imagenet', 'none' or a state_dict file")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cached_batches(features: SplitFeatures, index_batches: list[list[int]], view_of: torch.Tensor | None):
    """(feature, label) batches from the cache; `view_of[i]` picks item i's augmented view."""
    device = features.views.device
    for batch in index_batches:
        idx = torch.tensor(batch, device=device)
        views = view_of[idx] if view_of is not None else torch.zeros_like(idx)
        yield features.views[views, idx], features.labels[idx]


def image_batches(dataset: ImageDataset, index_batches, num_workers: int, device: torch.device, generator=None):
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=index_batches,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        generator=generator,  # seeds the workers' RNGs (augmentation) from (seed, epoch)
    )


def main(args: argparse.Namespace) -> dict[str, float]:
    started = time.time()
    hp = Hyperparameters.from_args(args)
    env = dict(os.environ)
    paths = resolve_paths(args, env)
    cluster = resolve_cluster(env)
    world = distributed.world_from_env()
    device = distributed.pick_device(world, args.device)
    distributed.init(world, device)
    if world.size == 1 and len(cluster.hosts) > 1:
        log(f"note: {len(cluster.hosts)} hosts but one process each; only {cluster.hosts[0]} writes the model")
    writer = world.is_main and cluster.is_first_host
    say = log if world.is_main else (lambda message: None)
    amp = device.type == "cuda"
    names = load_metric_names()

    index: DatasetIndex = load_index(paths.data_dir)
    if hp.max_batches:
        index = index.subset(hp.max_batches * hp.batch_size * world.size, hp.seed)
    weights = resolve_weights(hp.weights, paths.weights_dir)
    weights_id = models.weights_identity(weights)
    use_cache = hp.feature_cache and hp.freeze == "backbone"
    if hp.feature_cache and not use_cache:
        say(f"note: --freeze {hp.freeze} trains backbone layers, so features cannot be cached; running the backbone every step")

    engine.seed_everything(hp.seed)
    model = models.build_model(hp.arch, len(index.classes), weights)
    models.freeze(model, hp.arch, hp.freeze)
    model.to(device)
    backbone, head = models.split_backbone_head(model, hp.arch)
    head_names = models.head_parameter_names(model, hp.arch)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups: dict[str, list[nn.Parameter]] = {}
    for name, param in trainable:
        groups.setdefault(models.param_group_name(name, head_names), []).append(param)

    # Everything that changes the numbers: a checkpoint written with other values is refused.
    run_args = {
        **asdict(hp),
        "weights": weights_id,
        "feature_cache": use_cache,
        "dataset": index.identity,
        "world_size": world.size,
    }
    recorder = Recorder(paths.output_data_dir / RECORDS_FILE if writer else None)
    state = checkpoints.load(paths.checkpoint_dir, run_args) if world.is_main else None
    state = distributed.broadcast_object(world, state)

    split_sizes = {split: len(samples) for split, samples in index.splits.items()}
    recorder.meta(
        arch=hp.arch,
        hyperparameters=asdict(hp),
        device=str(device),
        world_size=world.size,
        num_train=split_sizes["train"],
        num_valid=split_sizes["valid"],
        num_test=split_sizes["test"],
        num_classes=len(index.classes),
        torch_version=torch.__version__,
        feature_cache=use_cache,
        resumed_from_epoch=state.epoch if state else None,
    )
    say(
        f"training {hp.arch} ({weights_id[:23]}) on {split_sizes} images of {len(index.classes)} breeds; "
        f"device {device}, {world.size} process(es), feature cache {'on' if use_cache else 'off'}"
    )

    used_splits = [s for s in ("train", "valid", "test") if index.splits[s]]
    if use_cache:
        key = CacheKey(index.identity, hp.arch, weights_id, hp.resize, hp.crop)
        wanted = {s: (index.splits[s], 1 + hp.augment_views if s == "train" else 1) for s in used_splits}
        features, _ = load_or_extract(
            paths.cache_dir, key, index.root, wanted, backbone,
            device=device, batch_size=max(hp.batch_size, 64), num_workers=args.num_workers,
        )
        features = {s: f.to(device) for s, f in features.items()}
        module: nn.Module = head
    else:
        if hp.augment_views:
            say("note: --augment-views applies to the feature cache; without it every step augments afresh")
        datasets = {
            s: ImageDataset(
                index.root,
                index.splits[s],
                train_transform(hp.crop) if s == "train" else eval_transform(hp.resize, hp.crop),
            )
            for s in used_splits
        }
        module = model

    def eval_batches(split: str):
        n = split_sizes[split]
        batches = engine.eval_index_batches(n, hp.batch_size, world)
        if use_cache:
            return cached_batches(features[split], batches, None)
        return image_batches(datasets[split], batches, args.num_workers, device)

    train_module = DistributedDataParallel(module) if world.distributed else module
    optimizer = torch.optim.AdamW([p for _, p in trainable], lr=hp.lr, weight_decay=hp.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    criterion = nn.CrossEntropyLoss()
    debug = debugger.attach(args.debugger, module, criterion, paths.output_data_dir)
    grad_norms = engine.GradNorms(groups)

    best = checkpoints.Best()
    history: list[dict[str, float]] = []
    first_epoch, seconds_before = 1, 0.0
    if state is not None:
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        scaler.load_state_dict(state.scaler)
        best, history, seconds_before = state.best, state.history, state.train_seconds
        first_epoch = state.epoch + 1
        say(f"resuming from the checkpoint of epoch {state.epoch} in {paths.checkpoint_dir}")
        if best.state is None and best.epoch:
            best.state = checkpoints.cpu_copy(model.state_dict())

    for epoch in range(first_epoch, hp.epochs + 1):
        seed = engine.epoch_seed(hp.seed, epoch)
        engine.seed_everything(seed)
        generator = torch.Generator().manual_seed(seed)
        batches = engine.train_index_batches(split_sizes["train"], hp.batch_size, generator, world)
        if use_cache:
            head.train()
            views = features["train"].views.shape[0]
            view_of = torch.randint(views, (split_sizes["train"],), generator=generator).to(device) if views > 1 else None
            train_batches = cached_batches(features["train"], batches, view_of)
        else:
            models.train_mode(model, hp.freeze_bn_stats)
            train_batches = image_batches(datasets["train"], batches, args.num_workers, device, generator)
        debug.set_mode("train")
        train = engine.train_epoch(
            train_module, train_batches, epoch=epoch, criterion=criterion, optimizer=optimizer, scaler=scaler,
            device=device, amp=amp, grad_norms=grad_norms, recorder=recorder, world=world,
        )
        debug.set_mode("eval")
        valid = engine.evaluate(module, eval_batches("valid"), device=device, amp=amp, world=world)
        row = {"train_loss": train.loss, "train_acc": train.acc, "valid_loss": valid.loss, "valid_acc": valid.acc}
        history.append({"epoch": epoch, **row})
        if best.beaten_by(valid.acc, valid.loss):
            best = checkpoints.Best(epoch, valid.acc, valid.loss, checkpoints.cpu_copy(model.state_dict()))
        if writer:
            print(names.epoch_line(epoch, row), flush=True)
            recorder.eval(epoch=epoch, **row)
            checkpoints.save(
                paths.checkpoint_dir,
                checkpoints.TrainingState(
                    epoch, model.state_dict(), optimizer.state_dict(), scaler.state_dict(), best, history,
                    seconds_before + time.time() - started,
                ),
                run_args,
            )
        distributed.barrier(world)

    if best.state is not None:
        model.load_state_dict(best.state)
    final = {k: v for k, v in history[best.epoch - 1].items() if k != "epoch"} if best.epoch else {}
    if index.splits["test"]:
        debug.set_mode("eval")
        test = engine.evaluate(module, eval_batches("test"), device=device, amp=amp, world=world)
        final.update(test_loss=test.loss, test_acc=test.acc)
    else:
        say("note: the dataset has no test split; no test metrics")
    train_seconds = seconds_before + time.time() - started
    if writer:
        if "test_acc" in final:
            print(names.final_line(final), flush=True)
        hyperparameters = {
            **asdict(hp),
            "weights": hp.weights,
            "weights_identity": weights_id,
            "num_classes": len(index.classes),
            "feature_cache": use_cache,
            "preset": {"resize": hp.resize, "crop": hp.crop},
            "best_epoch": best.epoch,
            "dataset": index.identity,
            "world_size": world.size,
            "torch_version": torch.__version__,
            "torchvision_version": torchvision.__version__,
        }
        write_model_dir(paths.model_dir, model, index.classes, hyperparameters)
        summary = {"best_epoch": best.epoch, **final, "train_seconds": train_seconds}
        atomic_write_json(paths.output_data_dir / "metrics.json", {"final": summary, "history": history})
        recorder.final(
            best_epoch=best.epoch,
            test_loss=final.get("test_loss"),
            test_acc=final.get("test_acc"),
            train_seconds=train_seconds,
        )
    recorder.close()
    distributed.barrier(world)
    distributed.shutdown(world)
    return {"best_epoch": best.epoch, **final}


if __name__ == "__main__":
    parsed, unknown = get_args_parser().parse_known_args()
    if unknown:
        # SageMaker tuning adds its own hyperparameters (e.g. _tuning_objective_metric).
        log(f"note: ignoring arguments train.py does not know: {' '.join(unknown)}")
    try:
        main(parsed)
    except (DatasetError, models.ModelError, checkpoints.ResumeMismatch) as exc:
        # A problem with the inputs is one clear line, not a traceback (exit 2: usage error).
        print(f"train.py: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
