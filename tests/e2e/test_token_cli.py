"""``gapwatch token`` as an operator runs it: the token on stdout, checked by the API's
own verifier; bad requests and a missing key refused with a message."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from gapwatch.adapters.tokens import verify_token
from gapwatch.settings import Settings


def gapwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gapwatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env if env is not None else dict(os.environ),
    )


def test_an_icb_token_for_a_working_day() -> None:
    done = gapwatch("token", "--role", "icb", "--icb", "qop", "--ttl", "8h")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert "\n" not in token
    principal = verify_token(Settings().auth, token, int(time.time()))
    assert principal.role == "icb" and principal.icbs == frozenset({"QOP"})
    assert principal.subject == "icb:QOP"
    assert abs(principal.expires_at_s - (time.time() + 8 * 3600)) < 60
    assert "icb token for QOP" in done.stderr and token not in done.stderr


def test_trust_and_national_tokens() -> None:
    trust = gapwatch("token", "--role", "trust", "--trust", "R0A", "--subject", "feeds@r0a")
    principal = verify_token(Settings().auth, trust.stdout.strip(), int(time.time()))
    assert (principal.role, principal.trusts, principal.subject) == (
        "trust",
        frozenset({"R0A"}),
        "feeds@r0a",
    )
    national = gapwatch("token", "--role", "national", "--ttl", "30m")
    assert verify_token(Settings().auth, national.stdout.strip(), int(time.time())).national


def test_bad_requests_are_refused_with_a_reason() -> None:
    cases = {
        ("--role", "icb"): "must name at least one ICB",
        ("--role", "national", "--icb", "QOP"): "takes no --icb or --trust",
        ("--role", "icb", "--icb", "QOP", "--ttl", "400d"): "ttl must be between",
        ("--role", "icb", "--icb", "QOP", "--ttl", "soon"): "ttl must look like",
        ("--role", "admin"): "invalid choice",
    }
    for args, message in cases.items():
        done = gapwatch("token", *args)
        assert done.returncode == 2, args
        assert message in done.stderr, (args, done.stderr)
        assert done.stdout == ""


def test_no_signing_key_no_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GAPWATCH_AUTH_JWT_SECRET"}
    done = gapwatch("token", "--role", "national", env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert "GAPWATCH_AUTH_JWT_SECRET" in done.stderr
    short = gapwatch("token", "--role", "national", env={**env, "GAPWATCH_AUTH_JWT_SECRET": "k"})
    assert short.returncode == 2 and "at least 32 bytes" in short.stderr
    assert "input" not in short.stderr  # pydantic quotes the input: a secret, in general
