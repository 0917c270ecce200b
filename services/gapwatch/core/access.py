"""Who may see what: roles, the principal a token names, and the access decisions.

Four roles (docs/governance.md):

- ``national``: every ICB, trust, region and England, and the audit trail;
- ``icb``: the ICBs its token names (their indicators, series, small areas, exports,
  alerts and their trusts' feeds), plus England as the benchmark every ICB view shows;
- ``trust``: its own feeds only: their freshness, dead letters and stale-feed alerts;
- ``public``: only ``/v1/public/...`` (which also answers without a token).

Pure: claims come in already verified (signature, issuer, audience) by the adapter
(``adapters.tokens``); expiry is checked here against a time passed in, so tests need
no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

__all__ = [
    "ROLES",
    "AccessDenied",
    "InvalidToken",
    "Principal",
    "Role",
    "principal_from_claims",
]

Role = Literal["national", "icb", "trust", "public"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
_ODS: Final = re.compile(r"[A-Z0-9]{3,6}")
ENGLAND_AREA: Final = "england"


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired: 401."""


class AccessDenied(Exception):
    """A valid token asks for something outside its scope: 403."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as its verified token describes it."""

    subject: str
    role: Role
    icbs: frozenset[str] = field(default_factory=frozenset)
    trusts: frozenset[str] = field(default_factory=frozenset)
    token_id: str = ""
    expires_at_s: int = 0

    @property
    def national(self) -> bool:
        return self.role == "national"

    def scope_text(self) -> str:
        """The scope as one short string, for audit entries and messages."""
        if self.role == "icb":
            return "icb:" + ",".join(sorted(self.icbs))
        if self.role == "trust":
            return "trust:" + ",".join(sorted(self.trusts))
        return self.role

    def may_see_icb(self, icb: str) -> bool:
        return self.national or (self.role == "icb" and icb in self.icbs)

    def require_icb(self, icb: str) -> None:
        if not self.may_see_icb(icb):
            raise AccessDenied(f"this token may not see ICB {icb} ({self._scope_phrase()})")

    def require_area(self, kind: str, icbs: Iterable[str]) -> None:
        """An ICB, a region (every one of its ICBs) or England (the benchmark)."""
        if self.national:
            return
        if self.role == "icb":
            if kind == ENGLAND_AREA:
                return
            outside = sorted(set(icbs) - self.icbs)
            if not outside:
                return
            raise AccessDenied(
                f"this token may not see {kind} data covering ICB(s) {', '.join(outside)} "
                f"({self._scope_phrase()})"
            )
        raise AccessDenied(
            f"a {self.role} token may not read indicators: they need a national or icb token"
        )

    def may_see_trust(self, trust: str, trust_icb: str | None) -> bool:
        """A trust's feed: its own trust token, an ICB token of the ICB it is in (the
        trust's ICB from the reference data), or national."""
        if self.national:
            return True
        if self.role == "trust":
            return trust in self.trusts
        if self.role == "icb":
            return trust_icb is not None and trust_icb in self.icbs
        return False

    def require_trust(self, trust: str, trust_icb: str | None) -> None:
        if not self.may_see_trust(trust, trust_icb):
            raise AccessDenied(f"this token may not see trust {trust} ({self._scope_phrase()})")

    def require_role(self, *roles: Role, what: str) -> None:
        if self.role not in roles:
            allowed = " or ".join(roles)
            raise AccessDenied(f"{what} needs a {allowed} token; this token's role is {self.role}")

    def _scope_phrase(self) -> str:
        if self.role == "icb":
            return "it covers ICB " + ", ".join(sorted(self.icbs))
        if self.role == "trust":
            return "it covers trust " + ", ".join(sorted(self.trusts))
        return f"it is a {self.role} token"


def _codes(claims: Mapping[str, object], name: str) -> frozenset[str]:
    raw = claims.get(name, [])
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise InvalidToken(f"claim {name!r} must be a list of ODS codes")
    codes = frozenset(str(c).upper() for c in raw)
    bad = sorted(c for c in codes if _ODS.fullmatch(c) is None)
    if bad:
        raise InvalidToken(f"claim {name!r} holds something that is not an ODS code")
    return codes


def principal_from_claims(
    claims: Mapping[str, object], now_s: int, leeway_s: int, max_ttl_s: int
) -> Principal:
    """The principal of signature-checked claims, or ``InvalidToken`` saying why.

    ``exp`` is required and checked here (with ``leeway_s`` of clock skew); a token whose
    lifetime (``exp - iat``) exceeds ``max_ttl_s`` is refused, so a leaked long-lived
    token issued by mistake does not outlive the policy.
    """
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise InvalidToken("token has no numeric exp and iat")
    if now_s > exp + leeway_s:
        raise InvalidToken("token has expired")
    if iat > now_s + leeway_s:
        raise InvalidToken("token is issued in the future")
    if exp - iat > max_ttl_s:
        raise InvalidToken(f"token lifetime exceeds the {max_ttl_s} s allowed")
    role = claims.get("role")
    if role not in ROLES:
        raise InvalidToken(f"token role must be one of {', '.join(ROLES)}")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 200:
        raise InvalidToken("token has no subject (sub)")
    icbs, trusts = _codes(claims, "icbs"), _codes(claims, "trusts")
    if role == "icb" and not icbs:
        raise InvalidToken("an icb token must name at least one ICB")
    if role == "trust" and not trusts:
        raise InvalidToken("a trust token must name at least one trust")
    if role != "icb" and icbs or role != "trust" and trusts:
        raise InvalidToken(f"a {role} token carries codes that do not belong to its role")
    token_id = claims.get("jti", "")
    return Principal(
        subject=subject,
        role=role,
        icbs=icbs,
        trusts=trusts,
        token_id=token_id if isinstance(token_id, str) else "",
        expires_at_s=exp,
    )
