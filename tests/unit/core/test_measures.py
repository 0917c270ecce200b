import pytest

from gapwatch.core.measures import MEASURES, measures_for


@pytest.mark.parametrize(
    ("overrides", "age", "expected"),
    [
        ({"event_type": "ed_arrival"}, 30, ("ed_arrival",)),
        ({"event_type": "ed_departure", "minutes_in_department": 240}, 30, ("ed_departure_timed",)),
        (
            {"event_type": "ed_departure", "minutes_in_department": 241},
            30,
            ("ed_departure_timed", "ed_breach_4h"),
        ),
        (
            {"event_type": "ed_departure", "minutes_in_department": 721},
            30,
            ("ed_departure_timed", "ed_breach_4h", "ed_breach_12h"),
        ),
        ({"event_type": "ed_departure", "minutes_in_department": None}, 30, ()),
        (
            {"event_type": "admission", "admission_method": "21"},
            30,
            ("admission", "admission_emergency"),
        ),
        (
            {"event_type": "admission", "admission_method": "2A"},
            17,
            ("admission", "admission_emergency", "admission_emergency_u18"),
        ),
        (
            {"event_type": "admission", "admission_method": "11"},
            17,
            ("admission", "admission_elective"),
        ),
        ({"event_type": "admission", "admission_method": "31"}, 30, ("admission",)),
        (
            {"event_type": "outpatient_appointment", "attendance_status": "3"},
            30,
            ("outpatient_outcome", "outpatient_dna"),
        ),
        (
            {"event_type": "outpatient_appointment", "attendance_status": "7"},
            30,
            ("outpatient_outcome",),
        ),
        ({"event_type": "outpatient_appointment", "attendance_status": "2"}, 30, ()),
        ({"event_type": "waiting_list_snapshot", "weeks_waiting": 18}, 30, ("waiting",)),
        (
            {"event_type": "waiting_list_snapshot", "weeks_waiting": 19},
            30,
            ("waiting", "waiting_over_18w"),
        ),
        (
            {"event_type": "waiting_list_snapshot", "weeks_waiting": 53},
            30,
            ("waiting", "waiting_over_18w", "waiting_over_52w"),
        ),
    ],
)
def test_events_count_towards_the_documented_measures(make_event, overrides, age, expected):
    assert measures_for(make_event(**overrides), age) == expected


def test_every_measure_used_is_declared(make_event):
    seen = set()
    for t in (
        "ed_arrival",
        "ed_departure",
        "admission",
        "outpatient_appointment",
        "waiting_list_snapshot",
    ):
        for extra in (
            {
                "minutes_in_department": 800,
                "admission_method": "21",
                "attendance_status": "3",
                "weeks_waiting": 60,
            },
        ):
            seen.update(measures_for(make_event(event_type=t, **extra), 10))
    assert seen <= set(MEASURES)
