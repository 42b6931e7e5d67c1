"""Reading records.jsonl: tolerant of kills, resumes, nulls and missing fields."""

from __future__ import annotations

import json
import math

from dogbreed.report.records import parse_records, read_records
from tests.report.builders import evals, lines, meta, run, steps, system


def test_steps_are_numbered_across_epochs_and_evaluations_know_their_last_step():
    parsed = run([meta()], steps([2.0] * 25), evals([1.5, 1.0, 0.8], [1.6, 1.2, 1.0]))
    assert [s.index for s in parsed.steps] == list(range(1, 26))
    assert (parsed.steps[10].epoch, parsed.steps[10].step) == (2, 1)
    assert [e.end_index for e in parsed.evaluations] == [10, 20, 25]
    assert parsed.meta["arch"] == "mobilenet_v2" and parsed.starts == 1


def test_null_measurements_read_as_nan_but_null_readings_stay_none():
    # The recorder writes nan/inf as null; a CPU job writes gpu_util null.
    parsed = run(steps([2.0, None], grad=[1.0, None]), system([None, None]))
    assert parsed.steps[0].loss == 2.0 and math.isnan(parsed.steps[1].loss)
    assert math.isnan(parsed.steps[1].grad_norm["head"])
    assert all(s.gpu_util is None for s in parsed.samples)
    assert not parsed.has_gpu


def test_missing_optional_fields_are_none():
    parsed = parse_records(['{"type": "step", "epoch": 1, "step": 1}', '{"type": "eval", "epoch": 1}'])
    step = parsed.steps[0]
    assert step.loss is None and step.lr is None and step.grad_norm == {} and step.data_time is None
    assert parsed.evaluations[0].valid_loss is None and parsed.problems == []


def test_a_line_cut_by_a_kill_and_unknown_types_are_noted_not_fatal():
    text = lines([meta()], steps([2.0, 1.9]))
    text += ['{"type": "step", "epoch": 1, "st', '{"type": "gossip"}', "", "[1, 2]"]
    parsed = parse_records(text)
    assert len(parsed.steps) == 2
    assert len(parsed.problems) == 3
    assert "not JSON" in parsed.problems[0] and "gossip" in parsed.problems[1]


def test_a_resumed_job_keeps_the_later_record_of_a_repeated_epoch():
    first = steps([3.0] * 15)  # killed during epoch 2
    again = [dict(s, loss=1.0) for s in steps([1.0] * 20)[10:]]  # resumed: epoch 2 from its start
    parsed = run([meta()], first, evals([2.5], [2.6]), [meta(resumed_from_epoch=1)], again, evals([2.5, 0.9], [2.6, 1.1]))
    assert parsed.starts == 2 and parsed.meta["resumed_from_epoch"] == 1
    assert len(parsed.steps) == 20
    assert [s.loss for s in parsed.steps[10:]] == [1.0] * 10
    assert [e.valid_loss for e in parsed.evaluations] == [2.6, 1.1]


def test_read_records_takes_the_file_or_its_folder(tmp_path):
    (tmp_path / "records.jsonl").write_text("\n".join(lines([meta()], steps([2.0]))) + "\n")
    assert len(read_records(tmp_path).steps) == 1
    assert len(read_records(tmp_path / "records.jsonl").steps) == 1


def test_final_record_is_kept():
    parsed = parse_records([json.dumps({"type": "final", "time": 1.0, "best_epoch": 3, "test_acc": 0.8})])
    assert parsed.final["best_epoch"] == 3 and not parsed.empty
