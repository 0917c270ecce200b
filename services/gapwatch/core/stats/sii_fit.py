"""The SII's fit and its simulated limits (stats-methods §7.3 to §7.5).

``prepare`` turns checked rows into a closed-form weighted least squares solve (§7.3),
``point`` reads the SII, RII and intercept off it (§7.4), and ``simulate`` refits
``repetitions`` draws of the values and takes the limits as order statistics (§7.5).
Kept apart from ``sii``, which only wires checks, fit and simulation into results.

All draws come from ``numpy.random.Generator(PCG64(seed))``, replicate by replicate, in
chunks that never change the stream; every level reuses the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from gapwatch.core.stats.sii_scale import Z95, Array, ValueType
from gapwatch.core.stats.sii_validation import Options, SiiRow

__all__ = ["RELIABILITY_BATCHES", "Fit", "point", "prepare", "simulate"]

RELIABILITY_BATCHES: Final = 10
_CHUNK_DRAWS: Final = 1 << 16
"""Normal draws held at once: 512 KiB stays in cache (about 2x faster than one 8 MiB
block); chunking by whole replicates leaves the random stream unchanged."""


@dataclass(frozen=True, slots=True)
class Fit:
    """A group ready to simulate: transformed values t with their SEs, the 2 x n matrix W
    that solves the WLS fit of any response y as W @ y, and the point fit's beta."""

    t: Array
    se: Array
    w: Array
    beta: Array


def prepare(rows: Sequence[SiiRow], opts: Options, use_se: bool) -> Fit:
    """Order by quantile and build the WLS solve. Weights a_j are population shares and
    b_j the midpoint of each quantile's cumulative share, so rank 0 is the most deprived
    person and rank 1 the least (§7.3)."""
    ordered = sorted(rows, key=lambda row: row.quantile)
    vt = opts.value_type
    pop = np.array([row.population for row in ordered], dtype=np.float64)
    value = np.array([row.value for row in ordered], dtype=np.float64)
    t = vt.g(value)
    if use_se:
        se = np.array([row.se for row in ordered], dtype=np.float64)
    else:
        lower = np.array([row.lower for row in ordered], dtype=np.float64)
        upper = np.array([row.upper for row in ordered], dtype=np.float64)
        se = (vt.g(upper) - vt.g(lower)) / (2 * Z95)
    a = pop / pop.sum()
    b = np.cumsum(a) - a / 2
    design = np.vstack([a, a * b])  # X^T diag(sqrt a) with X = [sqrt a, b sqrt a]
    xtx = np.array([[a.sum(), (a * b).sum()], [(a * b).sum(), (a * b * b).sum()]])
    w = np.linalg.solve(xtx, design)
    y = t if opts.transform else value
    return Fit(t, se, w, w @ y)


def point(fit: Fit, opts: Options) -> tuple[float, float | None, float]:
    """(sii, rii, intercept) from the closed-form fit (§7.4)."""
    beta0, beta1 = (float(x) for x in fit.beta)
    m = opts.multiplier
    if opts.transform:
        y0, y1 = (float(x) for x in opts.value_type.g_inv(np.array([beta0, beta0 + beta1])))
        rii = y0 / y1 if m < 0 else y1 / y0
        return (y1 - y0) * m, rii, y0 * abs(m)
    if beta0 == 0:
        return m * beta1, None, beta0
    rii = beta0 / (beta0 + beta1) if m < 0 else (beta0 + beta1) / beta0
    return m * beta1, rii, beta0


def _draw_betas(rng: np.random.Generator, fit: Fit, opts: Options) -> Array:
    """(R, 2) replicate coefficients for Y ~ N(t, se), one matrix product per chunk.

    When the fit is linear in the draws (identity g, or fitting on the transformed
    scale), beta_r = beta + (W * se) z_r, so the standard normals go straight into the
    product. Otherwise each draw is back-transformed first (§7.5), in place.
    """
    n = fit.t.size
    reps = opts.repetitions
    linear = opts.transform or opts.value_type is ValueType.OTHER
    weights = (fit.w * fit.se).T if linear else fit.w.T
    out = np.empty((reps, 2), dtype=np.float64)
    step = max(1, _CHUNK_DRAWS // n)
    buffer = np.empty((min(step, reps), n), dtype=np.float64)
    for start in range(0, reps, step):
        stop = min(reps, start + step)
        y = buffer[: stop - start]
        rng.standard_normal(out=y)
        if not linear:
            y *= fit.se
            y += fit.t
            _back_transform_in_place(opts.value_type, y)
        np.matmul(y, weights, out=out[start:stop])
    if linear:
        out += fit.beta
    return out


def _back_transform_in_place(vt: ValueType, y: Array) -> None:
    """exp or the logistic function, in place, since this runs on every draw."""
    with np.errstate(over="ignore"):  # exp overflow gives inf, and 1 / (1 + inf) = 0
        if vt is ValueType.RATE:
            np.exp(y, out=y)
        elif vt is ValueType.PROPORTION:
            np.negative(y, out=y)
            np.exp(y, out=y)
            y += 1
            np.reciprocal(y, out=y)


def _order_stats(draws: Array, opts: Options) -> Array:
    """(levels, 2) order statistics at (k_lo, k_hi), by one partial sort for all levels."""
    positions = np.array(opts.positions)
    chosen: Array = np.partition(draws, np.unique(positions))[positions]
    return chosen


def _limits(betas: Array, fit: Fit, opts: Options) -> Array:
    """(levels, 4) limits from one batch: sii_lo, sii_hi, rii_lo, rii_hi (NaN without RII)."""
    m = opts.multiplier
    if opts.transform:
        return _line_limits(_order_stats(betas[:, 1], opts), fit, opts)
    out = np.full((len(opts.levels), 4), np.nan)
    out[:, :2] = _order_stats(m * betas[:, 1], opts)
    if opts.rii:
        total = betas.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # a replicate with beta0 = 0
            ratio = betas[:, 0] / total if m < 0 else total / betas[:, 0]
        out[:, 2:] = _order_stats(ratio, opts)
    return out


def _swaps(opts: Options) -> bool:
    """Whether the limits from the low and high slope trade places (§7.5 step 4).

    For rates PHE swaps when m < 1, not m < 0, so a multiplier in (0, 1) gives a reversed
    SII interval and reciprocal RII limits. That looks like an upstream slip, but we match
    phe_sii 2.1.0 bug for bug (so a published PHE figure is reproduced) and say so in the
    result's warnings rather than silently diverge."""
    if opts.value_type is ValueType.RATE:
        return opts.multiplier < 1
    return opts.multiplier < 0


def _line_limits(slopes: Array, fit: Fit, opts: Options) -> Array:
    """Limits on the transformed path: each extreme slope is drawn through the point
    fit's midpoint and back-transformed at ranks 0 and 1 (§7.5); RII draws are unused."""
    beta0, beta1 = fit.beta
    mid = beta0 + beta1 / 2
    at0 = opts.value_type.g_inv(mid - slopes / 2)
    at1 = opts.value_type.g_inv(mid + slopes / 2)
    sii_limits = (at1 - at0) * opts.multiplier
    rii_limits = at1 / at0
    if _swaps(opts):
        sii_limits, rii_limits = sii_limits[:, ::-1], 1 / rii_limits[:, ::-1]
    if not opts.rii:
        rii_limits = np.full_like(rii_limits, np.nan)
    return np.hstack([sii_limits, rii_limits])


def simulate(fit: Fit, opts: Options) -> tuple[Array, Array | None]:
    """Reported limits (levels, 4) and, with reliability, MADs (levels, 2): 9 further
    batches of R from the same stream, each limit compared with batch 1's (§7.5)."""
    rng = np.random.Generator(np.random.PCG64(opts.seed))
    first = _limits(_draw_betas(rng, fit, opts), fit, opts)
    if not opts.reliability:
        return first, None
    later = np.stack(
        [_limits(_draw_betas(rng, fit, opts), fit, opts) for _ in range(RELIABILITY_BATCHES - 1)]
    )
    deviation = np.abs(later - first)
    mads = np.column_stack(
        [deviation[:, :, :2].mean(axis=(0, 2)), deviation[:, :, 2:].mean(axis=(0, 2))]
    )
    return first, mads
