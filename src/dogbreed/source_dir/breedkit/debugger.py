"""SageMaker Debugger (smdebug), only with `--debugger true` and only where it is installed.

smdebug is not in every training image and cannot share an environment with
sagemaker-training here (protobuf pins: see pyproject.toml), so it is imported lazily and
its absence is a one-line note, never an error. On SageMaker the hook is configured by the
estimator's DebuggerHookConfig (written to debughookconfig.json); by hand it saves the
losses and gradients collections under <output dir>/debug-output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from torch import nn

_SAGEMAKER_CONFIG = "/opt/ml/input/config/debughookconfig.json"


class Debugger:
    """The smdebug hook, or nothing: every method is safe to call either way."""

    def __init__(self, smd: object | None = None, hook: object | None = None) -> None:
        self._smd = smd
        self.hook = hook

    @classmethod
    def create(cls, enabled: bool, out_dir: Path) -> Debugger:
        if not enabled:
            return cls()
        try:
            import smdebug.pytorch as smd
        except ImportError:
            print("debugger: smdebug is not installed; --debugger true has no effect", file=sys.stderr, flush=True)
            return cls()
        if Path(os.environ.get("SMDEBUG_CONFIG_FILE_PATH", _SAGEMAKER_CONFIG)).is_file():
            hook = smd.Hook.create_from_json_file()
        else:
            hook = smd.Hook(out_dir=str(Path(out_dir) / "debug-output"), include_collections=["losses", "gradients"])
        return cls(smd, hook)

    def attach(self, module: nn.Module, criterion: nn.Module) -> None:
        """Watch the module that trains and its (module) loss, as smdebug's docs ask."""
        if self.hook is not None:
            self.hook.register_module(module)
            self.hook.register_loss(criterion)

    def set_mode(self, mode: str) -> None:
        if self.hook is not None:
            self.hook.set_mode(getattr(self._smd.modes, mode.upper()))
