"""The typed configuration: every key a user can set, with its description.

Every model forbids unknown keys, so a typo in YAML or in `--set` fails before any work.
Built-in defaults describe the embedded `local` backend; YAML files and `--set` layer over them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

DOGIMAGES_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"

# torchvision classifiers the training package knows how to re-head (see source_dir/breedkit/models.py).
Arch = Literal[
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_b1",
    "convnext_tiny",
]
ARCHS: tuple[str, ...] = get_args(Arch)

_DURATION = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,12})?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A bound far beyond any real TTL or job (SageMaker's longest job is 28 days) that keeps
# `now + duration` inside datetime's range, so a duration accepted here never overflows later.
MAX_DURATION = timedelta(days=365)
# Whole numbers beyond 64 bits reach no library intact (torch seeds, struct packing, sqlite).
MAX_INT = 2**63 - 1
MAX_SEED = 2**32 - 1  # numpy's seed range, the narrowest of the seeded libraries


def parse_duration(text: str) -> timedelta:
    """'90m' -> 1.5 hours. Units: s, m, h, d; at most MAX_DURATION."""
    shown = str(text) if len(str(text)) <= 40 else f"{str(text)[:37]}..."
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"expected a duration like '30m', '2h' or '1d', got {shown!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{shown!r} is longer than the {MAX_DURATION.days}d this tool allows")
    return timedelta(seconds=seconds)


def _takes_bool(annotation: Any) -> bool:
    return annotation is bool or annotation is Any or any(_takes_bool(arg) for arg in get_args(annotation))


class Strict(BaseModel):
    # Numbers given where text is expected (a sha256 of digits, --set name=2024) stay text.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any, info: ValidationInfo) -> Any:
        """Every model's one gate for values pydantic would quietly bend: `true` taken as 1
        for a number (--set train.batch_size=true), and integers too large for any library
        (a 5,000-digit train.lr), which overflow far from the key that set them."""
        if isinstance(value, bool):
            if not _takes_bool(cls.model_fields[info.field_name].annotation):
                raise ValueError("expected a number or text, not true/false")
        elif isinstance(value, int) and abs(value) > MAX_INT:
            raise ValueError(f"a number of {value.bit_length()} bits is out of range (at most 2**63 - 1)")
        return value


class SplitRatios(Strict):
    train: float = Field(0.8, gt=0, lt=1, description="Share of each class used for training.")
    valid: float = Field(0.1, gt=0, lt=1, description="Share of each class used for validation (model selection).")
    test: float = Field(0.1, gt=0, lt=1, description="Share of each class held out for the final test.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitRatios:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + valid + test must add up to 1, got {total:g}")
        return self


class DataConfig(Strict):
    source: str = Field(
        DOGIMAGES_URL,
        description="Where the photos come from: a folder, a .zip/.tar/.tar.gz archive, or an http(s) URL.",
    )
    uri: str | None = Field(
        None,
        description="Where the ingested dataset lives: a local folder or s3://bucket/prefix. "
        "Default: <workspace>/data/<dataset> locally, s3://<bucket>/<prefix>/data on SageMaker.",
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="Expected sha256 of a downloaded archive (checked when set)."
    )
    resize: int | None = Field(
        None, ge=32, le=4096, description="Store a copy resized so its short side is this many pixels (originals untouched)."
    )
    split: SplitRatios = Field(
        default_factory=SplitRatios, description="Ratios used when a source has no train/valid/test folders."
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the deterministic, stratified split.")
    min_side: int = Field(32, ge=1, description="Images whose short side is smaller than this are reported and excluded.")
    max_pixels: int = Field(
        89_478_485, ge=1, description="Images claiming more pixels than this are refused (decompression bombs)."
    )
    max_image_bytes: int = Field(
        64 * 2**20,
        ge=1,
        description="Photos larger than this many bytes are refused (a problem per file) before they are read.",
    )
    max_archive_bytes: int = Field(
        20 * 2**30, ge=1, description="Refuse archives that would unpack to more than this many bytes (zip bombs)."
    )
    max_archive_files: int = Field(200_000, ge=1, description="Refuse archives with more entries than this.")
    workers: int = Field(8, ge=1, le=128, description="Parallel workers for checking images (each decodes one whole).")
    store_workers: int = Field(
        32,
        ge=1,
        le=128,
        description="Concurrent copies, uploads and S3 requests while storing the dataset. An upload of a "
        "photo mostly waits on the network, so the longer the round trip the more of them pay "
        "(benchmarks/bench_ingest_s3.py); the S3 client keeps 32 connections.",
    )


class ModelConfig(Strict):
    arch: Arch = Field("mobilenet_v2", description="torchvision classifier to fine-tune.")
    weights: str = Field(
        "imagenet",
        description="'imagenet' (torchvision's weights), 'none' (random init), or a path / s3:// URI of a state_dict.",
    )
    freeze: str = Field(
        "backbone",
        description="'backbone' trains the new head only, 'none' trains everything, "
        "or a parameter-name prefix (e.g. 'features.17') from which layers are unfrozen.",
    )
    head_init: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="'pretrained': the new head's rows start from the pretrained ImageNet classifier's rows "
        "for the breeds it knows (matched by name) and from the mean features of their photos for the others; "
        "'random': torch's default init.",
    )
    tta: Literal["flip", "none"] = Field(
        "none",
        description="Test-time augmentation for validation, test and serving: 'flip' averages the class "
        "probabilities of a photo and of its mirror image (two forward passes per photo). Off by default: "
        "it gained nothing on held-out photos (valid +0.002, test -0.009; benchmarks/bench_accuracy.py) "
        "and costs 1.5x the serving latency.",
    )


class TrainConfig(Strict):
    epochs: int = Field(10, ge=1, le=1000, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, le=4096, description="Images per optimisation step (per process).")
    lr: float = Field(1e-4, gt=0, le=10, description="AdamW learning rate (the peak, under a schedule).")
    weight_decay: float = Field(1e-2, ge=0, le=10, description="AdamW weight decay.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="The learning rate after the warm-up: constant, or a half cosine down to 0 at the end."
    )
    warmup_epochs: float = Field(
        1.0, ge=0, le=1000, description="Epochs over which the learning rate rises linearly from 0 to train.lr."
    )
    label_smoothing: float = Field(
        0.1, ge=0, lt=1, description="Share of each training target spread evenly over all classes (0 = none)."
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed for weights of the new head, shuffling and augmentation.")
    feature_cache: bool = Field(
        True, description="With a frozen backbone, compute backbone features once and train the head on the cache."
    )
    augment_views: int = Field(
        0, ge=0, le=32, description="Augmented views per training image cached in addition to the plain one."
    )
    num_workers: int = Field(2, ge=0, le=64, description="DataLoader worker processes.")
    processes: int = Field(1, ge=1, le=64, description="Local data-parallel processes (torch.distributed, gloo on CPU).")


ParamType = Literal["continuous", "integer", "categorical"]
Scaling = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]


class ParamRange(Strict):
    type: ParamType = Field(description="continuous (floats), integer, or categorical (a list of values).")
    min: float | None = Field(None, description="Lower bound (continuous and integer).")
    max: float | None = Field(None, description="Upper bound (continuous and integer).")
    values: list[str | int | float] | None = Field(None, description="The choices (categorical).")
    scaling: Scaling = Field("Auto", description="How the range is searched: Auto, Linear, Logarithmic, ReverseLogarithmic.")

    @model_validator(mode="after")
    def _shape(self) -> ParamRange:
        if self.type == "categorical":
            if not self.values:
                raise ValueError("a categorical range needs 'values'")
            if self.min is not None or self.max is not None:
                raise ValueError("a categorical range takes 'values', not 'min'/'max'")
        else:
            if self.min is None or self.max is None:
                raise ValueError(f"a {self.type} range needs 'min' and 'max'")
            if self.values is not None:
                raise ValueError(f"a {self.type} range takes 'min'/'max', not 'values'")
            if self.min >= self.max:
                raise ValueError(f"'min' ({self.min:g}) must be below 'max' ({self.max:g})")
            if self.scaling in ("Logarithmic", "ReverseLogarithmic") and self.min <= 0:
                raise ValueError(f"{self.scaling} scaling needs min > 0")
            if self.type == "integer" and (self.min != int(self.min) or self.max != int(self.max)):
                raise ValueError("an integer range needs whole-number bounds")
        return self


class Objective(Strict):
    metric: str = Field("valid_acc", description="The metric the search optimises; must be a 'valid_' metric.")
    type: Literal["Maximize", "Minimize"] = Field("Maximize", description="Maximize or Minimize the metric.")

    @field_validator("metric")
    @classmethod
    def _valid_only(cls, value: str) -> str:
        if not value.startswith("valid_"):
            raise ValueError("tuning optimises a validation metric (valid_acc or valid_loss); test is never optimised")
        return value


def _default_ranges() -> dict[str, ParamRange]:
    # Centred on the default recipe (see configs/hpo.yaml for why these knobs).
    return {
        "lr": ParamRange(type="continuous", min=3e-5, max=1e-3, scaling="Logarithmic"),
        "epochs": ParamRange(type="integer", min=6, max=16),
        "label_smoothing": ParamRange(type="continuous", min=0.0, max=0.2),
        "lr_schedule": ParamRange(type="categorical", values=["cosine", "constant"]),
        "batch_size": ParamRange(type="categorical", values=[16, 32, 64]),
    }


class TuneConfig(Strict):
    name: str | None = Field(None, description="Tuning job name; running `tune` again with the same name resumes it.")
    strategy: Literal["Bayesian", "Random", "Grid", "Hyperband"] = Field(
        "Bayesian", description="Search strategy (locally: Bayesian=TPE, Random, Grid, Hyperband=pruning)."
    )
    max_jobs: int = Field(
        8, ge=1, le=1000, description="Total number of trials (Grid runs every point of its grid instead, as on SageMaker)."
    )
    max_parallel_jobs: int = Field(1, ge=1, le=100, description="Trials running at once.")
    early_stopping: Literal["Off", "Auto"] = Field(
        "Off", description="Stop unpromising trials early (median rule); 'Auto' on SageMaker."
    )
    objective: Objective = Field(default_factory=Objective, description="What the search optimises.")
    ranges: dict[str, ParamRange] = Field(
        default_factory=_default_ranges, description="Hyperparameters to search, by train.* name."
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the search strategy.")
    prewarm: bool = Field(
        True,
        description="Local: each worker imports torch once and forks every trial's train.py from itself, "
        "instead of a fresh interpreter per trial (saves seconds per trial); no effect on SageMaker.",
    )
    warm_start_from: list[str] = Field(
        default_factory=list, description="Earlier tuning jobs whose results seed this one (SageMaker)."
    )

    @model_validator(mode="after")
    def _searchable(self) -> TuneConfig:
        allowed = set(TrainConfig.model_fields) - {"feature_cache", "num_workers", "processes"}
        for name in self.ranges:
            if name not in allowed:
                raise ValueError(f"cannot tune {name!r}; tunable: {', '.join(sorted(allowed))}")
        if self.strategy == "Grid":
            bad = [n for n, r in self.ranges.items() if r.type == "continuous"]
            if bad:
                raise ValueError(
                    f"Grid search takes only integer and categorical ranges, but {', '.join(bad)} "
                    f"{'is' if len(bad) == 1 else 'are'} continuous"
                )
        if self.strategy == "Hyperband" and "epochs" in self.ranges:
            raise ValueError("Hyperband decides the epochs itself: remove 'epochs' from tune.ranges")
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError(f"max_parallel_jobs ({self.max_parallel_jobs}) exceeds max_jobs ({self.max_jobs})")
        return self


class InstanceTypes(Strict):
    train: str = Field("ml.g4dn.xlarge", description="Instance type of training jobs.")
    tune: str = Field("ml.g4dn.xlarge", description="Instance type of tuning trials.")
    endpoint: str = Field("ml.m5.large", description="Instance type of real-time endpoints.")


def _default_prices() -> dict[str, float]:
    # On-demand us-east-1 list prices in USD/hour (SageMaker pricing page, 2026); edit for your region.
    return {
        "ml.m5.large": 0.115,
        "ml.m5.xlarge": 0.23,
        "ml.c5.xlarge": 0.204,
        "ml.c5.2xlarge": 0.408,
        "ml.g4dn.xlarge": 0.736,
        "ml.g4dn.2xlarge": 0.94,
        "ml.g5.xlarge": 1.408,
        "ml.g5.2xlarge": 1.515,
        "ml.p3.2xlarge": 3.825,
        "serverless": 0.0,
        "local": 0.0,
    }


class SageMakerConfig(Strict):
    region: str | None = Field(None, description="AWS region; default from the AWS environment or profile.")
    profile: str | None = Field(None, description="AWS named profile.")
    role: str | None = Field(None, description="Full IAM role ARN that SageMaker jobs and models assume.")
    bucket: str | None = Field(None, description="S3 bucket for data and artifacts; default: the SDK's default bucket.")
    prefix: str = Field("dogbreed", description="S3 key prefix under the bucket.")
    framework_version: str = Field("2.8.0", description="PyTorch training container version.")
    inference_framework_version: str = Field("2.6.0", description="PyTorch inference container version.")
    py_version: str = Field("py312", description="Python version of the containers.")
    instance_type: InstanceTypes = Field(default_factory=InstanceTypes, description="Instance types by use.")
    instance_count: int = Field(1, ge=1, le=64, description="Training instances; >1 runs torch_distributed.")
    endpoint_instance_count: int = Field(1, ge=1, le=32, description="Instances behind a real-time endpoint.")
    spot: bool = Field(False, description="Use managed spot training (checkpoints go to S3).")
    max_run: str = Field("4h", description="Longest a training job may run.")
    max_wait: str = Field("8h", description="With spot: longest to wait for capacity plus run time.")
    volume_size_gb: int = Field(30, ge=1, le=16384, description="EBS volume of training instances.")
    debugger: bool = Field(
        False,
        description="Attach SageMaker Debugger hooks and rules (closed to new AWS accounts since 2026-07-30). "
        "Refused on PyTorch 2.x training containers (no smdebug there) and with spot on several instances.",
    )
    profiler: bool = Field(
        False, description="Enable the SageMaker Profiler and ProfilerReport (framework profiling is deprecated for PyTorch 2.x)."
    )
    preflight: bool = Field(True, description="Run train.py on one batch locally and check the AWS setup first.")
    network_isolation: bool = Field(
        False,
        description="Run training jobs without internet (EnableNetworkIsolation); model.weights=imagenet is then "
        "resolved on this machine and staged to S3 once, as the job's weights channel.",
    )
    scheduler_role: str | None = Field(
        None,
        description="Full IAM role ARN EventBridge Scheduler assumes to delete an endpoint when deploy.ttl ends "
        "(needs sagemaker:DeleteEndpoint, trusted by scheduler.amazonaws.com); without it the TTL is only a tag.",
    )
    expected_hours: float = Field(0.5, gt=0, description="Expected hours per training job, for cost estimates.")
    prices: dict[str, float] = Field(default_factory=_default_prices, description="USD per instance-hour by type.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on everything created.")

    @field_validator("role", "scheduler_role")
    @classmethod
    def _full_arn(cls, value: str | None) -> str | None:
        # The SDK accepts bare role names in some calls and not in others; a full ARN always works.
        if value is not None and not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", value):
            raise ValueError("expected a full IAM role ARN like arn:aws:iam::123456789012:role/SageMakerRole")
        return value

    @field_validator("max_run", "max_wait")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class ServerlessConfig(Strict):
    memory_mb: int = Field(3072, description="Memory of a serverless endpoint (1024..6144, steps of 1024).")
    max_concurrency: int = Field(5, ge=1, le=200, description="Concurrent invocations of a serverless endpoint.")

    @field_validator("memory_mb")
    @classmethod
    def _memory(cls, value: int) -> int:
        if value not in (1024, 2048, 3072, 4096, 5120, 6144):
            raise ValueError("must be one of 1024, 2048, 3072, 4096, 5120, 6144")
        return value


class DeployConfig(Strict):
    endpoint_name: str = Field(
        "dogbreed", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", description="Endpoint name (SageMaker naming rules)."
    )
    ttl: str = Field(
        "2h",
        description="The endpoint is deleted after this long: by its own server (local), by an EventBridge "
        "Scheduler schedule with sagemaker.scheduler_role (SageMaker; else only a tag that teardown --expired reads).",
    )
    serverless: bool = Field(False, description="Deploy a serverless endpoint instead of a real-time one (SageMaker).")
    serverless_config: ServerlessConfig = Field(default_factory=ServerlessConfig, description="Serverless sizing.")
    host: str = Field("127.0.0.1", description="Address the local endpoint binds.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the local endpoint (0 picks a free one).")
    top_k: int = Field(5, ge=1, le=133, description="Breeds returned per image.")
    response: Literal["top_k", "probabilities"] = Field(
        "top_k",
        description="What an endpoint answers a request whose Accept is missing or application/json without "
        "top_k: 'top_k' ({\"predictions\": [...]}) or 'probabilities' (a JSON list of per-image probability "
        "lists in class order, the seed notebook's shape).",
    )
    dog_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="predict names no breed for a photo whose dog probability (the pretrained ImageNet "
        "classifier's mass on its dog breeds) is below this: 'not a dog'. 0 names a breed for everything.",
    )
    workers: int = Field(4, ge=1, le=64, description="Concurrent requests the local endpoint handles.")

    def serving_environment(self) -> dict[str, str]:
        """What inference.py reads from its environment, on the local server and in SageMaker."""
        return {"DOGBREED_TOP_K": str(self.top_k), "DOGBREED_RESPONSE": self.response}

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        parse_duration(value)
        return value


class TransformConfig(Strict):
    instance_type: str = Field("ml.m5.large", description="Instance type of SageMaker Batch Transform jobs.")
    instance_count: int = Field(1, ge=1, le=100, description="Instances of a Batch Transform job.")
    max_payload_mb: int = Field(
        6,
        ge=1,
        le=100,
        description="Largest request transform sends the model, locally or as a Batch Transform job's MaxPayloadInMB; "
        "larger photos are downscaled to fit.",
    )
    max_concurrent_transforms: int | None = Field(
        None, ge=1, le=1000, description="Parallel requests per instance of a Batch Transform job; unset: SageMaker's choice."
    )
    expected_hours: float = Field(0.25, gt=0, description="Expected hours of a Batch Transform job, for cost estimates.")


class Config(Strict):
    backend: Literal["local", "sagemaker"] = Field("local", description="Where work runs: local or sagemaker.")
    workspace: str = Field(".dogbreed", description="Folder for local state, the ledger and artifacts.")
    data: DataConfig = Field(default_factory=DataConfig, description="Where the photos come from and go.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="What network is fine-tuned.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training hyperparameters.")
    tune: TuneConfig = Field(default_factory=TuneConfig, description="Hyperparameter search.")
    sagemaker: SageMakerConfig = Field(default_factory=SageMakerConfig, description="SageMaker backend settings.")
    deploy: DeployConfig = Field(default_factory=DeployConfig, description="Endpoint settings.")
    transform: TransformConfig = Field(
        default_factory=TransformConfig, description="Batch scoring without an endpoint (dogbreed transform)."
    )
    # Which layer set each path key ("configs/local.yaml", "--set data.source", ...), filled
    # by the loader so that a missing path can be reported with the file and key behind it.
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    def origin(self, dotted: str) -> str:
        """'configs/local.yaml: model.weights', '--set model.weights', or just the key."""
        origin = self._origins.get(dotted)
        if origin is None:
            return dotted
        return origin if origin.endswith(dotted) else f"{origin}: {dotted}"
