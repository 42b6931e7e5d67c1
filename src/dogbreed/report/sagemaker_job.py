"""What a SageMaker training job left for the report: its records and Debugger's verdicts.

Everything goes through the one AWS gateway (dogbreed.aws.session.AwsSession), so tests
aim it at moto. DescribeTrainingJob says where things are:
- OutputDataConfig.S3OutputPath: the job's SM_OUTPUT_DATA_DIR is packed into
  <S3OutputPath>/<job>/output/output.tar.gz when the job ends; records.jsonl is inside.
- DebugRuleEvaluationStatuses / ProfilerRuleEvaluationStatuses: Debugger's verdict per rule.
- Debug/ProfilerRuleConfigurations[].S3OutputPath, by default <S3OutputPath>/<job>/rule-output:
  where the ProfilerReport rule writes profiler-output/profiler-report.html and one JSON
  summary per profiler rule in profiler-output/profiler-reports/.
Parsing the description and the summaries is pure (tested on API-shaped data); fetching is
the thin part that talks to AWS.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dogbreed.errors import DogbreedError, NotFoundError
from dogbreed.report.records import RECORDS_FILE
from dogbreed.report.rules import ISSUE, NO_DATA, OK, RuleResult

SOURCE = "sagemaker-debugger"
# RuleEvaluationStatus -> our verdict. InProgress/Stopping/Stopped/Error have no verdict yet.
_VERDICTS = {"IssuesFound": ISSUE, "NoIssuesFound": OK}
# output.tar.gz holds only what the job wrote; refuse anything absurd before reading it.
MAX_RECORDS_BYTES = 512 * 2**20
MAX_RULE_OUTPUT_KEYS = 1000
PROFILER_REPORT_HTML = "profiler-report.html"


@dataclass
class JobArtifacts:
    records: Path | None = None  # the downloaded records.jsonl
    output_uri: str | None = None  # the output.tar.gz it came from
    debugger_rules: list[RuleResult] = field(default_factory=list)
    profiler_report: Path | None = None  # Debugger's own HTML, saved beside our report
    status: str | None = None  # TrainingJobStatus
    notes: list[str] = field(default_factory=list)


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise DogbreedError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def output_tar_uri(description: dict[str, Any]) -> str | None:
    base = (description.get("OutputDataConfig") or {}).get("S3OutputPath")
    name = description.get("TrainingJobName")
    if not base or not name:
        return None
    return f"{base.rstrip('/')}/{name}/output/output.tar.gz"


def rule_output_prefixes(description: dict[str, Any]) -> list[str]:
    """Every S3 prefix a Debugger or profiler rule of this job may have written to."""
    prefixes = []
    base = (description.get("OutputDataConfig") or {}).get("S3OutputPath")
    if base and description.get("TrainingJobName"):
        prefixes.append(f"{base.rstrip('/')}/{description['TrainingJobName']}/rule-output/")
    for key in ("DebugRuleConfigurations", "ProfilerRuleConfigurations"):
        for config in description.get(key) or []:
            path = config.get("S3OutputPath")
            if path:
                prefixes.append(path.rstrip("/") + "/")
    return list(dict.fromkeys(prefixes))


def debugger_verdicts(description: dict[str, Any]) -> list[RuleResult]:
    """Debugger's own verdicts from DescribeTrainingJob, one per rule configuration."""
    results = []
    for key, kind in (("DebugRuleEvaluationStatuses", "rule"), ("ProfilerRuleEvaluationStatuses", "profiler rule")):
        for status in description.get(key) or []:
            state = str(status.get("RuleEvaluationStatus") or "Unknown")
            verdict = _VERDICTS.get(state, NO_DATA)
            detail = f"Debugger {kind}: {state}"
            if status.get("StatusDetails"):
                detail += f" ({status['StatusDetails']})"
            results.append(RuleResult(str(status.get("RuleConfigurationName")), verdict, detail, source=SOURCE))
    return results


def profiler_summary(name: str, summary: dict[str, Any]) -> RuleResult:
    """One ProfilerReport rule summary (profiler-reports/<Rule>.json) as a RuleResult."""
    triggered = int(summary.get("RuleTriggered") or 0)
    violations = int(summary.get("Violations") or 0)
    datapoints = int(summary.get("Datapoints") or 0)
    verdict = ISSUE if triggered else (OK if datapoints else NO_DATA)
    detail = f"ProfilerReport: {violations} violation(s) in {datapoints} datapoint(s)"
    parameters = str(summary.get("RuleParameters") or "").replace("\n", ", ")
    if parameters:
        detail += f"; parameters {parameters}"
    return RuleResult(f"ProfilerReport/{name}", verdict, detail, source=SOURCE)


def records_from_tar(blob: bytes) -> bytes | None:
    """records.jsonl's bytes from output.tar.gz, read in memory (nothing is extracted, so
    member names cannot write outside our folder)."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
        for member in archive:
            if member.isfile() and PurePosixPath(member.name).name == RECORDS_FILE:
                if member.size > MAX_RECORDS_BYTES:
                    raise DogbreedError(f"{RECORDS_FILE} in output.tar.gz is {member.size} bytes; refusing to read it")
                handle = archive.extractfile(member)
                return handle.read() if handle else None
    return None


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
                f"SageMaker training job {job} not found in {aws.region}; list jobs with `dogbreed status`"
            ) from None
        raise DogbreedError(f"DescribeTrainingJob {job}: {exc}") from None


def _keys(s3: Any, prefix_uri: str) -> Iterable[str]:
    bucket, prefix = split_s3(prefix_uri)
    seen = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents") or []:
            seen += 1
            if seen > MAX_RULE_OUTPUT_KEYS:
                return
            yield f"s3://{bucket}/{item['Key']}"


def _get(s3: Any, uri: str) -> bytes:
    bucket, key = split_s3(uri)
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
            records = records_from_tar(_get(s3, tar_uri))
        except ClientError as exc:
            if not _is_not_found(exc):
                raise DogbreedError(f"downloading {tar_uri}: {exc}") from None
            found.notes.append(f"{tar_uri} does not exist (yet): the job packs its output when it ends")
        except tarfile.TarError as exc:
            found.notes.append(f"{tar_uri} is not a readable tar.gz ({exc})")
        else:
            if records is None:
                found.notes.append(f"{tar_uri} has no {RECORDS_FILE}: the job ran without the recorder")
            else:
                found.records = dest / RECORDS_FILE
                found.records.write_bytes(records)

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
