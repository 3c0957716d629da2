"""Real heart rate shipped with the package: MIT "Heart rate time series" (see data/README.md).

>>> sample_path().name
'mit-hr-11839.csv'
>>> Sample()
Sample('mit-hr-11839')
>>> sum(len(b) for b in Sample(name="mit-hr-207"))
950
"""

from __future__ import annotations

import pathlib
from importlib import resources
from typing import Any

from streams.replay import CsvReplay

__all__ = ["SAMPLES", "sample_path", "Sample"]

# The series shipped in streams/data, each a CSV with the header "t,hr" (0.5 s apart).
SAMPLES = ("mit-hr-11839", "mit-hr-207")


def sample_path(name: str = "mit-hr-11839") -> pathlib.Path:
    """Path of a shipped series (works from an installed package, not only from a checkout).

    Parameters
    ----------
    name
        One of SAMPLES: "mit-hr-11839" (around 92 bpm, spread 5.5) or "mit-hr-207" (resting,
        around 59 bpm, no reading above 91).
    """
    if name not in SAMPLES:
        raise ValueError(f"no sample named {name!r}; the samples are: {', '.join(SAMPLES)}")
    return pathlib.Path(str(resources.files("streams").joinpath("data", f"{name}.csv")))


class Sample(CsvReplay):
    """CsvReplay of a shipped series; other keyword arguments go to CsvReplay.

    Examples
    --------
    >>> import numpy as np
    >>> hr = np.concatenate([b.x.ravel() for b in Sample()])
    >>> len(hr), round(float(hr.mean()), 2), round(float(hr.std()), 2), int((hr > 91).sum())
    (1800, 92.6, 5.49, 1053)
    """

    def __init__(self, *, name: str = "mit-hr-11839", **kw: Any) -> None:
        super().__init__(sample_path(name), **kw)
        self.name = name

    def _repr_args(self) -> list[str]:
        return [repr(self.name)] + super()._repr_args()[1:]
