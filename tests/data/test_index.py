"""The shared dataset index check."""

from __future__ import annotations

import numpy as np
import pytest

from selfsup.data._index import check_index


def test_negative_indices_count_from_the_end_as_a_lists_do() -> None:
    items = list(range(5))
    for index in range(-5, 5):
        assert items[check_index(index, 5)] == items[index]


def test_numpy_integers_are_indices() -> None:
    assert check_index(np.int64(3), 5) == 3


@pytest.mark.parametrize(("index", "n"), [(5, 5), (-6, 5), (0, 0)])
def test_out_of_range_names_the_index_and_the_size(index: int, n: int) -> None:
    with pytest.raises(IndexError, match=rf"index {index} out of range for {n} samples"):
        check_index(index, n)


def test_a_float_is_not_an_index() -> None:
    with pytest.raises(TypeError):
        check_index(1.0, 5)  # type: ignore[arg-type]
