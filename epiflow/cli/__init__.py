"""The ``epiflow`` command. Each subcommand lives in its own module of this package, which
defines ``register(subparsers)``: it adds its parser and sets ``func`` to the function to run."""
from __future__ import annotations

import argparse
import importlib
import sys

from epiflow import __version__

#: Subcommand modules, in the order ``epiflow --help`` lists them.
COMMANDS = [
    "run",
    "calibrate",
    "triangulate",
    "inspect",
    "export",
    "train",
    "evaluate",
    "predict",
    "demo",
]


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
        description="3D human pose from synchronized multi-camera video, without 3D ground truth: "
                    "cameras from people, robust pseudo-labels, a Zarr store and a trainer.")
    parser.add_argument("--version", action="version", version=f"epiflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"epiflow.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"epiflow {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
