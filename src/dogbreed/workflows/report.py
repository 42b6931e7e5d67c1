"""`report`: find a job in the ledger, read its records (and the metrics.json and
evaluation.json the job wrote beside them), judge them, write the HTML page.

Backend-agnostic: the job's own backend (the ledger says which) puts its records on this
machine (a local job's are in its job folder; a SageMaker job's are inside its
output.tar.gz on S3) with what its own tooling judged (Debugger). Output goes to
<workspace>/reports/<job>/: report.html (self-contained) and the same figures as PNG files,
for people who want to paste one into a ticket.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dogbreed.atomic_files import write_bytes
from dogbreed.backends.base import ON_THIS_MACHINE, Backend
from dogbreed.config import Config
from dogbreed.errors import DogbreedError, NotFoundError
from dogbreed.ledger import Ledger, Resource
from dogbreed.progress import NullReporter, Reporter
from dogbreed.report import evaluation as job_evaluation
from dogbreed.report import page, plots, rules
from dogbreed.report.records import Run, read_records
from dogbreed.report.tuning import TuningSummary, log_scaled, summarize
from dogbreed.report.verdict import Verdict, verdict
from dogbreed.workspace import Workspace

REPORT_FILE = "report.html"
LIST_JOBS = "list jobs with `dogbreed status --all`"

BackendFor = Callable[[str], Backend]  # a backend by name: the one each job ran on


@dataclass
class Report:
    job: str
    kind: str  # training-job | tuning-job
    backend: str
    html: Path
    pngs: list[Path]
    rules: list[rules.RuleResult]
    records: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    verdict: Verdict | None = None

    @property
    def issues(self) -> list[rules.RuleResult]:
        return [r for r in self.rules if r.status == rules.ISSUE]

    def to_json(self) -> dict[str, Any]:
        return {
            "report_uri": str(self.html),
            "rules": [r.to_json() for r in self.rules],
            "pngs": [str(p) for p in self.pngs],
            "job": self.job,
            "kind": self.kind,
            "backend": self.backend,
            "records": self.records,
            "issues": len(self.issues),
            "notes": self.notes,
            "verdict": self.verdict.to_json() if self.verdict else None,
            "evaluation": self.evaluation,
            **self.extra,
        }


# --- finding things ----------------------------------------------------------------------


def find_training_job(ledger: Ledger, name: str | None, backend: str) -> Resource:
    """The named training job (a tuning trial's job counts too), or the latest one,
    preferring the configured backend's."""
    if name is None:
        found = ledger.latest("training-job", backend=backend) or ledger.latest("training-job")
        if found is None:
            raise NotFoundError(f"no training job in the ledger {ledger.path}: run `dogbreed train` first")
        return found
    found = ledger.get("training-job", name) or ledger.get("trial", name)
    if found is None:
        raise NotFoundError(f"training job {name!r} not found in the ledger {ledger.path}; {LIST_JOBS}")
    return found


def find_tuning_job(ledger: Ledger, name: str) -> Resource:
    found = ledger.latest("tuning-job") if name == "latest" else ledger.get("tuning-job", name)
    if found is None:
        what = "no tuning job in the ledger" if name == "latest" else f"tuning job {name!r} not found in the ledger"
        raise NotFoundError(f"{what} {ledger.path}; run `dogbreed tune` first or {LIST_JOBS}")
    return found


@dataclass
class Loaded:
    run: Run
    source: str | None
    debugger: list[rules.RuleResult] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str | None = None
    # What the job wrote beside its records (metrics.json, evaluation.json), None when absent.
    metrics: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    evaluation_problem: str | None = None  # why an evaluation.json that is there was not read


def load_job(job: Resource, out_dir: Path, backend_for: BackendFor) -> Loaded:
    """The job's records, metrics.json and evaluation.json (the job writes all three into
    its output folder; a SageMaker job's come out of output.tar.gz into out_dir), and what
    its backend's own tooling judged (Debugger)."""
    found = backend_for(job.backend).job_records(job, out_dir)
    run = read_records(found.path) if found.path else Run()
    loaded = Loaded(run, found.source, found.verdicts, found.links, list(found.notes), found.status)
    folder = found.path.parent if found.path else None
    loaded.metrics, problem = job_evaluation.read_metrics(folder)
    if problem:
        loaded.notes.append(problem)
    loaded.evaluation, loaded.evaluation_problem = job_evaluation.read_evaluation(folder)
    if loaded.evaluation_problem:
        loaded.notes.append(loaded.evaluation_problem)
    return loaded


def training_evaluation(job: Resource, out_dir: Path, backend: Backend) -> dict[str, Any] | None:
    """The job's evaluation.json, for `train --json`: None when the job left none (no test
    split, an older job) or its output cannot be read now."""
    try:
        return load_job(job, out_dir, lambda name: backend).evaluation
    except DogbreedError:
        return None


# --- writing -------------------------------------------------------------------------------


def _write_outputs(out_dir: Path, html: str, figures: dict[str, bytes]) -> tuple[Path, list[Path]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = []
    for name, png in figures.items():
        path = out_dir / f"{name}.png"
        write_bytes(path, png)
        pngs.append(path)
    for stale in out_dir.glob("*.png"):  # figures an earlier report had and this one has not
        if stale not in pngs:
            stale.unlink()
    html_path = out_dir / REPORT_FILE
    write_bytes(html_path, html.encode("utf-8"))  # a browser refresh never sees half a page
    return html_path, pngs


def _backends(config: Config, workspace: Workspace, reporter: Reporter) -> BackendFor:
    from dogbreed.backends import get_backend

    return lambda name: get_backend(config, workspace, reporter, name)


def _record(ledger: Ledger, report: Report) -> None:
    ledger.record(
        "report",
        report.job,
        ON_THIS_MACHINE,
        uri=str(report.html),
        state="created",
        parent=report.job,
        meta={"kind": report.kind, "issues": [r.name for r in report.issues], "pngs": [str(p) for p in report.pngs]},
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


CAPTIONS = {
    "loss": "Training loss per step (batch and rolling median) with the validation loss at the end of each epoch; both per epoch.",
    "accuracy": "Training and validation accuracy at the end of each epoch, against steps and epochs.",
    "learning_rate": "Learning rate per step.",
    "gradient_norms": "L2 norm of the gradients of each trainable parameter group, per step "
    "(log axis when the norms span more than two decades).",
    "reliability": "Reliability diagram of the test split: accuracy against the model's confidence in equal-width bins; "
    "a calibrated model's bars reach the dashed diagonal. Right: how many test photos fell in each bin.",
    "step_time": "Seconds per step spent waiting for the next batch and computing, and images per second.",
    "utilisation": "CPU and memory of the training process over time (and the GPU when there is one).",
    "objective": "The objective of each trial, and the best so far.",
    "hyperparameters": "Each hyperparameter against the objective (log axis where the range is searched on a log scale).",
}


def _images(figures: dict[str, bytes]) -> list[page.Image]:
    return [page.Image(name, CAPTIONS.get(name, name), png) for name, png in figures.items()]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def training_summary(run: Run, metrics: dict[str, Any] | None, evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """The numbers that matter side by side: valid (what picked the epoch) and test (reported)."""
    final = {**(run.final or {}), **((metrics or {}).get("final") or {})}
    best_epoch = final.get("best_epoch")
    at_best = next((e for e in run.evaluations if e.epoch == best_epoch), None)
    summary = {
        "best_epoch": best_epoch,
        "valid_acc": _number(final.get("valid_acc")),
        "valid_loss": _number(final.get("valid_loss")),
        "test_acc": _number(final.get("test_acc")),
        "test_loss": _number(final.get("test_loss")),
        "test_top5": _number((evaluation or {}).get("top5")),
    }
    if at_best is not None:  # records carry the epoch's valid numbers when metrics.json is absent
        summary["valid_acc"] = summary["valid_acc"] if summary["valid_acc"] is not None else at_best.valid_acc
        summary["valid_loss"] = summary["valid_loss"] if summary["valid_loss"] is not None else at_best.valid_loss
    return summary


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _summary_table(summary: dict[str, Any]) -> page.Table | None:
    if all(summary[k] is None for k in ("valid_acc", "valid_loss", "test_acc", "test_loss")):
        return None
    epoch = summary["best_epoch"]
    valid = f"valid (epoch {epoch}: picks the epoch)" if epoch else "valid (picks the epoch)"
    rows = [
        ["accuracy (top-1)", _share(summary["valid_acc"]), _share(summary["test_acc"])],
        ["loss (cross-entropy)", _fmt(summary["valid_loss"]), _fmt(summary["test_loss"])],
    ]
    if summary["test_top5"] is not None:
        rows.append(["accuracy (top-5)", "", _share(summary["test_top5"])])
    return page.Table("Summary", ["", valid, "test (reported, never optimised)"], rows, numeric=(1, 2), id="summary")


def _timing_table(phases: dict[str, float]) -> page.Table | None:
    if not phases:
        return None
    return page.Table(
        "Where the time went",
        ["phase", "wall time", "share", "what it covers"],
        job_evaluation.timing_rows(phases),
        note="Wall time of each phase of train.py (metrics.json timing); a resumed job counts this process only.",
        numeric=(1, 2),
        id="timing",
    )


def evaluation_blocks(evaluation: dict[str, Any], reliability: bytes | None) -> list[page.Block]:
    """The test evaluation: numbers, confused pairs, calibration, worst mistakes, per breed."""
    blocks: list[page.Block] = [
        page.Table("Test evaluation", ["measure", "value"], job_evaluation.headline(evaluation), numeric=(1,), id="evaluation")
    ]
    pairs = job_evaluation.pairs_rows(evaluation)
    blocks.append(
        page.Table(
            "Most-confused breed pairs",
            ["breed A", "breed B", "A taken for B", "B taken for A", "mistakes in all"],
            pairs,
            note="" if pairs else "No test photo was mistaken for another breed.",
            numeric=(2, 3, 4),
            id="confused-pairs",
        )
    )
    if reliability is not None:
        blocks.append(page.Image("reliability", CAPTIONS["reliability"], reliability))
    mistakes = job_evaluation.mistakes(evaluation)
    thumbs = [
        page.Thumb(
            m.get("thumbnail"),
            [
                f"true: {m.get('true')}",
                f"predicted: {m.get('predicted')} ({_share(_number(m.get('probability')))})",
                f"p(true breed): {_share(_number(m.get('true_probability')))}",
            ],
        )
        for m in mistakes
    ]
    blocks.append(
        page.Gallery(
            "Most confident mistakes",
            thumbs,
            note="The test photos the model got wrong with the highest confidence, most confident first."
            if thumbs
            else "The model named every test photo right.",
            id="worst-mistakes",
        )
    )
    blocks.append(
        page.Table(
            "Per breed",
            ["breed", "accuracy", "precision", "recall", "support"],
            job_evaluation.per_breed_rows(evaluation),
            note="On the test split, the least recognised breeds first. Accuracy is the share of the breed's photos "
            "named right (its recall); precision, the share of photos named this breed that are; n/a: never predicted.",
            numeric=(1, 2, 3, 4),
            id="per-breed",
        )
    )
    return blocks


def _training_facts(job: Resource, loaded: Loaded) -> list[tuple[str, str]]:
    run, meta = loaded.run, loaded.run.meta
    hps = meta.get("hyperparameters") or job.meta.get("hyperparameters") or {}
    facts = [
        ("training job", job.name),
        ("backend", job.backend),
        ("state", loaded.status or job.state),
        ("model", _fmt(meta.get("arch") or hps.get("arch"))),
        ("device", f"{_fmt(meta.get('device'))} x {_fmt(meta.get('world_size') or 1)} process(es)" if meta else ""),
        ("images", ", ".join(f"{s} {meta[f'num_{s}']}" for s in ("train", "valid", "test") if f"num_{s}" in meta)),
        (
            "hyperparameters",
            ", ".join(f"{k}={_fmt(hps[k])}" for k in ("epochs", "batch_size", "lr", "weight_decay", "freeze") if k in hps),
        ),
    ]
    if run.final:
        facts += [(key, _fmt(run.final.get(key))) for key in ("best_epoch", "train_seconds")]  # the rest: Summary
    if run.starts > 1:
        facts.append(("resumed", f"{run.starts - 1} time(s)"))
    facts += [("records", loaded.source or "none"), ("generated", datetime.now(timezone.utc).isoformat(timespec="seconds"))]
    return [(k, v) for k, v in facts if v]


def training_report(
    config: Config,
    workspace: Workspace,
    job_name: str | None = None,
    *,
    backend_for: BackendFor | None = None,
    reporter: Reporter | None = None,
) -> Report:
    reporter = reporter or NullReporter()
    backend_for = backend_for or _backends(config, workspace, reporter)
    ledger = workspace.ledger
    job = find_training_job(ledger, job_name, config.backend)
    out_dir = workspace.reports() / job.name
    reporter.info(f"report on training job {job.name} ({job.backend})")
    loaded = load_job(job, out_dir, backend_for)
    run, evaluation = loaded.run, loaded.evaluation
    results = [rules.with_advice(r) for r in rules.evaluate(run) + loaded.debugger]
    judged = verdict(run.evaluations, run.meta.get("num_classes"), loaded.status or job.state, job.meta.get("failure"))
    with reporter.task("drawing the plots"):
        figures = plots.training_figures(run)
        reliability = None
        if evaluation is not None:
            reliability = plots.reliability_figure(
                job_evaluation.calibration_bins(evaluation), (evaluation.get("calibration") or {}).get("ece")
            )
    notes = loaded.notes + [f"records: {problem}" for problem in run.problems]
    if run.final is None and run.steps:
        notes.append("the records have no final record: the job is still running, or stopped before the end")
    if evaluation is None and loaded.evaluation_problem is None and run.final is not None:
        notes.append("no evaluation.json beside the records: the job had no test split, or predates the evaluation")
    summary = training_summary(run, loaded.metrics, evaluation)
    phases = job_evaluation.timing(loaded.metrics, run.final)
    facts = _training_facts(job, loaded)
    constant_lr = plots.constant_learning_rate(run)
    if constant_lr is not None:
        facts.append(("learning rate", f"constant at {constant_lr:g} over all {len(run.steps)} steps (no plot)"))
    html = page.render(
        f"Training job {job.name}",
        facts,
        results,
        _images(figures),
        notes=notes,
        links=loaded.links,
        verdict=f"Verdict: {judged.text}",
        summary=[t for t in (_summary_table(summary), _timing_table(phases)) if t is not None],
        sections=evaluation_blocks(evaluation, reliability) if evaluation is not None else (),
    )
    pngs_to_write = {**figures, **({"reliability": reliability} if reliability is not None else {})}
    html_path, pngs = _write_outputs(out_dir, html, pngs_to_write)
    report = Report(
        job.name,
        "training-job",
        job.backend,
        html_path,
        pngs,
        results,
        loaded.source,
        notes,
        extra={"summary": summary, "timing": phases},
        evaluation=evaluation,
        verdict=judged,
    )
    _record(ledger, report)
    return report


# --- tuning ------------------------------------------------------------------------------


def _categorical(config: Config, job: Resource) -> set[str]:
    """Parameters searched as categories (their values are choices, not points on a line)."""
    recorded = job.meta.get("ranges") or {}
    found = {name for name, r in recorded.items() if isinstance(r, dict) and r.get("type") == "categorical"}
    return found | {name for name, searched in config.tune.ranges.items() if searched.type == "categorical"}


def _scalings(config: Config, job: Resource) -> dict[str, str]:
    """How each range was searched: the tuning job's own record first, then the config."""
    recorded = job.meta.get("ranges") or {}
    scalings = {name: str(r.get("scaling")) for name, r in recorded.items() if isinstance(r, dict) and r.get("scaling")}
    for name, searched in config.tune.ranges.items():
        scalings.setdefault(name, searched.scaling)
    return {name: scaling for name, scaling in scalings.items() if scaling != "Auto"}


def _trial_issues(trials: Sequence[Resource], out_dir: Path, backend_for: BackendFor) -> dict[str, str]:
    """Rules flagged per trial, from the records its job left (trial rows are the local
    engine's: the records are in the trials' job folders, no network)."""
    flagged = {}
    for trial in trials:
        try:
            found = backend_for(trial.backend).job_records(trial, out_dir / trial.name)
        except DogbreedError:
            continue  # no records (yet): nothing to flag
        if found.path is not None:
            issues = [r.name for r in rules.evaluate(read_records(found.path)) if r.status == rules.ISSUE]
            flagged[trial.name] = ", ".join(issues) or "none"
    return flagged


def _trials_table(summary: TuningSummary, flagged: dict[str, str]) -> page.Table:
    names = summary.param_names
    columns = ["#", "trial", "state", *names, summary.metric, "rule issues", "failure"]
    best = summary.best.get("name")
    rows = []
    for trial in summary.trials:
        marker = " (best)" if trial.name == best else ""
        rows.append(
            [
                str(trial.number),
                trial.name + marker,
                trial.state,
                *[_fmt(trial.params.get(name)) for name in names],
                _fmt(trial.objective),
                flagged.get(trial.name, ""),
                (trial.failure or "")[:200],
            ]
        )
    return page.Table(f"Trials ({len(summary.trials)})", columns, rows)


def tuning_report(
    config: Config,
    workspace: Workspace,
    tuning: str = "latest",
    *,
    backend_for: BackendFor | None = None,
    reporter: Reporter | None = None,
) -> Report:
    reporter = reporter or NullReporter()
    backend_for = backend_for or _backends(config, workspace, reporter)
    ledger = workspace.ledger
    job = find_tuning_job(ledger, tuning)
    trials = ledger.list("trial", parent=job.name)
    trials.sort(key=lambda t: t.meta.get("number") if isinstance(t.meta.get("number"), int) else 1 << 30)
    summary = summarize(job, trials)
    out_dir = workspace.reports() / job.name
    reporter.info(f"report on tuning job {job.name} ({len(trials)} trials)")
    log_params = log_scaled(summary, _scalings(config, job))
    with reporter.task("drawing the plots"):
        figures = plots.tuning_figures(summary, log_params, _categorical(config, job))
    notes, results, links, source = [], [], [], None
    best_name = summary.best.get("name")
    best = next((t for t in trials if t.name == best_name), None)
    best_page: Path | None = None
    if best is not None:
        # The best trial's own report (its plots, rules, evaluation), written beside this one.
        try:
            best_report = training_report(config, workspace, best.name, backend_for=backend_for, reporter=reporter)
        except DogbreedError as exc:
            notes.append(f"no report on the best trial: {exc}")
            earlier = workspace.reports() / best.name / REPORT_FILE
            best_page = earlier if earlier.is_file() else None  # an earlier report of it still helps
        else:
            results, source, best_page = best_report.rules, best_report.records, best_report.html
            notes += [f"best trial: {note}" for note in best_report.notes]
        if best_page is not None:
            links.append((f"the best trial's own report ({best.name})", os.path.relpath(best_page, out_dir)))
    elif best_name:
        notes.append(f"the best trial {best_name} is not in the ledger")
    else:
        notes.append("no trial has completed yet, so there is no best trial to judge")
    objective = f"{summary.metric} ({'maximize' if summary.maximize else 'minimize'})"
    completed = sum(1 for t in summary.trials if t.state == "Completed")
    facts = [
        ("tuning job", job.name),
        ("backend", job.backend),
        ("state", job.state),
        ("strategy", _fmt(summary.strategy)),
        ("objective", objective),
        ("trials", f"{len(summary.trials)} ({completed} completed)"),
        ("best trial", f"{best_name} {summary.metric}={_fmt(summary.best.get('objective'))}" if best_name else "none yet"),
        ("best params", ", ".join(f"{k}={_fmt(v)}" for k, v in (summary.best.get("params") or {}).items())),
        ("log axes", ", ".join(sorted(log_params)) or "none"),
        ("generated", datetime.now(timezone.utc).isoformat(timespec="seconds")),
    ]
    table = _trials_table(summary, _trial_issues(trials, out_dir, backend_for))
    html = page.render(
        f"Tuning job {job.name}",
        [(k, v) for k, v in facts if v],
        results,
        _images(figures),
        [table],
        notes,
        links,
        rules_title=f"Rules on the best trial, {best_name}",
    )
    html_path, pngs = _write_outputs(out_dir, html, figures)
    report = Report(
        job.name,
        "tuning-job",
        job.backend,
        html_path,
        pngs,
        results,
        source,
        notes,
        extra={"best": summary.best, "trials": len(summary.trials), "best_report": str(best_page) if best_page else None},
    )
    _record(ledger, report)
    return report
