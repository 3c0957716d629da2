"""Labels: a reading is abnormal when it is strictly above the threshold, unless the source labels it.

>>> import numpy as np
>>> label(np.array([[80.0], [91.0], [91.5]]), np.full(3, np.nan), threshold=91.0).tolist()
[0.0, 0.0, 1.0]
>>> label(np.array([[80.0], [99.0]]), np.array([1.0, np.nan]), threshold=91.0).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "label"]

DEFAULT_THRESHOLD = 91.0  # bpm; strictly greater is abnormal


def label(x: np.ndarray, y: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Labels (n,) float64 0/1: the source's own where known, else x[:, 0] > threshold (new array)."""
    by_threshold = (x[:, 0] > threshold).astype(np.float64)
    return np.where(np.isnan(y), by_threshold, y)
