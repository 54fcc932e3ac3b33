"""The ``driftline`` console script.

Subcommands live one per module in ``driftline.commands``; each module's
``register(subparsers)`` adds its parser and a ``func(args) -> int`` handler. Errors
derived from ``DriftlineError`` print one line saying what to do and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from driftline import commands
from driftline.errors import DriftlineError
from driftline.gc_tuning import tune_for_batches
from driftline.logs import configure

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """A parser with every subcommand module found in ``driftline.commands``."""
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Streaming drift detection, retraining and model rollout on Kafka.",
    )
    parser.add_argument("--config", help="path to driftline.toml (default: ./driftline.toml if present)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure(args.log_level)
    tune_for_batches()  # every subcommand is batch work (see driftline.gc_tuning)
    try:
        return int(args.func(args) or 0)
    except DriftlineError as exc:
        print(f"driftline: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from driftline.kafka.failures import refusal_line

        line = refusal_line(exc)  # the broker refused us: one line saying what to fix, not a traceback
        if line is None:
            raise
        print(f"driftline: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (``driftline ... | head``): not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
