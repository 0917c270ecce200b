"""NHS numbers and full postcodes are spotted as whole field values, in any usual form,
and nothing else is: not UUIDs, HMAC keys, LSOA or ODS codes, event types."""

from __future__ import annotations

import csv
import gzip
import re
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gapwatch.adapters.refdata_files import FILES
from gapwatch.core.identifiers import (
    EVENT_TEXT_FIELDS,
    NHS_NUMBER,
    POSTCODE,
    identifier_fields,
    identifier_kind,
    is_full_postcode,
    nhs_check_digit_ok,
    nhs_number_digits,
    redact,
)
from gapwatch.core.refdata import ReferenceData
from tests.conftest import need

VALID_NHS = ["9434765919", "4010232137", "1234567881", "0000000000", "9999999999"]
POSTCODES = [
    "M1 1AE",  # A9 9AA
    "B33 8TH",  # A99 9AA
    "CR2 6XH",  # AA9 9AA
    "DN55 1PT",  # AA99 9AA
    "W1A 0AX",  # A9A 9AA
    "EC1A 1BB",  # AA9A 9AA
    "GIR 0AA",
]
STRING_FIELDS = list(EVENT_TEXT_FIELDS)
"""The EncounterEvent fields of type string (enums aside)."""
PROPERTY = settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _forms(digits: str) -> list[str]:
    return [
        digits,
        f"{digits[:3]} {digits[3:6]} {digits[6:]}",
        f"{digits[:3]}-{digits[3:6]}-{digits[6:]}",
        f"  {digits} ",
    ]


def _postcode_forms(postcode: str) -> list[str]:
    compact = postcode.replace(" ", "")
    return [postcode, compact, postcode.lower(), compact.lower(), f" {postcode}  ", f"\t{compact}"]


@pytest.mark.parametrize("digits", VALID_NHS)
def test_nhs_numbers_are_found_in_their_usual_forms(digits: str) -> None:
    for form in _forms(digits):
        assert nhs_number_digits(form) == digits
        assert identifier_kind(form) == NHS_NUMBER


@pytest.mark.parametrize(
    "value",
    [
        "9434765918",  # wrong check digit
        "1162636840",  # a check digit of 10 is never issued
        "943476591",  # nine digits
        "94347659190",  # eleven
        "943 476 5919 1",
        "9434765919x",
        "x9434765919",
        "９４３４７６５９１９",  # full-width digits are not an NHS number as typed
    ],
)
def test_near_misses_are_not_nhs_numbers(value: str) -> None:
    assert nhs_number_digits(value) is None
    assert identifier_kind(value) is None


def test_the_check_digit_follows_modulus_11() -> None:
    # 9 4 3 4 7 6 5 9 1 weighted 10..2 sum to 299; 299 mod 11 = 2; 11 - 2 = 9.
    assert nhs_check_digit_ok("9434765919")
    assert not any(nhs_check_digit_ok(f"116263684{d}") for d in "0123456789")


@pytest.mark.parametrize("postcode", POSTCODES)
def test_full_postcodes_are_found_in_any_case_and_spacing(postcode: str) -> None:
    for form in _postcode_forms(postcode):
        assert is_full_postcode(form), form
        assert identifier_kind(form) == POSTCODE, form


@pytest.mark.parametrize(
    "value", ["M15", "EC1A", "M1 1A", "M15 4ABC", "ed_arrival", "E01000101", "R0A", "RRK02"]
)
def test_outward_codes_and_other_codes_are_not_postcodes(value: str) -> None:
    assert not is_full_postcode(value)
    assert identifier_kind(value) is None


def _event(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {name: None for name in STRING_FIELDS}
    event.update(
        event_id=str(uuid.uuid4()),
        event_type="ed_arrival",
        occurred_at=1_795_780_000_000,
        provider_code="R0A",
        dataset="ECDS",
        person_key="9c2f" * 16,
        age_years=34,
        sex="2",
        lsoa_code="E01000101",
    )
    event.update(changes)
    return event


def test_a_clean_event_has_no_identifiers() -> None:
    assert identifier_fields(_event()) == []
    assert identifier_fields(_event(postcode="M15 4AB", lsoa_code=None)) == []


def test_every_misplaced_identifier_is_named_with_its_field() -> None:
    event = _event(person_key="943 476 5919", site_code="m15 4ab", postcode="4010232137")
    assert identifier_fields(event) == [
        ("person_key", NHS_NUMBER),
        ("postcode", NHS_NUMBER),
        ("site_code", POSTCODE),
    ]


def test_integers_are_not_examined() -> None:
    # occurred_at in seconds would pass the check digit about one time in eleven.
    assert identifier_fields(_event(occurred_at=9434765919, age_years=1234567881)) == []


@PROPERTY
@given(st.uuids(), st.binary(min_size=32, max_size=32), st.sampled_from(STRING_FIELDS))
def test_uuids_and_hmac_keys_never_match(key: uuid.UUID, digest: bytes, field: str) -> None:
    for value in (str(key), key.hex, str(key).upper(), digest.hex(), digest.hex().upper()):
        assert identifier_kind(value) is None
        assert identifier_fields(_event(**{field: value})) == []


@PROPERTY
@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.sampled_from(STRING_FIELDS))
@example("943476591", "person_key")
def test_every_valid_nhs_number_is_found_in_every_field(prefix: str, field: str) -> None:
    total = sum(int(d) * w for d, w in zip(prefix, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    if check == 10:
        return  # no NHS number starts with these nine digits
    digits = prefix + str(check)
    for form in _forms(digits):
        assert identifier_fields(_event(**{field: form})) == [(field, NHS_NUMBER)]


_STRICT = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}|GIR0AA")


def _reference_kind(value: str) -> str | None:
    """The definition, written plainly: take out whitespace (and hyphens, for digits)."""
    compact = "".join(value.split())
    if compact.isascii() and _STRICT.fullmatch(compact.upper()):
        return POSTCODE
    digits = compact.replace("-", "")
    if len(value.strip()) <= 24 and compact[:1] != "" and not compact[0].isalpha():
        if len(digits) == 10 and digits.isascii() and digits.isdigit():
            return NHS_NUMBER if nhs_check_digit_ok(digits) else None
    return None


@settings(max_examples=2000)
@given(
    st.text(alphabet="AEGIRMWZaegr0123456789 -\t_", min_size=0, max_size=16)
    | st.sampled_from(POSTCODES + VALID_NHS + ["GIR 0AA", "M1  1 AE", "E01000101"])
)
def test_the_fast_checks_agree_with_the_plain_definition(value: str) -> None:
    assert identifier_kind(value) == _reference_kind(value)


def _lookup_postcodes(refdata_dir: Path) -> list[str]:
    path = refdata_dir / FILES["postcodes"]
    need(path.is_file(), f"no postcode lookup at {path}")
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        return [row["postcode"] for row in csv.DictReader(handle)]


def test_every_postcode_in_the_reference_lookup_is_detected(real_refdata_dir: Path) -> None:
    postcodes = _lookup_postcodes(real_refdata_dir)
    assert len(postcodes) > 10_000
    missed = [p for p in postcodes if not all(is_full_postcode(f) for f in _postcode_forms(p))]
    assert missed == []
    # ...in any field but postcode.
    assert identifier_fields(_event(site_code=postcodes[0])) == [("site_code", POSTCODE)]
    assert identifier_fields(_event(postcode=postcodes[0])) == []


def test_no_lsoa_or_trust_code_of_the_reference_data_is_flagged(real_ref: ReferenceData) -> None:
    codes = [*real_ref.areas, *real_ref.trusts, *real_ref.icbs, *real_ref.lads]
    assert len(codes) > 30_000
    assert [c for c in codes if identifier_kind(c) is not None] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("person_key is 943 476 5919", "person_key is <nhs>"),
        ("event_id is not a UUID: 'x9434765919'", "event_id is not a UUID: 'x<nhs>'"),
        ("provider_code 'm15 4ab' and M154AB", "provider_code '<pc>' and <pc>"),
        ("occurred_at 1767225600000 is older", "occurred_at 1767225600000 is older"),
        ("not an NHS number: 9434765918", "not an NHS number: 9434765918"),
    ],
)
def test_redact_hides_identifiers_inside_text(text: str, expected: str) -> None:
    assert redact(text) == expected


@PROPERTY
@given(
    st.text(alphabet="abc XYZ:'=_-", max_size=20),
    st.sampled_from(VALID_NHS),
    st.sampled_from(POSTCODES),
    st.text(alphabet="abc XYZ:'=_-", max_size=20),
)
def test_redacted_text_keeps_no_identifier_and_never_grows(
    before: str, nhs: str, postcode: str, after: str
) -> None:
    for inner in [*_forms(nhs), *_postcode_forms(postcode)]:
        text = f"{before}{inner}{after}"
        cleaned = redact(text)
        assert len(cleaned) <= len(text)
        assert inner.strip() not in cleaned
        assert nhs not in cleaned.replace(" ", "").replace("-", "")
        assert postcode.replace(" ", "") not in "".join(cleaned.upper().split())


def test_the_hot_path_checks_every_free_text_field_of_the_schema() -> None:
    """EVENT_TEXT_FIELDS is the schema's string fields (enums and numbers cannot carry
    an identifier), so a field added to the schema cannot slip past the worker's check."""
    import json

    from gapwatch.core.identifiers import EVENT_TEXT_FIELDS
    from gapwatch.settings import repo_root

    schema = json.loads(
        (repo_root() / "schemas" / "gapwatch.events.EncounterEvent.avsc").read_text()
    )

    def is_text(t: object) -> bool:
        return t == "string" or (isinstance(t, list) and "string" in t)

    assert set(EVENT_TEXT_FIELDS) == {f["name"] for f in schema["fields"] if is_text(f["type"])}


@given(st.data())
def test_the_hot_path_finds_what_the_general_check_finds(data: st.DataObject) -> None:
    from gapwatch.core.identifiers import EVENT_TEXT_FIELDS, event_identifier_fields

    values = st.one_of(
        st.none(),
        st.text(max_size=30),
        st.sampled_from(["9434765919", " 943 476 5919 ", "M15 4AB", "m154ab", "E01000101", "R0A"]),
        st.uuids().map(str),
    )
    event = {name: data.draw(values) for name in EVENT_TEXT_FIELDS}
    assert event_identifier_fields(event) == identifier_fields(event)
