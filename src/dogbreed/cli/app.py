"""The `dogbreed` typer app and its error-to-exit-code mapping.

Exit codes: 0 success, 2 usage or config error, 1 any other failure (130 on Ctrl-C).
An error is one line on stderr; a traceback only with -v/--debug.
Heavy libraries (torch, torchvision, sagemaker, boto3, pydantic) are imported inside commands
only, and help is typer's plain (click) help, not its rich one, so `dogbreed --help` stays
fast; tests/cli/test_app.py probes the imports.
"""

from __future__ import annotations

import errno
import signal
import sys
import traceback
from pathlib import Path

import typer
from typer.exceptions import TyperException

from dogbreed import __version__
from dogbreed.cli import commands, config_cmd
from dogbreed.cli.session import stderr_console
from dogbreed.errors import DogbreedError

app = typer.Typer(
    name="dogbreed",
    help="Dog photos to a live breed classifier: ingest → tune → train → report → deploy → predict → teardown.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help imports rich.markdown and rich.traceback (markdown-it, pygments,
    # attrs), half of `dogbreed --help`'s CPU time, to draw boxes around the same text.
    rich_markup_mode=None,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    context_settings={"help_option_names": ["-h", "--help"]},
)
commands.register(app)
app.add_typer(config_cmd.app, name="config")


def _version(value: bool) -> None:
    if value:
        print(f"dogbreed {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Every command takes --config/-c, --set, --backend and --json, before or after the command
    name; see `dogbreed COMMAND --help`."""


def _one_line(message: str) -> str:
    """Control characters shown escaped: a path or value holding a newline or an ANSI escape
    can neither break the one-line contract nor drive the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in message)


def _fail(message: str, code: int, verbose: bool = False) -> int:
    # The message is plain text, never markup: paths and values hold "[...]" ("photos [copy]",
    # "[/x]") that rich would swallow or choke on (MarkupError inside the error handler).
    from rich.text import Text  # here: `dogbreed --help` never needs it

    console = stderr_console()
    console.print(Text.assemble(("error:", "bold red"), " ", _one_line(message)), highlight=False, soft_wrap=True)
    if verbose:
        traceback.print_exc()
    return code


# The options every command takes; before the command they are moved after it, so
# `dogbreed -c x.yaml --json train` means `dogbreed train -c x.yaml --json`.
COMMON_WITH_VALUE = ("-c", "--config", "--set", "--backend")
COMMON_FLAGS = ("--json", "-v", "--verbose", "--debug")
SUBCOMMAND_GROUPS = ("config",)  # `config show|schema`: the options go after the second word


def hoist_common_options(argv: list[str]) -> list[str]:
    """Move the common options found before the command to just after it; anything else
    before the command (--help, --version, a typo) leaves argv as it was."""
    front: list[str] = []
    position = 0
    while position < len(argv):
        token = argv[position]
        name = token.split("=", 1)[0]
        if name in COMMON_WITH_VALUE and "=" in token:
            front.append(token)
            position += 1
        elif name in COMMON_WITH_VALUE and position + 1 < len(argv):
            front += argv[position : position + 2]
            position += 2
        elif token in COMMON_FLAGS:
            front.append(token)
            position += 1
        else:
            break
    rest = argv[position:]
    if not front or not rest or rest[0].startswith("-"):
        return argv
    command = rest[:2] if rest[0] in SUBCOMMAND_GROUPS and len(rest) > 1 and not rest[1].startswith("-") else rest[:1]
    return [*command, *front, *rest[len(command) :]]


VERBOSE_FLAGS = ("-v", "--verbose", "--debug")


def wants_traceback(argv: list[str]) -> bool:
    """-v/--verbose/--debug anywhere among the options (not as the value of a common option,
    not after `--`): read from argv, so the error handler needs no state set by the command."""
    position = 0
    while position < len(argv):
        token = argv[position]
        if token == "--":
            return False
        if token in VERBOSE_FLAGS:
            return True
        position += 2 if token in COMMON_WITH_VALUE else 1
    return False


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (main() exits with it)."""
    argv = hoist_common_options(list(sys.argv[1:] if argv is None else argv))
    verbose = wants_traceback(argv)
    try:
        # Without standalone mode typer returns the code of an Exit instead of raising it,
        # and turns Ctrl-C into Exit(130) on the way.
        code = app(args=argv, prog_name="dogbreed", standalone_mode=False)
        if code == 130:
            return _fail("interrupted; run the same command again to resume", 130, verbose)
        return code if isinstance(code, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort as exc:
        # typer turns any EOFError that escapes a command into Abort (raised from it), as if
        # Ctrl-D had answered a prompt; a prompt's own Abort is raised from None. A stray one is
        # a bug or a damaged file somewhere, not the user stopping us: not "aborted", exit 130.
        if isinstance(exc.__cause__, EOFError):
            return _unexpected(exc.__cause__, verbose)
        return _fail("aborted", 130, verbose)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            # `dogbreed` or `dogbreed config` alone: click raises its help as a usage error, which
            # the one-line rule below flattened into one unreadable line. The help as it is.
            # (By name, as typer itself tests it: typer vendors its own click.)
            print(exc.format_message(), file=sys.stderr)
            return 2
        # Usage errors: wrong option, missing argument, bad choice.
        hint = " (see --help)"
        if argv and argv[0].split("=", 1)[0] in (*COMMON_WITH_VALUE, *COMMON_FLAGS):
            hint = f"; {argv[0].split('=', 1)[0]} needs a command to go with, e.g. dogbreed train {' '.join(argv)} (see --help)"
        return _fail(exc.format_message().replace("\n", " ") + hint, 2)  # parsing: no traceback worth showing
    except KeyboardInterrupt:
        return _fail("interrupted; run the same command again to resume", 130, verbose)
    except DogbreedError as exc:
        return _fail(str(exc), exc.exit_code, verbose)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if _is_aws_setup_error(exc):
            return _fail(f"AWS: {exc}; {AWS_SETUP_HINT}", 1, verbose)
        return _unexpected(exc, verbose)


# botocore's errors for a machine not set up for AWS, by name: the CLI never imports botocore
# (only backends talk to AWS), and any command that reaches AWS may be the first to meet one.
_AWS_SETUP_ERRORS = ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound", "NoRegionError")
AWS_SETUP_HINT = (
    "set sagemaker.profile (a profile in ~/.aws/config), or the AWS_* environment variables, "
    "and sagemaker.region; `aws configure` writes them"
)


def _is_aws_setup_error(exc: BaseException) -> bool:
    return type(exc).__name__ in _AWS_SETUP_ERRORS and type(exc).__module__.startswith("botocore")


# What the machine refuses, wherever a write meets it: one line with the file and what to do,
# not "unexpected OSError". A rerun resumes (writes are atomic: nothing half-written is kept).
_FILE_SYSTEM_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and run the command again",
    errno.EDQUOT: "the disk quota is used up; free some space and run the command again",
    errno.EFBIG: "the file size limit (ulimit -f) was reached; raise it and run the command again",
    errno.EROFS: "the file system is read-only; set `workspace` (--set workspace=DIR) to a folder you can write",
    errno.EACCES: "make it writable, or set `workspace` (--set workspace=DIR) to a folder you can write",
    errno.EPERM: "make it writable, or set `workspace` (--set workspace=DIR) to a folder you can write",
    errno.ENOTDIR: "a file stands where a folder is needed; move it away",
}


def _in_the_way(exc: OSError) -> str | None:
    """A folder where a file goes (EISDIR: a write, or a rename onto it) or a file where a
    folder goes (EEXIST from mkdir), as what it is; any other EEXIST stays unexpected."""
    if exc.errno == errno.EISDIR:
        path = exc.filename2 or exc.filename
        if path and Path(path).is_dir():
            return f"{path} is a folder where a file is needed; move it away and run the command again"
    if exc.errno == errno.EEXIST and exc.filename and not exc.filename2:
        path = Path(exc.filename)
        if path.exists() and not path.is_dir():
            return f"{path} is a file where a folder is needed; move it away and run the command again"
    return None


def _file_system_error(exc: BaseException) -> str | None:
    if isinstance(exc, OSError) and _in_the_way(exc):
        return _in_the_way(exc)
    if not isinstance(exc, OSError) or exc.errno not in _FILE_SYSTEM_HINTS:
        return None
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno == errno.ENOTDIR and exc.filename:
        path = Path(exc.filename)
        in_the_way = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if in_the_way is not None:
            return f"{in_the_way} is a file where a folder is needed; move it away and run the command again"
    return f"{where}{exc.strerror or exc}; {_FILE_SYSTEM_HINTS[exc.errno]}"


def _unexpected(exc: BaseException, verbose: bool) -> int:
    said = _file_system_error(exc)
    if said:
        return _fail(said, 1, verbose)
    detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return _fail(f"unexpected {detail} (run again with -v for the traceback)", 1, verbose)


def _stop_on_sigterm() -> None:
    """SIGTERM (`kill`, a CI job's timeout, systemd) stops a command as Ctrl-C does. Python's
    default for it ends the process on the spot: `tune` vanished while its workers searched on
    with nobody following, and `train` left its job running unwatched."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    _stop_on_sigterm()
    sys.exit(run())
