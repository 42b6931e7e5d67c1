"""--debugger true: the smdebug hook watches the training module and its loss, when smdebug
is importable; without it, a note and an ordinary run. smdebug cannot be installed next to
sagemaker-training (protobuf pins), so a minimal stand-in module records the calls here."""

from __future__ import annotations

import sys
import types

import pytest
from torch import nn

from tests.source_dir.conftest import JobRun, job_env


class _Hook:
    calls: list = []

    def __init__(self, out_dir=None, include_collections=None):
        _Hook.calls.append(("init", out_dir, tuple(include_collections or ())))

    @classmethod
    def create_from_json_file(cls):
        return cls(out_dir="from-json")

    def register_module(self, module):
        _Hook.calls.append(("module", module))

    def register_loss(self, loss):
        _Hook.calls.append(("loss", loss))

    def set_mode(self, mode):
        _Hook.calls.append(("mode", mode))


@pytest.fixture
def sm_env(monkeypatch, tmp_path, channel):
    for key, value in job_env(tmp_path, channel).items():
        if key.startswith("SM_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("SMDEBUG_CONFIG_FILE_PATH", str(tmp_path / "absent.json"))


@pytest.mark.slow
def test_the_hook_watches_the_head_and_the_loss(train_module, sm_env, monkeypatch, tmp_path, common_flags):
    smdebug = types.ModuleType("smdebug")
    smdebug.pytorch = types.ModuleType("smdebug.pytorch")
    smdebug.pytorch.Hook = _Hook
    smdebug.pytorch.modes = types.SimpleNamespace(TRAIN="TRAIN", EVAL="EVAL")
    monkeypatch.setitem(sys.modules, "smdebug", smdebug)
    monkeypatch.setitem(sys.modules, "smdebug.pytorch", smdebug.pytorch)
    _Hook.calls = []
    train_module.main(train_module.get_args_parser().parse_args([*common_flags, "--epochs", "2", "--debugger", "true"]))
    kinds = [call[0] for call in _Hook.calls]
    assert kinds[:3] == ["init", "module", "loss"]
    assert _Hook.calls[0] == ("init", str(tmp_path / "output" / "data" / "debug-output"), ("losses", "gradients"))
    module = _Hook.calls[1][1]
    assert isinstance(module, nn.Sequential) and isinstance(module[-1], nn.Linear)  # the cached head
    assert isinstance(_Hook.calls[2][1], nn.CrossEntropyLoss)
    assert [c[1] for c in _Hook.calls if c[0] == "mode"] == ["TRAIN", "EVAL", "TRAIN", "EVAL"]
    assert JobRun(tmp_path, None).metrics()["final"]["test_acc"] >= 0.3


@pytest.mark.slow
def test_without_smdebug_the_flag_is_a_note(train_module, sm_env, monkeypatch, tmp_path, common_flags, capsys):
    monkeypatch.setitem(sys.modules, "smdebug", None)  # import smdebug -> ImportError
    train_module.main(train_module.get_args_parser().parse_args([*common_flags, "--epochs", "1", "--debugger", "true"]))
    assert "smdebug is not installed; --debugger true has no effect" in capsys.readouterr().err
    assert (tmp_path / "model" / "model.pth").exists()
