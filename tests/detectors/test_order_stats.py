"""Histogram percentiles (satellite band statistics) and the in-place median (the
neighbour rules' refits) equal numpy's."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detectors.order_stats import int_percentiles, median_inplace


@settings(max_examples=300, deadline=None)
@given(arrays(st.sampled_from([np.uint8, np.int16, np.uint16]), st.integers(1, 2000)),
       st.lists(st.floats(0, 100), min_size=1, max_size=4))
def test_int_percentiles_equal_numpy_linear(x: np.ndarray, qs: list[float]) -> None:
    assert int_percentiles(x, qs) == [float(v) for v in np.percentile(x, qs)]


@settings(max_examples=300, deadline=None)
@given(arrays(st.sampled_from([np.float64, np.float32]), st.integers(1, 800),
              elements=st.floats(-1e6, 1e6, width=32)))
def test_median_inplace_equals_numpy_median(x: np.ndarray) -> None:
    expected = float(np.median(x))
    assert median_inplace(x.copy()) == expected
