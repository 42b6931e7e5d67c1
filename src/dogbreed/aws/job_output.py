"""Fetching what a SageMaker training job left for the report: its records (inside
output.tar.gz), Debugger's verdicts and the ProfilerReport, through the one AWS gateway
(dogbreed.aws.session.AwsSession), so tests aim it at moto. Where things are and what the
verdicts mean is read by dogbreed/report/sagemaker_job.py (pure).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dogbreed.errors import DogbreedError, NotFoundError
from dogbreed.report.records import RECORDS_FILE
from dogbreed.report.rules import RuleResult
from dogbreed.report.sagemaker_job import (
    OUTPUT_FILES,
    debugger_verdicts,
    files_from_tar,
    output_tar_uri,
    profiler_summary,
    rule_output_prefixes,
)
from dogbreed.s3_uri import split_s3_uri

MAX_RULE_OUTPUT_KEYS = 1000
PROFILER_REPORT_HTML = "profiler-report.html"


@dataclass
class JobArtifacts:
    records: Path | None = None  # the downloaded records.jsonl (metrics.json, evaluation.json beside it)
    output_uri: str | None = None  # the output.tar.gz it came from
    debugger_rules: list[RuleResult] = field(default_factory=list)
    profiler_report: Path | None = None  # Debugger's own HTML, saved beside our report
    status: str | None = None  # TrainingJobStatus
    notes: list[str] = field(default_factory=list)


def _is_not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    message = str(exc)
    return code in ("NoSuchKey", "404", "NotFound", "ResourceNotFound") or (
        code == "ValidationException" and ("not found" in message.lower() or "could not find" in message.lower())
    )


def describe(aws: Any, job: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        return aws.client("sagemaker").describe_training_job(TrainingJobName=job)
    except ClientError as exc:
        if _is_not_found(exc):
            raise NotFoundError(
                f"SageMaker training job {job} not found in {aws.region}; list jobs with `dogbreed status --all`"
            ) from None
        raise DogbreedError(f"DescribeTrainingJob {job}: {exc}") from None


def _keys(s3: Any, prefix_uri: str) -> Iterable[str]:
    bucket, prefix = split_s3_uri(prefix_uri)
    seen = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents") or []:
            seen += 1
            if seen > MAX_RULE_OUTPUT_KEYS:
                return
            yield f"s3://{bucket}/{item['Key']}"


def _get(s3: Any, uri: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def fetch(aws: Any, job: str, dest: Path, output_uri: str | None = None) -> JobArtifacts:
    """Download what the report needs about `job` into `dest` (created)."""
    from botocore.exceptions import ClientError

    dest.mkdir(parents=True, exist_ok=True)
    description = describe(aws, job)
    found = JobArtifacts(status=description.get("TrainingJobStatus"))
    found.debugger_rules = debugger_verdicts(description)
    s3 = aws.client("s3")

    tar_uri = output_uri if output_uri and output_uri.endswith(".tar.gz") else output_tar_uri(description)
    found.output_uri = tar_uri
    if tar_uri:
        try:
            files = files_from_tar(_get(s3, tar_uri))
        except ClientError as exc:
            if not _is_not_found(exc):
                raise DogbreedError(f"downloading {tar_uri}: {exc}") from None
            found.notes.append(f"{tar_uri} does not exist (yet): the job packs its output when it ends")
        except tarfile.TarError as exc:
            found.notes.append(f"{tar_uri} is not a readable tar.gz ({exc})")
        else:
            # metrics.json and evaluation.json go beside records.jsonl, where the report reads
            # them for local jobs too; a file this output lacks must not survive from an earlier one.
            for name in OUTPUT_FILES:
                path = dest / name
                if name in files:
                    path.write_bytes(files[name])
                else:
                    path.unlink(missing_ok=True)
            if RECORDS_FILE not in files:
                found.notes.append(f"{tar_uri} has no {RECORDS_FILE}: the job ran without the recorder")
            else:
                found.records = dest / RECORDS_FILE

    for prefix in rule_output_prefixes(description):
        try:
            keys = list(_keys(s3, prefix))
        except ClientError as exc:
            found.notes.append(f"could not list {prefix}: {exc}")
            continue
        for uri in keys:
            path = PurePosixPath(uri)
            if path.name == PROFILER_REPORT_HTML and found.profiler_report is None:
                found.profiler_report = dest / PROFILER_REPORT_HTML
                found.profiler_report.write_bytes(_get(s3, uri))
            elif path.suffix == ".json" and path.parent.name == "profiler-reports":
                try:
                    summary = json.loads(_get(s3, uri))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    found.notes.append(f"{uri} is not JSON")
                    continue
                if isinstance(summary, dict):
                    found.debugger_rules.append(profiler_summary(path.stem, summary))
    return found
