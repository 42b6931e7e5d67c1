"""What a training or tuning job did, judged by rules and drawn as one self-contained HTML page.

    records.py       records.jsonl (the job's flight recorder) -> a typed Run   (pure)
    rules.py         Run -> RuleResults, Debugger's built-in rules re-done on our records (pure)
    tuning.py        a tuning job's ledger entries -> trial rows                 (pure)
    evaluation.py    the job's evaluation.json and metrics.json timing -> tables
    verdict.py       the epochs' history -> one line saying what to do next       (pure)
    plots.py         Run / trials -> PNG figures (matplotlib Agg, imported lazily)
    page.py          facts, rules, tables, figures -> one HTML page              (pure)
    sagemaker_job.py a SageMaker job's output.tar.gz and Debugger verdicts, through AwsSession

workflows/report.py puts them together; cli/report.py is the command.
"""
