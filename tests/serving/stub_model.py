"""A model dir whose handler needs no torch and can be held mid-request, for lifecycle tests.

Graceful shutdown and the 60 s limit are about requests that are still running; a real
network answers too fast to be caught in the act. This handler follows the same contract
(model_fn/input_fn/predict_fn/output_fn in code/inference.py) and, for the body b"hold",
writes <model_dir>/held and waits for <model_dir>/release before answering, so a test can
act while a request is provably in flight, without timing anything.
"""

from __future__ import annotations

import json
from pathlib import Path

HANDLER = """
import json
import time
from pathlib import Path


def model_fn(model_dir):
    return Path(model_dir)


def input_fn(body, content_type):
    return body.encode() if isinstance(body, str) else body


def predict_fn(data, model_dir):
    if data == b"hold":
        (model_dir / "held").touch()
        for _ in range(12000):  # at most 120 s
            if (model_dir / "release").exists():
                break
            time.sleep(0.01)
    return {"bytes": len(data)}


def output_fn(prediction, accept):
    return json.dumps({"predictions": [{"top": [{"label": "stub", "index": 0, "probability": 1.0}]}], **prediction}), "application/json"
"""


def build_stub_model_dir(dest: Path) -> Path:
    (dest / "code").mkdir(parents=True, exist_ok=True)
    (dest / "code" / "inference.py").write_text(HANDLER)
    (dest / "model.pth").write_bytes(b"")
    (dest / "classes.json").write_text(json.dumps({"classes": [{"index": 0, "label": "stub", "folder": "stub"}]}))
    (dest / "hyperparameters.json").write_text(json.dumps({"arch": "stub", "num_classes": 1}))
    return dest
