import pytest

from gapwatch.core.validation import REASONS, Limits, validate
from tests.conftest import NOW_MS

LIMITS = Limits(retention_ms=400 * 86_400_000, future_skew_ms=900_000)


def test_a_valid_event_passes(make_event):
    assert validate(make_event(), NOW_MS, LIMITS) is None


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event_id", "not-a-uuid", "invalid_field"),
        ("event_id", "", "invalid_field"),
        ("event_id", "3f1c2b1a-1111-4222-8333-44445555666", "invalid_field"),  # 11 digits
        ("provider_code", "", "invalid_field"),
        ("provider_code", "r0a", "invalid_field"),
        ("person_key", "  ", "invalid_field"),
        ("occurred_at", 0, "invalid_field"),
        ("occurred_at", NOW_MS - 401 * 86_400_000, "too_late"),
        ("occurred_at", NOW_MS + 16 * 60_000, "future_timestamp"),
        ("dataset", "APC", "dataset_mismatch"),
    ],
)
def test_contract_violations_are_rejected_with_a_reason(make_event, field, value, reason):
    rejection = validate(make_event(**{field: value}), NOW_MS, LIMITS)
    assert rejection is not None
    assert rejection.reason == reason
    assert rejection.detail


def test_events_at_the_edges_of_the_horizons_are_accepted(make_event):
    assert validate(make_event(occurred_at=NOW_MS - 400 * 86_400_000), NOW_MS, LIMITS) is None
    assert validate(make_event(occurred_at=NOW_MS + 900_000), NOW_MS, LIMITS) is None


def test_bad_demographics_are_not_contract_violations(make_event):
    event = make_event(sex="Q", ethnic_category="??", lsoa_code="W01000001", age_years=-4)
    assert validate(event, NOW_MS, LIMITS) is None


NHS = "9434765919"
POSTCODE = "M15 4AB"


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"person_key": NHS}, "nhs_number in person_key"),
        ({"person_key": "943 476 5919"}, "nhs_number in person_key"),
        ({"person_key": "943-476-5919"}, "nhs_number in person_key"),
        ({"site_code": NHS}, "nhs_number in site_code"),
        ({"postcode": NHS, "lsoa_code": None}, "nhs_number in postcode"),
        ({"lsoa_code": POSTCODE}, "postcode in lsoa_code"),
        ({"site_code": "m154ab"}, "postcode in site_code"),
        ({"provider_code": "M11AE"}, "postcode in provider_code"),  # ODS-shaped, too
        ({"person_key": POSTCODE, "site_code": NHS}, "postcode in person_key; nhs_number in"),
        ({"event_id": NHS}, "nhs_number in event_id"),  # before the UUID check quotes it
    ],
)
def test_identifiers_in_fields_not_meant_for_them_are_rejected_unquoted(
    make_event, changes, detail
):
    rejection = validate(make_event(**changes), NOW_MS, LIMITS)
    assert rejection is not None
    assert rejection.reason == "identifier_in_field"
    assert rejection.detail.startswith(detail)
    assert not any(ch.isdigit() for ch in rejection.detail)
    assert "M15" not in rejection.detail.upper() and "M11" not in rejection.detail.upper()


def test_a_postcode_in_the_postcode_field_is_accepted(make_event):
    assert validate(make_event(lsoa_code=None, postcode=POSTCODE), NOW_MS, LIMITS) is None


def test_the_reason_is_documented():
    assert "identifier_in_field" in REASONS


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"event_id": f"x{NHS}"}, "invalid_field"),
        ({"event_id": f"{POSTCODE}-uuid"}, "invalid_field"),
        ({"provider_code": f"r0a {NHS}"}, "invalid_field"),
        ({"provider_code": f"{POSTCODE}x"}, "invalid_field"),
        ({"event_type": f"{NHS}x", "dataset": f"{POSTCODE}x"}, "dataset_mismatch"),
    ],
)
def test_details_that_quote_a_value_never_carry_an_identifier_inside_it(
    make_event, changes, reason
):
    rejection = validate(make_event(**changes), NOW_MS, LIMITS)
    assert rejection is not None
    assert rejection.reason == reason
    flat = rejection.detail.upper().replace(" ", "")
    assert NHS not in flat and "M154AB" not in flat
