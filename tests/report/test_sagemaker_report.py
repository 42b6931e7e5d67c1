"""A SageMaker job's report: records from its output.tar.gz and Debugger's verdicts, via moto.

The job is created in a real moto server (the `aws_env` fixture) and its output laid out in a
moto bucket where SageMaker would put it: the real records.jsonl of a real run inside
output.tar.gz, and a ProfilerReport's HTML and rule summaries under rule-output/.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import boto3
import pytest

from dogbreed.ledger import Ledger
from dogbreed.report import sagemaker_job
from dogbreed.report.rules import ISSUE, NO_DATA, OK
from tests.conftest import dogbreed_cli

BUCKET = "dogbreed-report-test"
OUTPUT = f"s3://{BUCKET}/dogbreed/jobs"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _create_job(name: str) -> None:
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-gpu-py312",
            "TrainingInputMode": "File",
        },
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": OUTPUT},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        DebugRuleConfigurations=[
            {
                "RuleConfigurationName": "LossNotDecreasing",
                "RuleEvaluatorImage": "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest",
                "RuleParameters": {"rule_to_invoke": "LossNotDecreasing"},
            }
        ],
    )


def _put(key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.mark.slow
def test_report_on_a_sagemaker_job_reads_its_output_tar_and_debugger_results(aws_env, trained, tmp_path):
    job = "dogbreed-train-sm-report"
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    _create_job(job)
    records = trained.records(trained.diverged).read_bytes()
    metrics = (trained.output(trained.diverged) / "metrics.json").read_bytes()
    evaluation = (trained.output(trained.diverged) / "evaluation.json").read_bytes()
    # What train.py writes into SM_OUTPUT_DATA_DIR, which SageMaker packs into output.tar.gz.
    outputs = {"records.jsonl": records, "metrics.json": metrics, "evaluation.json": evaluation}
    _put(f"dogbreed/jobs/{job}/output/output.tar.gz", _tar(outputs))
    rule_output = f"dogbreed/jobs/{job}/rule-output/ProfilerReport-1795000000/profiler-output"
    _put(f"{rule_output}/profiler-report.html", b"<html><body>Debugger's own ProfilerReport</body></html>")
    _put(
        f"{rule_output}/profiler-reports/LowGPUUtilization.json",
        json.dumps(
            {"RuleTriggered": 1, "Violations": 12, "Datapoints": 400, "RuleParameters": "threshold_p95:70\nthreshold_p5:10"}
        ).encode(),
    )
    _put(
        f"{rule_output}/profiler-reports/CPUBottleneck.json",
        json.dumps({"RuleTriggered": 0, "Violations": 0, "Datapoints": 400, "RuleParameters": "threshold:50"}).encode(),
    )
    workspace = tmp_path / ".dogbreed"
    Ledger(workspace / "ledger.sqlite").record("training-job", job, "sagemaker", state="Completed")

    result = dogbreed_cli("report", job, "--backend", "sagemaker", "--json", "--set", f"workspace={workspace}")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["backend"] == "sagemaker" and answer["records"] == f"{OUTPUT}/{job}/output/output.tar.gz"
    verdicts = {(rule["source"], rule["name"]): rule["status"] for rule in answer["rules"]}
    assert verdicts[("dogbreed", "loss_not_decreasing")] == ISSUE  # judged from the downloaded records
    assert verdicts[("sagemaker-debugger", "ProfilerReport/LowGPUUtilization")] == ISSUE
    assert verdicts[("sagemaker-debugger", "ProfilerReport/CPUBottleneck")] == OK
    out = workspace / "reports" / job
    assert (out / "records.jsonl").read_bytes() == records
    assert "Debugger's own ProfilerReport" in (out / "profiler-report.html").read_text()
    html = Path(answer["report_uri"]).read_text()
    assert "SageMaker Debugger rules" in html and 'href="profiler-report.html"' in html
    assert {Path(p).name for p in answer["pngs"]} >= {"loss.png", "gradient_norms.png", "reliability.png"}
    # evaluation.json and metrics.json came out of output.tar.gz: the same answer as a local job's.
    assert answer["evaluation"] == json.loads(evaluation) and (out / "evaluation.json").read_bytes() == evaluation
    assert answer["timing"] == json.loads(metrics)["timing"] and answer["summary"]["test_acc"] is not None
    assert 'id="worst-mistakes"' in html and 'id="per-breed"' in html

    # `train --json` reads it the same way once the job completed (workflows/train.evaluation).
    from dogbreed.backends import get_backend
    from dogbreed.config import load_config
    from dogbreed.progress import NullReporter
    from dogbreed.workflows import train as train_workflow
    from dogbreed.workspace import Workspace

    config = load_config((), sets=[f"workspace={workspace}", "backend=sagemaker", f"sagemaker.role={ROLE}"])
    ws = Workspace(workspace)
    backend = get_backend(config, ws, NullReporter(), "sagemaker")
    dest = tmp_path / "train-answer"
    assert train_workflow.evaluation(ws.ledger, backend, job, dest) == json.loads(evaluation)
    # A later output without evaluation.json leaves none behind from the earlier download.
    _put(f"dogbreed/jobs/{job}/output/output.tar.gz", _tar({"records.jsonl": records}))
    assert train_workflow.evaluation(ws.ledger, backend, job, dest) is None and not (dest / "evaluation.json").exists()


def test_a_sagemaker_job_that_aws_does_not_know_is_one_line(aws_env, tmp_path):
    workspace = tmp_path / ".dogbreed"
    Ledger(workspace / "ledger.sqlite").record("training-job", "ghost-job", "sagemaker", state="Completed")
    result = dogbreed_cli("report", "ghost-job", "--json", "--set", f"workspace={workspace}")
    assert result.returncode == 1 and result.stdout == ""
    (line,) = [line for line in result.stderr.splitlines() if "error" in line]
    assert "ghost-job" in line and "not found" in line


def test_a_running_sagemaker_job_without_output_yet_says_so(aws_env, tmp_path):
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    _create_job("still-running")
    workspace = tmp_path / ".dogbreed"
    Ledger(workspace / "ledger.sqlite").record("training-job", "still-running", "sagemaker", state="InProgress")
    result = dogbreed_cli("report", "still-running", "--set", f"workspace={workspace}")
    assert result.returncode == 1 and "output.tar.gz does not exist" in result.stderr


# --- the pure parts, on data shaped as the API documents it -------------------------------------


def test_debugger_verdicts_from_describe_training_job():
    description = {
        "DebugRuleEvaluationStatuses": [
            {
                "RuleConfigurationName": "LossNotDecreasing",
                "RuleEvaluationStatus": "IssuesFound",
                "StatusDetails": "RuleEvaluationConditionMet: Evaluation of the rule LossNotDecreasing at step 500 resulted in the condition being met",
            },
            {"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "NoIssuesFound"},
            {"RuleConfigurationName": "VanishingGradient", "RuleEvaluationStatus": "InProgress"},
        ],
        "ProfilerRuleEvaluationStatuses": [
            {
                "RuleConfigurationName": "ProfilerReport-1795000000",
                "RuleEvaluationStatus": "Error",
                "StatusDetails": "out of memory",
            },
        ],
    }
    results = {r.name: r for r in sagemaker_job.debugger_verdicts(description)}
    assert results["LossNotDecreasing"].status == ISSUE and "step 500" in results["LossNotDecreasing"].detail
    assert results["Overfit"].status == OK
    assert results["VanishingGradient"].status == NO_DATA
    assert (
        results["ProfilerReport-1795000000"].status == NO_DATA and "out of memory" in results["ProfilerReport-1795000000"].detail
    )
    assert all(r.source == "sagemaker-debugger" for r in results.values())


def test_rule_output_prefixes_default_and_configured():
    description = {
        "TrainingJobName": "j",
        "OutputDataConfig": {"S3OutputPath": "s3://b/p/"},
        "ProfilerRuleConfigurations": [{"RuleConfigurationName": "ProfilerReport-1", "S3OutputPath": "s3://b/custom"}],
    }
    assert sagemaker_job.output_tar_uri(description) == "s3://b/p/j/output/output.tar.gz"
    assert sagemaker_job.rule_output_prefixes(description) == ["s3://b/p/j/rule-output/", "s3://b/custom/"]


def test_records_are_read_from_the_tar_in_memory_whatever_the_member_path():
    blob = _tar({"../../etc/records.jsonl": b'{"type": "meta"}\n'})
    assert sagemaker_job.records_from_tar(blob) == b'{"type": "meta"}\n'
    assert sagemaker_job.records_from_tar(_tar({"metrics.json": b"{}"})) is None


def test_a_truncated_output_tar_is_a_read_error_not_eof():
    # os.urandom: data that does not compress, so the cut lands inside the member.
    blob = _tar({"records.jsonl": os.urandom(200_000)})
    with pytest.raises(tarfile.ReadError, match="truncated or corrupt: EOFError"):
        sagemaker_job.records_from_tar(blob[:100_000])


def test_files_from_tar_takes_the_report_files_by_name_wherever_they_sit():
    blob = _tar(
        {
            "data/records.jsonl": b"r1",
            "evaluation.json": b"{}",
            "deep/er/metrics.json": b'{"timing": {}}',
            "other/records.jsonl": b"r2",  # the first of a name wins
            "model.pth": b"not ours",
        }
    )
    assert sagemaker_job.files_from_tar(blob) == {
        "records.jsonl": b"r1",
        "evaluation.json": b"{}",
        "metrics.json": b'{"timing": {}}',
    }
