"""The ``gapwatch`` command: one entry point, one sub-command per service.

Each sub-command module exposes ``register(subparsers)`` which adds its parser and sets
``func(args, settings) -> int``. Settings are built here, once, and passed down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from gapwatch.core.errors import ConfigError
from gapwatch.logging_setup import configure_logging
from gapwatch.settings import Settings

__all__ = ["main"]

# Sub-command modules, imported lazily so `gapwatch api` never imports faust.
_COMMANDS = (
    "gapwatch.ingest.command",
    "gapwatch.api.command",
    "gapwatch.api.token_command",
    "gapwatch.publisher.command",
    "gapwatch.topics",
    "gapwatch.ingest.reconcile",
    "gapwatch.ingest.rebuild",
    "gapwatch.ingest.dlq",
    "gapwatch.refdata.command",
    "gapwatch.spc_command",
    "gapwatch.alerting.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gapwatch",
        description="Near-real-time health-inequalities monitor. Settings come from "
        "GAPWATCH_* environment variables (see README); flags override them.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = Settings()
        result: int = args.func(args, settings)
    except ConfigError as exc:
        logging.getLogger("gapwatch").error("configuration error: %s", exc)
        return 2
    except ValidationError as exc:
        # Never pydantic's own text: it quotes the input, which may hold a secret.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        logging.getLogger("gapwatch").error("configuration error: %s", problems)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
