"""``gapwatch token``: issue an API bearer token.

Run by whoever holds the signing key (``GAPWATCH_AUTH_JWT_SECRET``): a service desk
issuing an ICB analyst a working day's token, or ``scripts/stack up`` printing a
national token for development. The token goes to stdout alone, so it can be captured
(``TOKEN=$(gapwatch token ...)``); what it grants goes to stderr.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from gapwatch.core.access import ROLES
from gapwatch.settings import Settings

__all__ = ["parse_ttl", "register"]

_TTL = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_ttl(text: str) -> int:
    """``"8h"`` -> 28800 seconds (s, m, h or d)."""
    match = _TTL.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"ttl must look like 30m, 8h or 7d, got {text!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "token",
        help="issue an API bearer token (needs the signing key)",
        description="Issue a signed API token. Roles: national (everything, and the audit "
        "trail), icb (the ICBs named with --icb), trust (its own feeds, --trust), public "
        "(/v1/public only).",
    )
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument(
        "--icb", action="append", default=[], help="ICB ODS code (repeatable), for --role icb"
    )
    parser.add_argument(
        "--trust", action="append", default=[], help="trust ODS code (repeatable), for --role trust"
    )
    parser.add_argument("--ttl", type=parse_ttl, default="8h", help="lifetime, e.g. 8h (default)")
    parser.add_argument(
        "--subject",
        default=None,
        help="who the token is for, recorded in the audit trail (default: role and codes)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from gapwatch.adapters.tokens import issue_token
    from gapwatch.core.access import InvalidToken

    ttl_s: int = args.ttl if isinstance(args.ttl, int) else parse_ttl(args.ttl)
    codes = [c.upper() for c in (args.icb if args.role == "icb" else args.trust)]
    subject = args.subject or (f"{args.role}:{','.join(codes)}" if codes else args.role)
    if args.role not in ("icb", "trust") and (args.icb or args.trust):
        print(f"gapwatch token: a {args.role} token takes no --icb or --trust", file=sys.stderr)
        return 2
    if args.role == "icb" and args.trust or args.role == "trust" and args.icb:
        print("gapwatch token: --icb is for icb tokens, --trust for trust tokens", file=sys.stderr)
        return 2
    try:
        token = issue_token(
            settings.auth,
            role=args.role,
            subject=subject,
            now_s=int(time.time()),
            ttl_s=ttl_s,
            icbs=args.icb,
            trusts=args.trust,
        )
    except (InvalidToken, ValueError) as exc:
        print(f"gapwatch token: {exc}", file=sys.stderr)
        return 2
    print(token)
    scope = f" for {', '.join(codes)}" if codes else ""
    print(f"{args.role} token{scope}, subject {subject!r}, valid {ttl_s} s", file=sys.stderr)
    return 0
