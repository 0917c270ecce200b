"""API tokens for the local stack and for the tools that start an API of their own.

The API will not start without a signing key (``GAPWATCH_AUTH_JWT_SECRET``). The local
stack uses that variable when it is set; otherwise it generates a random key once and
keeps it in its run directory (``signing-key``, mode 0600), so ``scripts/stack down``,
a later ``up``, a re-attach to a running stack and ``make demo`` all sign with the same
key. ``scripts/stack up`` then issues a national development token through ``gapwatch
token`` itself and keeps it in ``dev-token`` (0600) for scripts.

Nothing here logs or prints a key or a token: ``stack up`` and ``make demo`` print the
token on purpose, and nothing else does.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from pydantic import SecretStr

from gapwatch.core.access import Role
from gapwatch.core.errors import ConfigError
from gapwatch.settings import AuthSettings

__all__ = [
    "DEV_TOKEN_TTL",
    "KEY_ENV",
    "KEY_FILE",
    "TOKEN_FILE",
    "bearer",
    "dashboard_url",
    "issue_dev_token",
    "issue_for_env",
    "new_signing_key",
    "read_token",
    "remove_token",
    "stack_signing_key",
    "write_token",
]

KEY_ENV = "GAPWATCH_AUTH_JWT_SECRET"
KEY_FILE = "signing-key"
TOKEN_FILE = "dev-token"  # noqa: S105  # a file name
DEV_TOKEN_TTL = "12h"  # noqa: S105  # a lifetime
"""A working day and a bit: long enough for a day's development, short enough that a
token copied somewhere stops working by tomorrow."""
_MIN_KEY_BYTES = 32


def new_signing_key() -> str:
    """A random HMAC key: 48 random bytes, URL-safe base64 (64 characters)."""
    return secrets.token_urlsafe(48)


def stack_signing_key(run_dir: Path, env: Mapping[str, str]) -> tuple[str, str]:
    """The key the stack's API signs tokens with, and where it came from (for a message
    that never holds the key): ``GAPWATCH_AUTH_JWT_SECRET`` when set, else the run
    directory's ``signing-key``, generated on first use."""
    if env.get(KEY_ENV):
        return env[KEY_ENV], f"from {KEY_ENV}"
    path = run_dir / KEY_FILE
    try:
        return _read_key(path), f"in {path}"
    except FileNotFoundError:
        pass
    key = new_signing_key()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two `stack up`s at once agree on one key (the loser reads the winner's).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path), f"in {path}"
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key, f"in {path} (generated for this stack)"


def _read_key(path: Path) -> str:
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a copy or a restore may have widened it
    key = path.read_text().strip()
    if len(key.encode()) < _MIN_KEY_BYTES:
        raise ConfigError(f"{path} holds no usable signing key: delete it and run `up` again")
    return key


def issue_dev_token(env: Mapping[str, str], *, ttl: str = DEV_TOKEN_TTL) -> str:
    """A national token from ``gapwatch token`` (the command itself, so it carries exactly
    the claims and checks an issued token does), signed with the key in ``env``."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "developer"
    argv = [sys.executable, "-m", "gapwatch", "--log-level", "WARNING", "token"]
    argv += ["--role", "national", "--ttl", ttl, "--subject", f"dev:{user}"]
    done = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=60)
    token = done.stdout.strip()
    if done.returncode != 0 or not token or "\n" in token:
        raise ConfigError(f"`gapwatch token` failed: {done.stderr.strip()[-500:]}")
    return token


def issue_for_env(
    env: Mapping[str, str],
    *,
    role: Role = "national",
    subject: str = "devstack",
    ttl_s: int = 12 * 3600,
    icbs: tuple[str, ...] = (),
) -> str:
    """A token in-process, for an API started with ``env`` (benchmarks, chaos runs)."""
    from gapwatch.adapters.tokens import issue_token

    key = env.get(KEY_ENV)
    if not key:
        raise ConfigError(f"no {KEY_ENV} in the environment the API was started with")
    auth = AuthSettings(jwt_secret=SecretStr(key))
    return issue_token(
        auth, role=role, subject=subject, now_s=int(time.time()), ttl_s=ttl_s, icbs=icbs
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_token(run_dir: Path, token: str) -> Path:
    """``dev-token`` in the run directory, mode 0600 from the start, replaced atomically."""
    path = run_dir / TOKEN_FILE
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.replace(tmp, path)
    return path


def read_token(run_dir: Path) -> str:
    """The development token ``stack up`` left; ConfigError when there is none."""
    path = run_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError as exc:
        raise ConfigError(f"no token at {path}: run `scripts/stack up` first") from exc
    if not token:
        raise ConfigError(f"{path} is empty: run `scripts/stack up` again")
    return token


def remove_token(run_dir: Path) -> None:
    (run_dir / TOKEN_FILE).unlink(missing_ok=True)


def dashboard_url(api_url: str, token: str) -> str:
    """The dashboard with the token in the fragment: browsers never send a fragment to
    the server, so it stays out of access logs, proxies and the Referer header; the page
    moves it to sessionStorage and takes it out of the address bar."""
    return f"{api_url.rstrip('/')}/#token={quote(token, safe='-_.')}"
