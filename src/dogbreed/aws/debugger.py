"""SageMaker Debugger and Profiler settings of a training job, from sagemaker.debugger/profiler.

Both default to off: Debugger is closed to new AWS customers since 2026-07-30, and framework
profiling is deprecated for PyTorch 2.x. Off means the estimator gets
`debugger_hook_config=False` and `disable_profiler=True`, so the request says so explicitly
instead of inheriting the SDK's defaults (which turn both on in supported regions).
train.py's own recorder (records.jsonl) works either way.

Debugger either records or is refused (debugger_refusal), before anything is sent, in the
pre-flight and in --dry-run alike:
- the PyTorch training containers from 2.0 on do not install smdebug, so the hook would be a
  no-op and the five rules would judge no tensors. Shipping it (a requirements.txt in
  source_dir) cannot work there: smdebug 1.0.34, its last release (2023), pins
  protobuf<=3.20.3 while the container's sagemaker-training needs protobuf>=5.28, and it
  writes tensors with ndarray.tostring(), gone in the NumPy 2 those containers ship
  (tests/debugger/requirements.txt records the same conflicts: `make test-debugger` runs
  the hook in an environment of its own, with protobuf 3.20.3 and NumPy 1);
- managed spot training on more than one instance is a combination AWS documents as
  unsupported with Debugger.
The alternative we point to is train.py's own recorder and `dogbreed report`, which judge
the same things (loss not decreasing, overfitting, vanishing gradients) from records.jsonl.
"""

from __future__ import annotations

from typing import Any

from dogbreed.aws.session import import_sdk
from dogbreed.config.schema import SageMakerConfig

# smdebug saves a collection every 500 steps by default: more than an epoch of dogImages
# (about 210 steps at batch 32), which would leave the loss rules nothing to judge.
LOSSES_SAVE_INTERVAL = "10"
GRADIENTS_SAVE_INTERVAL = "50"
# System metrics only: framework profiling is deprecated for PyTorch 2.x.
SYSTEM_MONITOR_INTERVAL_MS = 500


# The first PyTorch training container without smdebug.
NO_SMDEBUG_FROM = (2, 0)
ALTERNATIVE = (
    "leave sagemaker.debugger=false: train.py records losses and gradient norms itself "
    "(records.jsonl) and `dogbreed report` judges them with the same rules"
)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def debugger_refusal(config: SageMakerConfig) -> str | None:
    """Why sagemaker.debugger=true cannot work with this config, or None when it can."""
    if not config.debugger:
        return None
    if config.spot and config.instance_count > 1:
        return (
            "sagemaker.debugger=true with sagemaker.spot=true and sagemaker.instance_count>1 is a combination "
            f"SageMaker Debugger does not support; turn one of them off, or {ALTERNATIVE}"
        )
    if _version(config.framework_version) >= NO_SMDEBUG_FROM:
        return (
            f"sagemaker.debugger=true records nothing on the PyTorch {config.framework_version} training container: "
            "it has no smdebug, and smdebug cannot be installed there (it pins protobuf<=3.20.3 and NumPy<2, the "
            f"container needs protobuf>=5.28 and NumPy 2); {ALTERNATIVE}"
        )
    return None


def debugger_settings(config: SageMakerConfig, output_path: str) -> dict[str, Any]:
    """Keyword arguments of the PyTorch estimator: debugger_hook_config, rules,
    profiler_config / disable_profiler."""
    import_sdk()
    from sagemaker.debugger import (
        CollectionConfig,
        DebuggerHookConfig,
        ProfilerConfig,
        ProfilerRule,
        Rule,
        rule_configs,
    )

    settings: dict[str, Any] = {}
    rules: list[Any] = []
    if config.debugger:
        losses = CollectionConfig("losses", {"save_interval": LOSSES_SAVE_INTERVAL})
        gradients = CollectionConfig("gradients", {"save_interval": GRADIENTS_SAVE_INTERVAL})
        settings["debugger_hook_config"] = DebuggerHookConfig(s3_output_path=output_path, collection_configs=[losses, gradients])
        # A rule brings its own collection at smdebug's defaults unless told otherwise; the
        # hook's copies (same name, same parameters) make the SDK de-duplicate them.
        rules += [
            Rule.sagemaker(rule_configs.vanishing_gradient(), collections_to_save=[gradients]),
            Rule.sagemaker(rule_configs.overfit()),
            Rule.sagemaker(rule_configs.overtraining()),
            Rule.sagemaker(rule_configs.poor_weight_initialization()),
            Rule.sagemaker(rule_configs.loss_not_decreasing(), collections_to_save=[losses]),
        ]
    else:
        settings["debugger_hook_config"] = False
    if config.profiler:
        settings["profiler_config"] = ProfilerConfig(
            s3_output_path=output_path, system_monitor_interval_millis=SYSTEM_MONITOR_INTERVAL_MS
        )
        rules += [
            ProfilerRule.sagemaker(rule_configs.LowGPUUtilization()),
            ProfilerRule.sagemaker(rule_configs.ProfilerReport()),
        ]
    else:
        settings["disable_profiler"] = True
    # An empty list, not None: None lets the SDK add its default ProfilerReport rule.
    settings["rules"] = rules
    return settings


def debugger_hyperparameters(config: SageMakerConfig) -> dict[str, str]:
    """train.py registers smdebug's hook only when asked (--debugger true)."""
    return {"debugger": "true"} if config.debugger else {}
