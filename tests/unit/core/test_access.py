"""Roles and scopes (core.access): claims checked, and each decision both ways."""

from __future__ import annotations

from typing import Any

import pytest

from gapwatch.core.access import AccessDenied, InvalidToken, Principal, principal_from_claims

NOW = 1_800_000_000


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "a", "role": "icb", "icbs": ["QOP"], "iat": NOW, "exp": NOW + 60}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def parse(c: dict[str, Any], now: int = NOW) -> Principal:
    return principal_from_claims(c, now, leeway_s=30, max_ttl_s=86_400)


def test_valid_claims_give_the_principal() -> None:
    p = parse(claims(icbs=["qop", "QHL"], jti="j1"))
    assert (p.role, p.icbs, p.token_id, p.expires_at_s) == (
        "icb",
        frozenset({"QOP", "QHL"}),
        "j1",
        NOW + 60,
    )
    assert p.scope_text() == "icb:QHL,QOP"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (claims(exp=None), "no numeric exp"),
        (claims(exp="soon"), "no numeric exp"),
        (claims(role="admin"), "role must be one of"),
        (claims(sub=""), "no subject"),
        (claims(icbs=[]), "must name at least one ICB"),
        (claims(icbs="QOP"), "list of ODS codes"),
        (claims(icbs=["Q OP"]), "not an ODS code"),
        (claims(role="trust", icbs=None), "must name at least one trust"),
        (claims(role="national"), "codes that do not belong"),
        (claims(role="trust", trusts=["R0A"]), "codes that do not belong"),
        (claims(iat=NOW - 10, exp=NOW + 86_400), "lifetime exceeds"),
        (claims(iat=NOW + 120, exp=NOW + 180), "issued in the future"),
    ],
)
def test_malformed_claims_are_refused_with_a_reason(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidToken, match=message):
        parse(bad)


def test_expiry_allows_the_leeway_and_no_more() -> None:
    c = claims()
    assert parse(c, now=NOW + 60 + 30).role == "icb"
    with pytest.raises(InvalidToken, match="expired"):
        parse(c, now=NOW + 60 + 31)


def test_icb_scope() -> None:
    p = parse(claims())
    p.require_icb("QOP")
    with pytest.raises(AccessDenied, match="may not see ICB QHL"):
        p.require_icb("QHL")
    p.require_area("england", ["ENG"])
    p.require_area("region", ["QOP"])
    with pytest.raises(AccessDenied, match="QHL"):
        p.require_area("region", ["QOP", "QHL"])
    assert p.may_see_trust("R0A", "QOP") and not p.may_see_trust("RRK", "QHL")
    assert not p.may_see_trust("XXX", None)


def test_trust_and_public_scope() -> None:
    trust = parse(claims(role="trust", icbs=None, trusts=["R0A"]))
    assert trust.may_see_trust("R0A", "QOP") and not trust.may_see_trust("RRK", "QOP")
    assert not trust.may_see_icb("QOP")
    with pytest.raises(AccessDenied, match="national or icb"):
        trust.require_area("england", ["ENG"])
    public = parse(claims(role="public", icbs=None))
    with pytest.raises(AccessDenied, match="needs a national token; this token's role is public"):
        public.require_role("national", what="it")
    assert not public.may_see_trust("R0A", "QOP") and not public.may_see_icb("QOP")


def test_national_sees_everything() -> None:
    p = parse(claims(role="national", icbs=None))
    p.require_icb("QHL")
    p.require_area("region", ["QOP", "QHL"])
    p.require_trust("RRK", None)
    p.require_role("national", what="audit")
