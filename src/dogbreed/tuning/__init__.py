"""The search space both backends search: `tune.ranges` checked once, in one backend-neutral
form (space.py). The local engine that searches it with Optuna lives in
backends/local_tuning/; the SageMaker tuner is built from the same YAML in aws/tuner.py.
"""
