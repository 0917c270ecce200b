"""The scale an SII is fitted and simulated on (stats-methods §7.3).

``ValueType`` says what the values are (rates, proportions or anything else) and so which
transform (identity, log or logit) puts them on the scale where their errors are taken as
normal. It sits at the bottom of the ``sii_*`` modules because the checks, the fit, the
simulation and the counts front end all read it and it needs none of them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit

__all__ = ["Z95", "Array", "ValueType"]

Array = NDArray[np.float64]

Z95: Final = 1.959963984540054
"""CLs are always read as 95% limits when turned into an SE, whatever the level (§7.3)."""


class ValueType(IntEnum):
    """What the values are, which fixes the scale they are simulated on (§7.3)."""

    OTHER = 0
    RATE = 1
    PROPORTION = 2

    def g(self, values: Array) -> Array:
        """The transform: identity, log or logit."""
        if self is ValueType.RATE:
            return np.log(values)
        if self is ValueType.PROPORTION:
            return np.asarray(logit(values), dtype=np.float64)
        return values

    def g_inv(self, values: Array) -> Array:
        """The inverse transform: identity, exp or the logistic function."""
        if self is ValueType.RATE:
            return np.exp(values)
        if self is ValueType.PROPORTION:
            return np.asarray(expit(values), dtype=np.float64)
        return values
