"""The metric lines train.py prints are the ones the host's regexes read (jobspec.py builds
them from the same breedkit/metrics.json), checked on the output of a real run."""

from __future__ import annotations

import re

import pytest

from dogbreed.jobspec import metric_spec


@pytest.mark.slow
def test_every_epoch_line_parses_into_all_per_epoch_metrics(reference_run):
    spec = metric_spec()
    lines = reference_run.metric_lines()
    epoch_lines = [spec.parse_line(line) for line in lines if line.startswith("epoch=")]
    assert [row["epoch"] for row in epoch_lines] == [1.0, 2.0, 3.0, 4.0, 5.0]
    history = reference_run.metrics()["history"]
    for parsed, row in zip(epoch_lines, history):
        assert set(parsed) == {spec.epoch_key, *spec.per_epoch}
        for name in spec.per_epoch:
            assert parsed[name] == pytest.approx(row[name], rel=1e-5)  # printed with 6 significant digits


@pytest.mark.slow
def test_final_line_parses_into_the_test_metrics(reference_run):
    spec = metric_spec()
    finals = [spec.parse_line(line) for line in reference_run.metric_lines() if line.startswith("test_")]
    assert len(finals) == 1
    assert set(finals[0]) == set(spec.final)
    assert finals[0]["test_acc"] == pytest.approx(reference_run.metrics()["final"]["test_acc"])


@pytest.mark.slow
def test_every_sagemaker_metric_regex_matches_real_output(reference_run):
    """SageMaker applies each regex to the whole log; each must find a number in it."""
    log = reference_run.proc.stdout + reference_run.proc.stderr
    for definition in metric_spec().metric_definitions():
        found = re.findall(definition["Regex"], log)
        assert found, f"{definition['Name']}: {definition['Regex']} matches nothing in the log"
        assert all(float(value) == float(value) for value in found)  # numbers, not nan
    # Metric lines go to stdout only, so they are not printed twice.
    assert not any(line.startswith("epoch=") for line in reference_run.proc.stderr.splitlines())


@pytest.mark.slow
def test_the_host_log_parser_agrees_with_metrics_json(reference_run):
    from dogbreed.backends.local_training import parse_log

    history, metrics = parse_log(reference_run.proc.stdout)
    final = reference_run.metrics()["final"]
    assert len(history) == 5
    assert metrics["best_epoch"] == final["best_epoch"]
    for name in ("valid_acc", "valid_loss", "test_acc", "test_loss"):
        assert metrics[name] == pytest.approx(final[name], rel=1e-5)
