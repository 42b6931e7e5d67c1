"""The error types the CLI maps to exit codes and one-line messages.

Raise these with a message that says what went wrong, where, and how to fix it.
"""

from __future__ import annotations


class DogbreedError(Exception):
    """Any failure we expected and can explain in one line. Exit code 1."""

    exit_code = 1


class UsageError(DogbreedError):
    """The command line itself is wrong. Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file, --set or flag is wrong. Exit code 2."""


class NotBuiltError(DogbreedError):
    """A command or backend feature that does not exist yet."""


class BusyError(DogbreedError):
    """Another process holds it (a job another `train` runs): wait, stop it, or name another."""


class NotFoundError(DogbreedError):
    """A named (or 'latest') resource does not exist in the ledger or the backend."""
