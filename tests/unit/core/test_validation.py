import pytest

from gapwatch.core.validation import Limits, validate
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
