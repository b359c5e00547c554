"""The ``epiflow`` command. Each subcommand lives in its own module of this package, which
defines ``register(subparsers)``: it adds its parser and sets ``func`` to the function to run."""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from pathlib import Path
from typing import Callable

from epiflow import __version__

#: Subcommand modules, in the order ``epiflow --help`` lists them.
COMMANDS = [
    "run",
    "calibrate",
    "triangulate",
    "inspect",
    "compare_cameras",
    "export",
    "train",
    "evaluate",
    "predict",
    "demo",
    "upgrade_store",
]


def _number(text: str, kind: type, what: str):
    """``text`` as ``kind`` (int or float), or argparse's error saying what was expected."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and value != value:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _ranged(kind: type, what: str, ok: Callable) -> Callable[[str], int | float]:
    def parse(text: str):
        value = _number(text, kind, what)
        if not ok(value) or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = what  # argparse names the type by it in "invalid ... value" messages
    return parse


#: argparse ``type=`` functions for numeric options, checked when the command line is parsed
#: (exit 2, the message names the option: "argument --fps: expected a number > 0, got '0'").
fraction = _ranged(float, "a fraction in [0, 1]", lambda v: 0 <= v <= 1)
positive_float = _ranged(float, "a number > 0", lambda v: v > 0)
non_negative_float = _ranged(float, "a number >= 0", lambda v: v >= 0)
positive_int = _ranged(int, "an integer >= 1", lambda v: v >= 1)
non_negative_int = _ranged(int, "an integer >= 0", lambda v: v >= 0)


def print_warnings(command: str, warnings, where: str = "") -> list[str]:
    """Print stored warnings to stderr, one line each: ``epiflow COMMAND: warning: WHERE: text``
    (``where`` names the session or file they belong to). Returns the lines printed."""
    prefix = f"epiflow {command}: warning: " + (f"{where}: " if where else "")
    lines = [prefix + " ".join(str(w).split()) for w in warnings]
    for line in lines:
        print(line, file=sys.stderr)
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epiflow",
        description="3D human pose from multi-camera video (synchronized or not), without 3D "
                    "ground truth: cameras and time offsets from people, robust pseudo-labels, "
                    "a Zarr store and a trainer.")
    parser.add_argument("--version", action="version", version=f"epiflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"epiflow.cli.{name}").register(sub)
    return parser


def _own_warnings(command: str, previous: Callable) -> Callable:
    """A ``warnings.showwarning`` that prints a UserWarning raised by epiflow's own code as one
    line, ``epiflow COMMAND: warning: text`` (it is a sentence for the user; the file, line and
    source line Python adds are noise), and any other warning as ``previous`` does."""
    package = Path(__file__).resolve().parents[1]

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning) and Path(filename).resolve().is_relative_to(package):
            print_warnings(command, [message])
        else:
            previous(message, category, filename, lineno, file, line)
    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # no command: a usage error, as argparse's own are
        parser.print_help(sys.stderr)
        return 2
    with warnings.catch_warnings():  # restores showwarning after the command
        warnings.showwarning = _own_warnings(args.command, warnings.showwarning)
        return _run(args)


def _run(args) -> int:
    """Run the parsed command: bad input (FileNotFoundError, ValueError, KeyError) is one line
    on stderr and exit 2; a numerical failure inside epiflow is an internal error, exit 1."""
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as err:
        if type(err).__module__.startswith("numpy"):  # LinAlgError is a ValueError: not input
            print(f"epiflow {args.command}: internal error: a numerical step failed "
                  f"({type(err).__name__}: {err}); this is a bug in epiflow, not a problem with "
                  f"your input: please report it with the command", file=sys.stderr)
            return 1
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"epiflow {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
