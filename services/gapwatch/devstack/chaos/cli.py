"""``scripts/chaos`` (``make chaos``): prove exactly-once counting under faults.

Runs each scenario on its own fresh local stack (Tansu, a private redis-server, ingest
workers, the API where needed) with the same seeded stream, and prints one row per
scenario. Exit code 0 when every scenario has 0 mismatches, 1 otherwise, 2 on bad
arguments. docs/chaos.md says what each scenario does and how mismatches are counted.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from gapwatch.devstack.chaos.harness import run_chaos
from gapwatch.devstack.chaos.report import as_json, as_table
from gapwatch.devstack.chaos.scenarios import DEFAULT_SCENARIOS, SCENARIOS
from gapwatch.devstack.processes import exit_on_sigterm
from gapwatch.logging_setup import configure_logging
from gapwatch.settings import Settings

__all__ = ["main"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="unique events (1,000,000)")
    parser.add_argument("--seed", type=int, default=42, help="stream and fault seed (42)")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from: {', '.join(SCENARIOS)} (default: all but combined)",
    )
    parser.add_argument(
        "--rate", type=float, default=50_000, help="events/s offered to the broker (50,000)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--keep-logs", action="store_true", help="keep logs even when all pass")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenario_list if s not in SCENARIOS]
    if unknown or args.events < 1 or args.rate <= 0:
        parser.error(f"unknown scenarios {unknown}" if unknown else "events and rate must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    # librdkafka reports every refused reconnect while a broker is down on purpose.
    logging.getLogger("gapwatch.publisher.librdkafka").setLevel(logging.CRITICAL)
    exit_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="gapwatch-chaos-"))
    report = run_chaos(
        Settings(),
        events=args.events,
        seed=args.seed,
        scenarios=args.scenario_list,
        rate=args.rate,
        work=work,
    )
    if args.json:
        print(json.dumps(as_json(report), indent=2))
    else:
        print(as_table(report))
    if report.mismatches or args.keep_logs:
        print(f"logs: {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if report.mismatches else 0
