"""The report's one fitted statistic: accuracy against log2(budget), a least-squares line with its
95 % confidence band (the trend of the paper's figure 1), from scipy.

    trend = fit_log2_trend([256, 1024, 4096], [0.41, 0.47, 0.52])
    centre, low, high = trend.predict([512, 2048])     # band: nan with only two budgets

Every other number the report shows (accuracies, their Wilson intervals, paired tests) is read
from `metrics.json`, where scoring computed it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def t_quantile(df: int, p: float = 0.975) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom."""
    from scipy.stats import t

    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Trend:
    """accuracy ≈ intercept + slope·log2(budget), fitted by least squares over `n` budgets."""

    intercept: float
    slope: float
    n: int
    x_mean: float
    sxx: float
    residual_sd: float
    t: float  # the 97.5 % t quantile with n − 2 degrees of freedom; nan when n = 2

    def predict(self, budgets: Any) -> tuple[Any, Any, Any]:
        """The trend at `budgets` and its 95 % confidence band (low, high; nan without one)."""
        import numpy as np

        x = np.log2(np.asarray(budgets, dtype=float))
        y = self.intercept + self.slope * x
        if math.isnan(self.t):
            return y, np.full_like(y, np.nan), np.full_like(y, np.nan)
        margin = self.t * self.residual_sd * np.sqrt(1 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        return y, y - margin, y + margin


def fit_log2_trend(budgets: Sequence[float], accuracies: Sequence[float]) -> Trend | None:
    """The line through (log2 budget, accuracy); None with fewer than two distinct budgets."""
    import numpy as np
    from scipy.stats import linregress

    x = np.log2(np.asarray(budgets, dtype=float))
    y = np.asarray(accuracies, dtype=float)
    if len(np.unique(x)) < 2:
        return None
    fit = linregress(x, y)
    n, df = len(x), len(x) - 2
    residuals = y - (fit.intercept + fit.slope * x)
    residual_sd = float(np.sqrt(residuals @ residuals / df)) if df > 0 else math.nan
    return Trend(float(fit.intercept), float(fit.slope), n, float(x.mean()), float(((x - x.mean()) ** 2).sum()),
                 residual_sd, t_quantile(df) if df > 0 else math.nan)
