"""Tokens for tests, signed with the test run's key (tests/conftest.py sets it)."""

from __future__ import annotations

import time

from gapwatch.adapters.tokens import issue_token
from gapwatch.core.access import Role
from gapwatch.settings import AuthSettings, Settings

__all__ = ["bearer", "national_headers", "token"]


def token(
    role: Role = "national",
    *,
    icbs: tuple[str, ...] = (),
    trusts: tuple[str, ...] = (),
    ttl_s: int = 3600,
    now_s: int | None = None,
    auth: AuthSettings | None = None,
    subject: str | None = None,
) -> str:
    auth = auth or Settings().auth
    return issue_token(
        auth,
        role=role,
        subject=subject or f"test-{role}",
        now_s=int(time.time()) if now_s is None else now_s,
        ttl_s=ttl_s,
        icbs=icbs,
        trusts=trusts,
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def national_headers(**kwargs: object) -> dict[str, str]:
    """Headers for a national token (sees everything), for tests about other things."""
    return bearer(token("national", **kwargs))  # type: ignore[arg-type]
