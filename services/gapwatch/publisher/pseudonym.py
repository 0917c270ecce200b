"""Turning an NHS number into ``person_key`` inside the trust.

``person_key`` is the hex HMAC-SHA256 of the ten-digit NHS number, under a key that
only the trust holds (``GAPWATCH_PUBLISHER_PERSON_KEY_SECRET``). It is a keyed HMAC and
not a plain hash because there are only about 10^9 possible NHS numbers. Anyone could
hash them all in minutes and reverse a plain hash. Without the key they cannot.

The number is normalised first (spaces and hyphens removed), so ``943 476 5919`` and
``9434765919`` give the same key. It must carry a valid Modulus 11 check digit: a typo
would otherwise become a different person, silently. Errors never quote the number,
because they end up in logs and in ``gapwatch publish`` summaries.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from gapwatch.core.identifiers import nhs_check_digit_ok

__all__ = ["MIN_KEY_BYTES", "InvalidNhsNumber", "Pseudonymiser", "normalise_nhs_number"]

MIN_KEY_BYTES: Final = 32
"""HMAC-SHA256's output size. A shorter key would be easier to guess than the
pseudonym is to invert (RFC 2104 section 3)."""


class InvalidNhsNumber(ValueError):
    """The value is not a well-formed NHS number. The message never contains it."""


class Pseudonymiser:
    """``person_key`` from an NHS number, under one trust's key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError("the person-key secret must be bytes")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"the person-key secret must be at least {MIN_KEY_BYTES} bytes "
                f"(got {len(key)}); generate one with `openssl rand -hex 32`"
            )
        self._key = key

    def __repr__(self) -> str:
        return "Pseudonymiser(key=<hidden>)"

    def person_key(self, nhs_number: str) -> str:
        """The 64-hex-digit pseudonym of ``nhs_number`` (any spacing or hyphens).

        Raises ``InvalidNhsNumber`` if the value is not ten digits ending in a valid
        check digit.
        """
        digits = normalise_nhs_number(nhs_number)
        return hmac.new(self._key, digits.encode("ascii"), hashlib.sha256).hexdigest()


def normalise_nhs_number(nhs_number: str) -> str:
    """The ten digits of an NHS number written with or without spaces or hyphens.

    Raises ``InvalidNhsNumber``, saying what is wrong but never echoing the value.
    """
    if not isinstance(nhs_number, str):
        raise InvalidNhsNumber(f"an NHS number must be a string, not {type(nhs_number).__name__}")
    digits = "".join(nhs_number.split()).replace("-", "")
    if not digits:
        raise InvalidNhsNumber("the NHS number is empty")
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidNhsNumber("an NHS number has only digits, spaces and hyphens")
    if len(digits) != 10:
        raise InvalidNhsNumber(f"an NHS number has 10 digits, not {len(digits)}")
    if not nhs_check_digit_ok(digits):
        raise InvalidNhsNumber("the NHS number's check digit is wrong (Modulus 11): mistyped?")
    return digits
