"""What a SageMaker training job left for the report, read from API-shaped data: where its
records and Debugger's outputs are, and Debugger's verdicts. Pure; aws/job_output.py fetches.

DescribeTrainingJob says where things are:
- OutputDataConfig.S3OutputPath: the job's SM_OUTPUT_DATA_DIR is packed into
  <S3OutputPath>/<job>/output/output.tar.gz when the job ends; records.jsonl is inside.
- DebugRuleEvaluationStatuses / ProfilerRuleEvaluationStatuses: Debugger's verdict per rule.
- Debug/ProfilerRuleConfigurations[].S3OutputPath, by default <S3OutputPath>/<job>/rule-output:
  where the ProfilerReport rule writes profiler-output/profiler-report.html and one JSON
  summary per profiler rule in profiler-output/profiler-reports/.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from pathlib import PurePosixPath
from typing import Any

from dogbreed.errors import DogbreedError
from dogbreed.report.evaluation import EVALUATION_FILE, METRICS_FILE
from dogbreed.report.records import RECORDS_FILE
from dogbreed.report.rules import ISSUE, NO_DATA, OK, RuleResult

SOURCE = "sagemaker-debugger"
# RuleEvaluationStatus -> our verdict. InProgress/Stopping/Stopped/Error have no verdict yet.
_VERDICTS = {"IssuesFound": ISSUE, "NoIssuesFound": OK}
# output.tar.gz holds only what the job wrote; refuse anything absurd before reading it.
MAX_RECORDS_BYTES = 512 * 2**20
# What the report reads from the job's output: its records, and the metrics.json and
# evaluation.json train.py writes beside them.
OUTPUT_FILES = (RECORDS_FILE, METRICS_FILE, EVALUATION_FILE)


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


def files_from_tar(blob: bytes, names: tuple[str, ...] = OUTPUT_FILES) -> dict[str, bytes]:
    """The report's files (by base name) from output.tar.gz, read in memory (nothing is
    extracted, so member names cannot write outside our folder); the first of each name wins.
    A damaged one is a tarfile.ReadError, as a malformed one is: gzip's EOFError (a download
    cut short) would otherwise reach the CLI, which click reports as Ctrl-D, "aborted"."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
            for member in archive:
                name = PurePosixPath(member.name).name
                if member.isfile() and name in names and name not in found:
                    if member.size > MAX_RECORDS_BYTES:
                        raise DogbreedError(f"{name} in output.tar.gz is {member.size} bytes; refusing to read it")
                    handle = archive.extractfile(member)
                    if handle is not None:
                        found[name] = handle.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise tarfile.ReadError(f"truncated or corrupt: {type(exc).__name__}: {exc}") from None
    return found


def records_from_tar(blob: bytes) -> bytes | None:
    """records.jsonl's bytes from output.tar.gz."""
    return files_from_tar(blob, (RECORDS_FILE,)).get(RECORDS_FILE)
