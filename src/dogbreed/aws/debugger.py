"""SageMaker Debugger and Profiler settings of a training job, from sagemaker.debugger/profiler.

Both default to off: Debugger is closed to new AWS customers since 2026-07-30, and framework
profiling is deprecated for PyTorch 2.x. Off means the estimator gets
`debugger_hook_config=False` and `disable_profiler=True`, so the request says so explicitly
instead of inheriting the SDK's defaults (which turn both on in supported regions).
train.py's own recorder (records.jsonl) works either way.
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
