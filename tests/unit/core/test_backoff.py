import pytest

from gapwatch.core.backoff import backoff_ms


def test_backoff_doubles_then_caps():
    assert [backoff_ms(a) for a in range(8)] == [100, 200, 400, 800, 1600, 3200, 5000, 5000]
    assert backoff_ms(1000) == 5000


def test_negative_attempts_are_a_programming_error():
    with pytest.raises(ValueError):
        backoff_ms(-1)
