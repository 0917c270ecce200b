"""The audit trail's entries: who read what, when, and with what result.

Every request to a non-public ``/v1`` endpoint becomes one entry, refused ones included
(a 401 or 403 is exactly what an information-governance review looks for). Entries are
values; ``adapters.audit_log`` appends them to a Redis stream and logs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["ANONYMOUS", "AuditEntry", "outcome_of"]

ANONYMOUS: Final = "anonymous"
"""The subject of a request with no valid token."""
_MAX_FIELD: Final = 512


def outcome_of(status: int) -> str:
    if status in (401, 403):
        return "refused"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "error"
    if status >= 400:
        return "bad_request"
    return "allowed"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at_ms: int
    subject: str
    """The token's ``sub`` (``anonymous`` without a valid token)."""
    role: str
    """The token's role, or ``none``."""
    scope: str
    """What the token covers, e.g. ``icb:QOP`` or ``national``."""
    method: str
    path: str
    query: str
    status: int
    client: str
    """The peer address (behind a proxy: the proxy's)."""
    token_id: str = ""
    reason: str = ""
    """Why a request was refused (the message the caller got)."""

    @property
    def outcome(self) -> str:
        return outcome_of(self.status)

    def fields(self) -> dict[str, str]:
        """As a flat string map (a stream entry, a log line); long values are cut."""
        raw = {
            "at_ms": str(self.at_ms),
            "subject": self.subject,
            "role": self.role,
            "scope": self.scope,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": str(self.status),
            "outcome": self.outcome,
            "client": self.client,
            "token_id": self.token_id,
            "reason": self.reason,
        }
        return {k: v[:_MAX_FIELD] for k, v in raw.items()}

    @classmethod
    def from_fields(cls, data: Mapping[str, str]) -> AuditEntry:
        return cls(
            at_ms=int(data.get("at_ms", "0")),
            subject=data.get("subject", ""),
            role=data.get("role", ""),
            scope=data.get("scope", ""),
            method=data.get("method", ""),
            path=data.get("path", ""),
            query=data.get("query", ""),
            status=int(data.get("status", "0")),
            client=data.get("client", ""),
            token_id=data.get("token_id", ""),
            reason=data.get("reason", ""),
        )
