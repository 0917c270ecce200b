"""consumed = counted + duplicates + dead-lettered, per partition."""

from gapwatch.core.reconcile import balances

TALLIES = {
    "t:0:messages": 3,
    "t:0:consumed": 1500,
    "t:0:counted": 1490,
    "t:0:dead_lettered": 10,
    "t:10:messages": 1,
    "t:10:consumed": 500,
    "t:10:counted": 499,
    "t:10:duplicates": 1,
}


def test_balanced_partitions_in_partition_order():
    rows = balances(TALLIES, {"t:0": 3, "t:10": 1})
    assert [r.partition for r in rows] == ["t:0", "t:10"]
    assert all(r.balanced for r in rows)
    assert rows[1].duplicates == 1 and rows[1].accounted == 500


def test_an_event_unaccounted_for_unbalances_its_partition():
    rows = balances({**TALLIES, "t:0:counted": 1489}, {"t:0": 3, "t:10": 1})
    assert [r.balanced for r in rows] == [False, True]


def test_tallies_without_a_stored_offset_or_the_reverse_are_unbalanced():
    rows = balances(TALLIES, {"t:0": 3, "t:2": 7})
    by_name = {r.partition: r for r in rows}
    assert not by_name["t:10"].balanced  # tallies but no offset
    assert not by_name["t:2"].balanced  # an offset but no tallies
    assert by_name["t:2"].next_offset == 7 and by_name["t:2"].consumed == 0


def test_nothing_ingested_is_no_partitions():
    assert balances({}, {}) == []
