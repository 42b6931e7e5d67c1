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
import gc
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision
from breedkit import checkpoints, debugger, distributed, engine, evaluation, imagenet, models
from breedkit.artifacts import write_model_dir
from breedkit.atomic import atomic_write_json
from breedkit.data import DatasetError, DatasetIndex, hold_dataset, load_index
from breedkit.feature_cache import CacheKey, extraction_batch_size, extraction_processes, load_or_extract
from breedkit.metric_lines import load_metric_names
from breedkit.presets import DEFAULT_CROP, DEFAULT_RESIZE
from breedkit.recorder import RECORDS_FILE, Recorder
from breedkit.sources import CachedFeatures, DecodedImages
from torch import nn
from torch.nn.parallel import DistributedDataParallel

SAGEMAKER_CHECKPOINTS = Path("/opt/ml/checkpoints")
SAGEMAKER_TRAINING_CHANNEL = Path("/opt/ml/input/data/training")


class UsageError(ValueError):
    """Flags or environment that cannot make a job; reported as one line, exit status 2."""


def str2bool(text: str) -> bool:
    """SageMaker passes booleans as strings, and the toolkit turns JSON true into 'True'."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


ENVIRONMENT_HELP = """\
environment (read after parsing; flags win, every variable is optional):
  SM_CHANNEL_TRAINING   dataset root: manifest.json + train|valid|test/<breed>/<image>
  SM_CHANNEL_WEIGHTS    folder where a --weights file name is looked up first
  SM_MODEL_DIR          model.pth, classes.json, hyperparameters.json, code/ (model.tar.gz)
  SM_OUTPUT_DATA_DIR    metrics.json and records.jsonl
  SM_NUM_GPUS           GPUs SageMaker gave the job (a note when torch sees none)
  DOGBREED_MANIFEST_SHA256
                        the dataset the job was planned on: a manifest.json with another
                        (a re-ingest since) is refused, not trained on
  SM_HOSTS, SM_CURRENT_HOST
                        the cluster; without torch.distributed only the first host writes
  RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
                        set by torchrun / SageMaker torch_distributed: data parallel
                        (gloo on CPU, nccl on CUDA); rank 0 prints and writes

output lines (stdout; the tuner's regexes read them, see breedkit/metrics.json):
  epoch=1 train_loss=... train_acc=... valid_loss=... valid_acc=...   (every epoch)
  test_loss=... test_acc=...                                          (once, best epoch on valid)
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each flag's default in its help (paths say their own), the epilog kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is argparse.SUPPRESS or not action.option_strings:
            return action.help or ""
        return f"{action.help} (default: %(default)s)"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Fine-tune a torchvision classifier on dog breeds (SageMaker script mode or by hand).",
        formatter_class=_HelpFormatter,
        epilog=ENVIRONMENT_HELP,
    )
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument(
        "--arch",
        default="mobilenet_v2",
        choices=models.ARCHS,
        metavar="ARCH",
        help=f"torchvision classifier: {', '.join(models.ARCHS)}",
    )
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
    hp.add_argument("--epochs", type=int, default=10, help="passes over the training split")
    hp.add_argument("--batch-size", type=int, default=32, help="images per step, per process")
    hp.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (the peak, under a schedule)")
    hp.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    hp.add_argument(
        "--lr-schedule",
        default="cosine",
        choices=("constant", "cosine"),
        help="learning rate over the run, after the warm-up: constant, or a half cosine down to 0",
    )
    hp.add_argument("--warmup-epochs", type=float, default=1.0, help="epochs over which the learning rate rises linearly")
    hp.add_argument("--label-smoothing", type=float, default=0.1, help="share of the target spread over all classes (0 = none)")
    hp.add_argument(
        "--head-init",
        default="pretrained",
        choices=("pretrained", "random"),
        help="pretrained: rows of the new head start from the pretrained classifier's rows for the breeds "
        "it knows (ImageNet names, breedkit/imagenet.py) and from the mean features of their photos for the "
        "others; random: torch's default init",
    )
    hp.add_argument(
        "--tta",
        default="none",
        choices=("none", "flip"),
        help="test-time augmentation for valid, test and serving: flip averages a photo's and its mirror image's probabilities",
    )
    hp.add_argument("--seed", type=int, default=0, help="seed of the head's init, shuffling and augmentation")
    hp.add_argument(
        "--feature-cache",
        type=str2bool,
        metavar="true|false",
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
        metavar="true|false",
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
    run.add_argument(
        "--debugger", type=str2bool, default=False, metavar="true|false", help="register the smdebug hook when installed"
    )
    paths = parser.add_argument_group("paths (flags override SageMaker's environment)")
    paths.add_argument("--data-dir", default=None, help="dataset root; default $SM_CHANNEL_TRAINING")
    paths.add_argument("--weights-dir", default=None, help="where weight file names resolve; default $SM_CHANNEL_WEIGHTS")
    paths.add_argument("--model-dir", default=None, help="model artifacts; default $SM_MODEL_DIR, else ./model")
    paths.add_argument(
        "--output-data-dir",
        default=None,
        help="metrics.json, records.jsonl; default $SM_OUTPUT_DATA_DIR, else ./output/data",
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
    lr_schedule: str
    warmup_epochs: float
    label_smoothing: float
    head_init: str
    tta: str
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
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if hp.augment_views < 0 or hp.max_batches < 0 or hp.warmup_epochs < 0:
            raise UsageError("--augment-views, --max-batches and --warmup-epochs must not be negative")
        if not 0 <= hp.label_smoothing < 1:
            raise UsageError(f"--label-smoothing must be at least 0 and below 1, got {hp.label_smoothing}")
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
        raise UsageError("no dataset: pass --data-dir or set SM_CHANNEL_TRAINING")
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
    weights_path = Path(weights_dir) if weights_dir else None
    return JobPaths(Path(data), model_dir, output_data_dir, checkpoint_dir, cache_dir, weights_path)


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
    raise UsageError(f"--weights {weights}: no such file (looked at {where}); give 'imagenet', 'none' or a state_dict file")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Network:
    model: nn.Module
    backbone: nn.Module  # shares modules with model: what the feature cache runs
    head: nn.Module
    trainable: list[nn.Parameter]
    groups: dict[str, list[nn.Parameter]]  # layer group -> trainable parameters, for grad norms
    source_head: nn.Linear | None  # the pretrained ImageNet classifier the new head replaced


def build_network(hp: Hyperparameters, num_classes: int, weights: str, device: torch.device) -> Network:
    engine.seed_everything(hp.seed)  # the new head's initial weights
    model, source_head = models.build_model_and_source_head(hp.arch, num_classes, weights)
    models.freeze(model, hp.arch, hp.freeze)
    model.to(device, memory_format=engine.memory_format(device))
    backbone, head = models.split_backbone_head(model, hp.arch)
    head_names = models.head_parameter_names(model, hp.arch)
    trainable, groups = [], {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            trainable.append(param)
            groups.setdefault(models.param_group_name(name, head_names), []).append(param)
    return Network(model, backbone, head, trainable, groups, source_head)


def make_source(
    hp: Hyperparameters,
    use_cache: bool,
    index: DatasetIndex,
    net: Network,
    paths: JobPaths,
    weights_id: str,
    *,
    device: torch.device,
    world: distributed.World,
    num_workers: int,
):
    """Cached features for the head (computed now when the cache lacks them), or images."""
    splits = {s: index.splits[s] for s in ("train", "valid", "test") if index.splits[s]}
    if not use_cache:
        return DecodedImages(
            net.model,
            index.root,
            splits,
            resize=hp.resize,
            crop=hp.crop,
            batch_size=hp.batch_size,
            num_workers=num_workers,
            freeze_bn_stats=hp.freeze_bn_stats,
            device=device,
            world=world,
            tta=hp.tta == "flip",
        )
    key = CacheKey(index.identity, hp.arch, weights_id, hp.resize, hp.crop)
    wanted = {s: (samples, 1 + hp.augment_views if s == "train" else 1) for s, samples in splits.items()}
    features, _ = load_or_extract(
        paths.cache_dir,
        key,
        index.root,
        wanted,
        net.backbone,
        device=device,
        batch_size=extraction_batch_size(device),
        num_workers=num_workers,
        processes=extraction_processes(device),
        mirrored=("valid", "test") if hp.tta == "flip" else (),
    )
    features = {s: f.to(device) for s, f in features.items()}
    return CachedFeatures(net.head, features, hp.batch_size, world, tta=hp.tta == "flip")


def init_head(hp: Hyperparameters, net: Network, index: DatasetIndex, source, say) -> None:
    """--head-init pretrained: start the new head where the pretrained classifier already is."""
    if hp.head_init != "pretrained":
        return
    if net.source_head is None:
        say("head: random init (the weights carry no pretrained ImageNet classifier to start from)")
        return
    matches = imagenet.match_classes(index.classes, imagenet.categories(hp.arch))
    features = labels = None
    if isinstance(source, CachedFeatures):  # without the cache, unknown breeds keep random rows
        features, labels = source.features["train"].views[0], source.features["train"].labels
    done = models.init_head(models.head_linear(net.model, hp.arch), net.source_head, matches, features, labels)
    say(
        f"head: {done.matched} of {len(index.classes)} breeds start from the pretrained classifier's rows, "
        f"{done.imprinted} from the mean features of their training photos, {done.fresh} at random"
    )


@dataclass
class EpochContext:
    """What the epochs share: typed values, not the argparse namespace."""

    hp: Hyperparameters
    net: Network
    source: CachedFeatures | DecodedImages
    device: torch.device
    world: distributed.World
    writer: bool  # prints metric lines, writes checkpoints and artifacts
    recorder: Recorder
    checkpoint_dir: Path
    run_args: dict  # what a checkpoint must match to be resumed

    @property
    def amp(self) -> bool:
        """Mixed precision: on CUDA only (engine._autocast)."""
        return self.device.type == "cuda"


def train_epochs(run: EpochContext, state: checkpoints.TrainingState | None, debug: debugger.Debugger, started: float):
    """Epochs from the one after `state` to the last; returns (best, history, seconds before this process)."""
    hp, net, source, device, world, amp = run.hp, run.net, run.source, run.device, run.world, run.amp
    module = source.module
    train_module = DistributedDataParallel(module) if world.distributed else module
    optimizer = torch.optim.AdamW(net.trainable, lr=hp.lr, weight_decay=hp.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    criterion = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    steps_per_epoch = engine.steps_per_epoch(source.size("train"), hp.batch_size, world)
    debug.attach(module, criterion)
    grad_norms = engine.GradNorms(net.groups)
    names = load_metric_names()

    best, history, first_epoch, seconds_before = checkpoints.Best(), [], 1, 0.0
    if state is not None:
        checkpoints.restore(net.model, state.model)
        optimizer.load_state_dict(state.optimizer)
        scaler.load_state_dict(state.scaler)
        best, history, seconds_before = state.best, state.history, state.train_seconds
        first_epoch = state.epoch + 1
        if best.state is None and best.epoch:
            best.state = checkpoints.trainable_state(net.model)  # the last epoch was the best

    for epoch in range(first_epoch, hp.epochs + 1):
        seed = engine.epoch_seed(hp.seed, epoch)
        first_step = (epoch - 1) * steps_per_epoch

        def lr_at(step: int, first_step: int = first_step) -> float:
            factor = engine.lr_factor(first_step + step - 1, steps_per_epoch, hp.epochs, hp.lr_schedule, hp.warmup_epochs)
            return hp.lr * factor

        engine.seed_everything(seed)  # dropout, and augmentation without DataLoader workers
        source.set_train_mode()
        debug.set_mode("train")
        train = engine.train_epoch(
            train_module,
            source.train_batches(torch.Generator().manual_seed(seed)),
            epoch=epoch,
            criterion=criterion,
            optimizer=optimizer,
            scaler=scaler,
            device=device,
            amp=amp,
            grad_norms=grad_norms,
            recorder=run.recorder,
            world=world,
            lr_at=lr_at,
        )
        debug.set_mode("eval")
        valid = engine.evaluate(
            module, source.eval_batches("valid"), device=device, amp=amp, world=world,
            watched_loss=criterion if debug.hook is not None else None,
        )  # fmt: skip
        row = {"train_loss": train.loss, "train_acc": train.acc, "valid_loss": valid.loss, "valid_acc": valid.acc}
        history.append({"epoch": epoch, **row})
        if best.beaten_by(valid.acc, valid.loss):
            best = checkpoints.Best(epoch, valid.acc, valid.loss, checkpoints.trainable_state(net.model))
        if run.writer:
            print(names.epoch_line(epoch, row), flush=True)
            run.recorder.eval(epoch=epoch, **row)
            checkpoint = checkpoints.TrainingState(
                epoch,
                checkpoints.trainable_state(net.model),
                optimizer.state_dict(),
                scaler.state_dict(),
                best,
                history,
                seconds_before + time.time() - started,
            )
            checkpoints.save(run.checkpoint_dir, checkpoint, run.run_args)
        distributed.barrier(world)
    return best, history, seconds_before


class Stopwatch:
    """Wall time per phase of the job, for the report's breakdown: where the minutes went."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        startup = _seconds_since_process_start()
        if startup is not None:
            self.phases["startup"] = round(startup, 3)  # interpreter and imports (torch: seconds)
        self._mark = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - self._mark, 3)
        self._mark = now


def _seconds_since_process_start() -> float | None:
    try:
        import psutil  # in the SageMaker containers and our environment; optional by hand
    except ImportError:
        return None
    return max(0.0, time.time() - psutil.Process().create_time())


def main(args: argparse.Namespace) -> dict[str, float]:
    started = time.time()
    clock = Stopwatch()
    hp = Hyperparameters.from_args(args)
    env = dict(os.environ)
    paths = resolve_paths(args, env)
    cluster = resolve_cluster(env)
    world = distributed.world_from_env()
    device = distributed.pick_device(world, args.device)
    distributed.init(world, device)
    writer = world.is_main and cluster.is_first_host
    say = log if world.is_main else (lambda message: None)
    if world.size == 1 and len(cluster.hosts) > 1:
        say(f"note: {len(cluster.hosts)} hosts, one process each: only {cluster.hosts[0]} writes the model")
    if cluster.num_gpus and device.type != "cuda":
        say(f"note: SageMaker reports {cluster.num_gpus} GPU(s) but torch sees none; training on {device}")

    hold_dataset(paths.data_dir)
    index = load_index(paths.data_dir)
    expected = env.get("DOGBREED_MANIFEST_SHA256")
    if expected and index.identity != expected:
        raise DatasetError(
            f"the dataset in {paths.data_dir} changed since this job was planned (manifest_sha256 "
            f"{index.identity[:12]}..., not {expected[:12]}...: ingested again since); start a new job on it "
            "with another --name"
        )
    if hp.max_batches:
        index = index.subset(hp.max_batches * hp.batch_size * world.size, hp.seed)
    sizes = {split: len(samples) for split, samples in index.splits.items()}
    weights = resolve_weights(hp.weights, paths.weights_dir)
    weights_id = models.weights_identity(weights)
    use_cache = hp.feature_cache and hp.freeze == "backbone"
    if hp.feature_cache and not use_cache:
        say(f"note: --freeze {hp.freeze} trains backbone layers, so features cannot be cached")
    if hp.augment_views and not use_cache:
        say("note: --augment-views applies to the feature cache; without it every step augments afresh")
    net = build_network(hp, len(index.classes), weights, device)

    # Everything that changes the numbers: a checkpoint written with other values is refused.
    run_args = {**asdict(hp), "weights": weights_id, "feature_cache": use_cache, "dataset": index.identity,
                "world_size": world.size}  # fmt: skip
    state = checkpoints.load(paths.checkpoint_dir, run_args) if world.is_main else None
    state = distributed.broadcast_object(world, state)
    if state is not None:
        say(f"resuming after epoch {state.epoch} from {paths.checkpoint_dir}")
    say(
        f"training {hp.arch} ({weights_id[:23]}) on {sizes} images of {len(index.classes)} breeds; "
        f"device {device}, {world.size} process(es), feature cache {'on' if use_cache else 'off'}"
    )
    recorder = Recorder(paths.output_data_dir / RECORDS_FILE if writer else None)
    try:
        recorder.meta(
            arch=hp.arch, hyperparameters=asdict(hp), device=str(device), world_size=world.size,
            num_train=sizes["train"], num_valid=sizes["valid"], num_test=sizes["test"],
            num_classes=len(index.classes), torch_version=torch.__version__, feature_cache=use_cache,
            resumed_from_epoch=state.epoch if state else None, cpu_count=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
        )  # fmt: skip
        clock.lap("setup")
        source = make_source(
            hp, use_cache, index, net, paths, weights_id, device=device, world=world, num_workers=args.num_workers
        )
        init_head(hp, net, index, source, say)  # a resumed run then loads its checkpoint over it
        clock.lap("features")
        run = EpochContext(hp, net, source, device, world, writer, recorder, paths.checkpoint_dir, run_args)
        debug = debugger.Debugger.create(args.debugger, paths.output_data_dir)
        best, history, seconds_before = train_epochs(run, state, debug, started)
        clock.lap("training")

        # Test once, with the weights of the epoch chosen on valid.
        checkpoints.restore(net.model, best.state)
        final = {k: v for k, v in history[best.epoch - 1].items() if k != "epoch"}
        report = None
        if sizes["test"]:
            outputs: list = []
            test = engine.evaluate(
                source.module, source.eval_batches("test"), device=device, amp=run.amp, world=world, outputs=outputs
            )
            final.update(test_loss=test.loss, test_acc=test.acc)
            report = evaluate_test_split(index, outputs, world) if writer or world.distributed else None
        else:
            say("note: the dataset has no test split, so no test metrics")
        clock.lap("evaluation")
        summary = {"best_epoch": best.epoch, **final, "train_seconds": seconds_before + time.time() - started}
        if writer:
            hyperparameters = {
                **asdict(hp), "weights_identity": weights_id, "num_classes": len(index.classes),
                "feature_cache": use_cache, "preset": {"resize": hp.resize, "crop": hp.crop},
                "best_epoch": best.epoch, "dataset": index.identity, "world_size": world.size,
                "torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
            }  # fmt: skip
            write_outputs(paths, net, index, hyperparameters, summary, history, recorder, report, clock)
        distributed.barrier(world)
        return summary
    finally:
        recorder.close()  # also after a crash: a last system sample, the file closed
        distributed.shutdown(world)


def evaluate_test_split(index: DatasetIndex, outputs: list, world: distributed.World) -> dict | None:
    """evaluation.json's content from every rank's test predictions (rank r evaluated the
    test photos r, r + size, ...: engine.eval_index_batches); None on ranks other than 0."""
    shares = distributed.gather_objects(world, outputs)
    if not world.is_main:
        return None
    per_rank = [torch.cat([p for p, _ in share]) if share else torch.empty(0) for share in shares]
    labels_per_rank = [torch.cat([y for _, y in share]) if share else torch.empty(0, dtype=torch.int64) for share in shares]
    n = sum(len(y) for y in labels_per_rank)
    order = [r + j * world.size for r, y in enumerate(labels_per_rank) for j in range(len(y))]
    log_probs = torch.empty(n, per_rank[0].shape[1])
    labels = torch.empty(n, dtype=torch.int64)
    log_probs[order] = torch.cat(per_rank)
    labels[order] = torch.cat(labels_per_rank)
    samples = index.splits["test"]
    return evaluation.evaluate(log_probs.exp(), labels, index.classes, [s.path for s in samples], root=index.root)


def write_outputs(paths: JobPaths, net: Network, index: DatasetIndex, hyperparameters: dict,
                  summary: dict, history: list[dict], recorder: Recorder, report: dict | None,
                  clock: Stopwatch) -> None:  # fmt: skip
    """The final metric line, the model dir (model.tar.gz), metrics.json, evaluation.json and
    the final record."""
    if "test_acc" in summary:
        print(load_metric_names().final_line(summary), flush=True)
    write_model_dir(paths.model_dir, net.model, index.classes, hyperparameters, imagenet_head=net.source_head)
    clock.lap("writing")
    metrics = {"final": summary, "history": history, "timing": clock.phases}
    atomic_write_json(paths.output_data_dir / "metrics.json", metrics)
    if report is not None:
        atomic_write_json(paths.output_data_dir / evaluation.EVALUATION_FILE, report)
    recorder.final(
        best_epoch=summary["best_epoch"],
        test_loss=summary.get("test_loss"),
        test_acc=summary.get("test_acc"),
        train_seconds=summary["train_seconds"],
        timing=clock.phases,
    )


def cli(argv: list[str] | None = None) -> dict[str, float]:
    parsed, unknown = get_args_parser().parse_known_args(argv)
    if unknown:
        # SageMaker tuning adds hyperparameters of its own (e.g. _tuning_objective_metric).
        log(f"note: ignoring arguments train.py does not know: {' '.join(unknown)}")
    try:
        return main(parsed)
    except (UsageError, DatasetError, models.ModelError, checkpoints.ResumeMismatch) as exc:
        # A problem with the inputs is one clear line, not a traceback (exit 2: usage error).
        print(f"train.py: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    # A job's own process: the ~350,000 objects the imports made live as long as it does.
    # Frozen, a full garbage collection no longer walks them (one that fell inside feature
    # extraction took 0.17 s, 6 ms frozen), and forked extraction workers leave those
    # objects' pages shared instead of writing to them. Not in main(): tests call that in
    # their own process, whose garbage a freeze would keep forever. Forked trials: see
    # warm_start.py.
    gc.freeze()
    cli()
