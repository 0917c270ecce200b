"""API bearer tokens: signed JWTs (PyJWT), issued by ``gapwatch token`` and checked by
the API. Signature, algorithm, issuer and audience are checked here; expiry and the
claims' meaning in ``core.access`` (with the time passed in)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import jwt

from gapwatch.core.access import InvalidToken, Principal, Role, principal_from_claims
from gapwatch.core.errors import ConfigError
from gapwatch.settings import AuthSettings

__all__ = ["issue_token", "signing_key", "verify_token"]


def signing_key(auth: AuthSettings) -> str:
    if auth.jwt_secret is None:
        raise ConfigError(
            "no token signing key: set GAPWATCH_AUTH_JWT_SECRET (at least 32 bytes, e.g. "
            "from `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    return auth.jwt_secret.get_secret_value()


def issue_token(
    auth: AuthSettings,
    *,
    role: Role,
    subject: str,
    now_s: int,
    ttl_s: int,
    icbs: Iterable[str] = (),
    trusts: Iterable[str] = (),
) -> str:
    """A signed token for ``subject``; ``principal_from_claims`` rules on what it holds."""
    if not 0 < ttl_s <= auth.max_ttl_s:
        raise ValueError(f"ttl must be between 1 s and {auth.max_ttl_s} s (auth.max_ttl_s)")
    claims: dict[str, object] = {
        "iss": auth.issuer,
        "aud": auth.audience,
        "sub": subject,
        "role": role,
        "iat": now_s,
        "exp": now_s + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if role == "icb":
        claims["icbs"] = sorted({c.upper() for c in icbs})
    if role == "trust":
        claims["trusts"] = sorted({c.upper() for c in trusts})
    # Checked the way the API will check it, so a bad scope fails here, not at use.
    principal_from_claims(claims, now_s, auth.leeway_s, auth.max_ttl_s)
    return jwt.encode(claims, signing_key(auth), algorithm=auth.algorithm)


def verify_token(auth: AuthSettings, token: str, now_s: int) -> Principal:
    """The principal of a presented token, or ``InvalidToken`` with a reason fit for
    the caller (it never echoes the token)."""
    if len(token) > 4096:
        raise InvalidToken("token is too long")
    try:
        claims = jwt.decode(
            token,
            signing_key(auth),
            # One algorithm only: never the token header's choice ("none", or an RSA
            # public key used as an HMAC secret).
            algorithms=[auth.algorithm],
            audience=auth.audience,
            issuer=auth.issuer,
            options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat", "sub"]},
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("token signature does not verify") from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken("token is for another audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken("token is from another issuer") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise InvalidToken("token is signed with an algorithm this API does not accept") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"token lacks the {exc.claim!r} claim") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("token is not a well-formed signed JWT") from exc
    return principal_from_claims(claims, now_s, auth.leeway_s, auth.max_ttl_s)
