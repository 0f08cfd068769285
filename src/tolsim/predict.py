"""Recurrence prediction under a new schedule, with the uncertainty of a fit.

:func:`predict` takes a :class:`~tolsim.FitResult` and a schedule the data never saw, and
propagates two kinds of uncertainty to the time to recurrence after tamoxifen withdrawal:

* **parameter uncertainty** — draws of the free parameters from the fit: posterior samples
  (:meth:`FitResult.sample`, emcee) or the Laplace approximation (a multivariate normal on
  the log10 scale with the inverse Hessian of the negative log-likelihood as covariance)
  used as the proposal of importance sampling of the likelihood within the fit's bounds
  (:func:`laplace_draws`; it matches the profile-likelihood intervals when the profiles are
  close to quadratic, and follows the likelihood where they are not). Each draw is one row
  of a parameter table solved in one batched kernel call.
* **demographic noise** of small residual populations — for a linear model, the exact
  branching-process probabilities (:func:`tolsim.branching.branching_extinction`) that the
  whole population, or the tolerant reservoir, dies out; for any model, stochastic paths
  (``method="hybrid"``) per draw, whose recurrence times are computed exactly in the kernel.

With the exact (branching) treatment the predictive distribution of the recurrence time is
the mixture over draws ``d`` of "no recurrence" with probability ``q_d`` (extinction by the
schedule's end) and the deterministic recurrence day ``t_d`` with probability ``1 - q_d``.
That neglects the timing noise of a lineage that survives, and puts it on the mean field's
day although a surviving lineage is ``1 / (1 - q_d)`` times the mean on average: it recurs
earlier, and may recur where the mean field never does. So the mixture is used only while
every ``q_d`` stays below :data:`BRANCHING_MAX_EXTINCTION` (0.1: survivors within 11% of the
mean); ``demographic="auto"`` takes paths beyond it, and ``"branching"`` warns. Timing noise
is neglected too, which is fair only for large populations: ``"auto"`` also takes paths
where a draw's mean field passes through fewer than :data:`BRANCHING_MIN_CELLS` cells.
``demographic="paths"`` includes it all.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from scipy.special import ndtri

import tolsim
from tolsim.branching import branching_extinction
from tolsim.recurrence import metric_grid, time_to_recurrence
from tolsim.schedule import Schedule
from tolsim.simulate import _check_times, simulate
from tolsim.stochastic import check_seed

if TYPE_CHECKING:
    from tolsim.fit import FitResult

__all__ = ["PredictionWarning", "laplace_draws", "predict", "weighted_quantile"]

UNCERTAINTIES = ("laplace", "posterior", "none")
DEMOGRAPHIC = ("auto", "branching", "paths", "none")
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class PredictionWarning(UserWarning):
    """Draws whose solution failed, or a Laplace approximation that needed repair."""


def _user_stacklevel() -> int:
    """The ``stacklevel`` that attributes a warning to the first caller outside tolsim
    (``predict`` is called directly or through ``FitResult.predict``, from any depth),
    counted from the function that calls this one (as pandas' ``find_stack_level``)."""
    import inspect
    import os

    package = os.path.dirname(tolsim.__file__)
    frame, level = inspect.currentframe(), 0
    while frame is not None and inspect.getfile(frame).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


# -- parameter draws -------------------------------------------------------------------------
def _hessian(function, x: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Central finite-difference Hessian (second-order accurate in ``step``)."""
    n = x.size
    f0 = function(x)
    hessian = np.empty((n, n))
    for i in range(n):
        e_i = np.zeros(n)
        e_i[i] = step
        hessian[i, i] = (function(x + e_i) - 2.0 * f0 + function(x - e_i)) / step**2
        for j in range(i):
            e_j = np.zeros(n)
            e_j[j] = step
            value = (
                function(x + e_i + e_j)
                - function(x + e_i - e_j)
                - function(x - e_i + e_j)
                + function(x - e_i - e_j)
            ) / (4.0 * step**2)
            hessian[i, j] = hessian[j, i] = value
    return hessian


def laplace_draws(fit: FitResult, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of the free parameters (log10 scale) from the Laplace approximation of a fit,
    corrected by the likelihood.

    The Laplace approximation is a multivariate normal centred on the best fit with
    covariance the inverse of the finite-difference Hessian of the negative log-likelihood
    (log10 parameters). It is only local: a one-sided, curved or long-tailed likelihood, or
    directions the data do not determine (Hessian eigenvalues near zero or negative, e.g. a
    best fit on a bound, warned about with a :class:`PredictionWarning`), make it wrong. So
    it is the first proposal of importance sampling of the likelihood within the fit's
    bounds (the flat prior on the log10 scale that :meth:`FitResult.sample` samples):
    candidates come 90% from a multivariate Student t (5 degrees of freedom) with that
    covariance widened 1.5x, uniform across the bounds along the undetermined directions,
    and 10% uniform across the bounds (a defensive mixture: every region the likelihood
    allows is proposed); each is weighted by its likelihood over the mixture's density.
    While the weights' effective sample size is below ``draws``, the candidates' weighted
    mean and covariance (weights truncated at ``sqrt(n)`` times their mean, Ionides 2008, so
    that a few candidates far in a tail do not make it degenerate), widened 1.2x, make the
    next round's t: up to three rounds, ``2 * draws`` candidates (at least 500) twice, then
    enough to reach ``draws`` effective ones at the second round's rate (4 to 16 per draw,
    at least 1,000). ``draws`` are resampled by the truncated weights from the round with
    the largest effective sample size (a later round can be worse).
    For a near-quadratic likelihood the draws' central intervals match the profile-likelihood
    intervals. The effective sample size reported is the raw weights': where it stays below
    a quarter of ``draws`` the approximation is far off, and a :class:`PredictionWarning`
    says so (use ``uncertainty="posterior"``; :func:`predict` switches to it by itself below
    100).

    Returns
    -------
    numpy.ndarray, shape (draws, n_free)
        log10 values.
    """
    theta, info = _laplace_importance(fit, draws, rng)
    _warn_effective(info, draws)
    return theta


def _warn_effective(info: Mapping[str, float], draws: int) -> None:
    """Warn when the importance sampling's effective sample size is below ``draws / 4``."""
    effective = info["effective_sample_size"]
    if effective < draws / 4:
        warnings.warn(
            f"the likelihood is far from its Laplace approximation: the "
            f"{info['candidates']:.0f} importance-sampling candidates have an effective "
            f"sample size of {effective:.0f} for {draws} draws (they repeat parameter sets); "
            "use uncertainty='posterior'",
            PredictionWarning,
            stacklevel=_user_stacklevel(),
        )


# below this effective sample size (and a quarter of the draws), predict samples the
# posterior instead of the Laplace approximation's importance sampling
LAPLACE_FALLBACK_EFFECTIVE = 100.0


STUDENT_DOF = 5.0  # degrees of freedom of the proposals' multivariate t
WIDENING = 1.5  # the first proposal's scale over the Laplace approximation's
ADAPTED_WIDENING = 1.2  # later proposals' scale over the weighted candidates' covariance
DEFENSIVE_SHARE = 0.1  # share of the proposals' candidates uniform over the bounds


class _Proposal:
    """A multivariate Student t (``STUDENT_DOF``) centred on ``centre`` with precision
    ``precision`` along the orthonormal ``shaped`` columns, uniform over the box's extent
    along the ``spread`` columns, truncated to the box ``[lower, upper]``; mixed with a
    uniform over the box (``DEFENSIVE_SHARE``). Draws and the mixture's normalised log
    density (the truncation's normalisation from the draws' acceptance rate)."""

    def __init__(self, centre, shaped, precision, spread, lower, upper):
        self.centre, self.shaped, self.precision = centre, shaped, precision
        self.spread, self.lower, self.upper = spread, lower, upper
        width = upper - lower
        self.half = np.abs(spread).T @ (width / 2.0)  # the box's extent along `spread`
        self.middle = ((lower + upper) / 2.0 - centre) @ spread
        self.log_box = float(np.sum(np.log(width)))
        self.acceptance = 1.0

    def draw(self, count: int, rng: np.random.Generator) -> np.ndarray:
        n_uniform = int(round(DEFENSIVE_SHARE * count))
        n_student = count - n_uniform
        dim = self.centre.size
        n_shaped = self.precision.size
        out = np.empty((n_student, dim))
        filled = tried = accepted = 0
        for _ in range(1000):
            k = 2 * (n_student - filled) + 16
            z = rng.standard_normal((k, n_shaped))
            chi2 = rng.chisquare(STUDENT_DOF, size=(k, 1))
            scaled = z * np.sqrt(STUDENT_DOF / chi2) / np.sqrt(self.precision)
            candidate = self.centre + scaled @ self.shaped.T
            if self.spread.shape[1]:
                u = rng.uniform(
                    self.middle - self.half, self.middle + self.half, (k, self.spread.shape[1])
                )
                candidate = candidate + u @ self.spread.T
            tried += k
            keep = np.all((candidate >= self.lower) & (candidate <= self.upper), axis=1)
            inside = candidate[keep]
            accepted += len(inside)
            take = min(n_student - filled, len(inside))
            out[filled : filled + take] = inside[:take]
            filled += take
            if filled == n_student:
                self.acceptance = accepted / tried
                uniform = rng.uniform(self.lower, self.upper, (n_uniform, dim))
                return np.concatenate([out, uniform])
        raise RuntimeError(  # pragma: no cover - needs almost all mass outside the box
            "the Laplace approximation puts almost no mass inside the bounds; use "
            "uncertainty='posterior'"
        )

    def log_density(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import gammaln

        n_shaped = self.precision.size
        offset = x - self.centre
        z = offset @ self.shaped
        log_t = (
            gammaln((STUDENT_DOF + n_shaped) / 2.0)
            - gammaln(STUDENT_DOF / 2.0)
            - n_shaped / 2.0 * np.log(STUDENT_DOF * np.pi)
            + 0.5 * np.sum(np.log(self.precision))
            - (STUDENT_DOF + n_shaped) / 2.0 * np.log1p((z**2 @ self.precision) / STUDENT_DOF)
        )
        if self.spread.shape[1]:
            along = offset @ self.spread
            within = np.all(np.abs(along - self.middle) <= self.half * (1 + 1e-12), axis=1)
            log_t = np.where(within, log_t - np.sum(np.log(2.0 * self.half)), -np.inf)
        log_t = log_t - np.log(self.acceptance)  # truncated to the box
        return np.logaddexp(
            np.log1p(-DEFENSIVE_SHARE) + log_t, np.log(DEFENSIVE_SHARE) - self.log_box
        )


def _weights(proposal: _Proposal, candidates: np.ndarray, fit) -> tuple[np.ndarray, float]:
    """Normalised importance weights of ``candidates`` (likelihood over proposal density),
    and their effective sample size."""
    from scipy.special import logsumexp

    nllh = np.array([fit.objective.nllh(theta) for theta in candidates])
    log_w = np.where(
        np.isfinite(nllh), -(nllh - fit.nllh) - proposal.log_density(candidates), -np.inf
    )
    if not np.any(np.isfinite(log_w)):
        raise RuntimeError(
            "the likelihood is not finite at any candidate of the Laplace proposal; use "
            "uncertainty='posterior'"
        )
    weights = np.exp(log_w - logsumexp(log_w))
    return weights, 1.0 / float(np.sum(weights**2))


def _truncated(weights: np.ndarray) -> np.ndarray:
    """Weights capped at ``sqrt(n)`` times their mean, renormalised (truncated importance
    sampling, Ionides 2008: a few candidates far in a tail the proposal barely reaches no
    longer carry the whole sample; consistent, with a bias that vanishes as ``n`` grows)."""
    capped = np.minimum(weights, np.sqrt(weights.size) / weights.size)
    return capped / capped.sum()


def _laplace_importance(
    fit: FitResult, draws: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """:func:`laplace_draws`, with the importance sampling's effective sample size and
    number of candidates."""
    objective = fit.objective
    names = list(fit.free)
    lower = np.log10([objective.bounds[n][0] for n in names])
    upper = np.log10([objective.bounds[n][1] for n in names])
    best = np.log10([fit.params[n] for n in names])
    # curvature just inside the box when the best fit is on a bound (a model parameter's
    # admissible limit, e.g. a fraction of 1, cannot be stepped across)
    step = 1e-3
    centre = np.clip(best, lower + 2 * step, upper - 2 * step)
    hessian = _hessian(objective.nllh, centre, step)
    if not np.all(np.isfinite(hessian)):
        raise ValueError(
            "the negative log-likelihood is not finite around the best fit (a parameter is "
            "at a bound where the model fails?): use uncertainty='posterior'"
        )
    eigenvalues, vectors = np.linalg.eigh(hessian)
    width = upper - lower
    # an eigenvalue below this gives a standard deviation wider than the whole box
    floor = 1.0 / float(np.max(width)) ** 2
    flat = eigenvalues <= floor
    if np.any(flat):
        warnings.warn(
            f"the likelihood is flat or curved the wrong way in {int(flat.sum())} direction(s) "
            "at the best fit (practically non-identifiable parameters): those directions are "
            "proposed uniformly within the bounds and weighted by the likelihood",
            PredictionWarning,
            stacklevel=_user_stacklevel(),
        )
    # round 1: the Laplace approximation, its scale widened 1.5x (a likelihood is often
    # heavier-tailed than its curvature at the best fit says); then, while the candidates'
    # effective sample size is below the draws, the weighted candidates' mean and
    # covariance (the likelihood's own shape, bounded along the directions the Laplace
    # approximation left flat) make the next round's proposal
    proposal = _Proposal(
        best, vectors[:, ~flat], eigenvalues[~flat] / WIDENING**2, vectors[:, flat], lower, upper
    )
    size = max(2 * draws, 500)
    kept = None  # the round with the largest effective sample size: a later round may be
    # worse (its proposal misses a far end of a ridge an earlier one reached)
    for round_ in range(3):
        candidates = proposal.draw(size, rng)
        weights, effective = _weights(proposal, candidates, fit)
        if kept is None or effective > kept[2]:
            kept = (candidates, weights, effective)
        if effective >= draws or round_ == 2:
            break
        if round_ == 1:  # the last round: as many candidates as reach `draws` effective
            # ones at the last round's rate (4 to 16 per draw)
            size = int(np.clip(np.ceil(draws * size / effective), 4 * draws, 16 * draws))
            size = max(size, 1000)
        # the next proposal from the candidates' truncated weights (stable when a few
        # candidates in a tail carry most of the raw weight: it then widens towards them)
        stable = _truncated(weights)
        mean = stable @ candidates
        offset = candidates - mean
        covariance = (offset * stable[:, None]).T @ offset + np.diag(1e-6 * width**2)
        variances, axes = np.linalg.eigh(covariance)
        precision = 1.0 / (variances * ADAPTED_WIDENING**2)
        proposal = _Proposal(mean, axes, precision, np.empty((best.size, 0)), lower, upper)
    # resampled by the truncated weights; the effective sample size reported (and on which
    # predict falls back to the posterior) is the raw weights': the approximation's quality
    candidates, weights, effective = kept
    chosen = rng.choice(candidates.shape[0], size=draws, replace=True, p=_truncated(weights))
    info = {"effective_sample_size": effective, "candidates": float(candidates.shape[0])}
    return candidates[chosen], info


def _posterior_draws(posterior: xr.Dataset, names: Sequence[str], draws: int, rng) -> np.ndarray:
    if not isinstance(posterior, xr.Dataset) or "log10_value" not in posterior:
        raise TypeError(
            f"`posterior` = {type(posterior).__name__}: expected the Dataset of "
            "FitResult.sample() (variable 'log10_value' (draw, parameter))"
        )
    have = [str(p) for p in posterior["parameter"].values]
    if sorted(have) != sorted(names):
        raise ValueError(
            f"`posterior` has parameters {have}: expected the fit's free parameters {list(names)}"
        )
    chain = posterior["log10_value"].sel(parameter=list(names)).values
    index = rng.choice(chain.shape[0], size=draws, replace=chain.shape[0] < draws)
    return chain[index]


def _whole_initial_counts(model, table: Mapping[str, np.ndarray], seed_sequence) -> dict:
    """``table`` with its initial cell counts (e.g. ``S0``, ``T0``) rounded to whole cells.

    A fitted or fixed initial count is a mean-field number of cells (``T0`` = 3964.85); the
    branching process and stochastic paths need whole cells. Each non-whole count ``x`` is
    rounded stochastically, up to ``ceil(x)`` with probability ``x - floor(x)`` and down to
    ``floor(x)`` otherwise, so that the expected count is ``x`` (always rounding to nearest
    would take every draw of ``T0`` = 0.4 to no tolerant cell at all). The uniform numbers
    come from ``seed_sequence`` (one per draw and count, in draw order): the same seed
    gives the same counts. Whole counts are kept as they are.
    """
    rng = np.random.default_rng(seed_sequence)
    out = dict(table)
    for _, name in model.initial:
        values = np.asarray(out[name], dtype=float)
        uniform = rng.random(values.shape)  # drawn even when whole: later counts keep streams
        fraction = values - np.floor(values)
        if np.all(fraction == 0) or not np.all(np.isfinite(values)):
            continue  # whole already (or not a count at all: left for the checks to name)
        out[name] = np.floor(values) + (uniform < fraction)
    return out


# -- quantiles of a weighted sample with mass at infinity ------------------------------------
def weighted_quantile(values, weights, q) -> np.ndarray:
    """Quantiles ``q`` of the distribution putting mass ``weights`` on ``values``.

    The inverse of the empirical CDF (the smallest value whose cumulative weight reaches
    ``q``), so ``inf`` values (no recurrence) are handled exactly: a quantile beyond the
    finite mass is ``inf``. Weights are normalised; a ``q`` within 1e-12 of a cumulative
    weight counts as reaching it (the normalised sums' round-off).

    Examples
    --------
    >>> weighted_quantile([1.0, 2.0, np.inf], [0.25, 0.25, 0.5], [0.2, 0.5, 0.6])
    array([ 1.,  2., inf])
    """
    values = np.asarray(values, dtype=float).ravel()
    weights = np.asarray(weights, dtype=float).ravel()
    q = np.atleast_1d(np.asarray(q, dtype=float))
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size == 0:
        return np.full(q.shape, np.nan)
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    cumulative /= cumulative[-1]
    index = np.searchsorted(cumulative, q - 1e-12, side="left")
    return values[order][np.minimum(index, values.size - 1)]


# -- the public function ---------------------------------------------------------------------
def _check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"`{name}` = {value!r}: expected one of {list(choices)}")
    return value


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` = {value!r}: expected an integer >= 1")
    return int(value)


# The largest extinction probability of a draw for which the branching mixture (survivors on
# the mean field's recurrence day) is used: survivors are then within 1 / (1 - 0.1) = 1.11
# times the mean field.
BRANCHING_MAX_EXTINCTION = 0.1
# The fewest cells the mean field may pass through before recurring, in all and in the
# tolerant reservoir, for "auto" to use the mixture: the size of a population descended from
# n cells spreads by about sqrt(k / n) relative (k = (b + d) / |b - d|, ~3 here), 5% at 1000
# cells, a quarter of a day of recurrence timing at a net growth of 0.2/day. From 4 cells the
# recurrence day spread over weeks that the mixture put on one day (its q was 0.05).
BRANCHING_MIN_CELLS = 1000.0


def _bottleneck(ode: xr.Dataset, model, recurs: np.ndarray, withdrawal: float, ok) -> float:
    """The fewest cells the mean field of a successful draw passes through before its
    recurrence (or the end): of the whole population, and of the tolerant reservoir, whose
    few cells may set the recurrence's timing while sensitive ones keep the total large.
    ``recurs``: each draw's mean-field recurrence day after ``withdrawal``."""
    until = withdrawal + np.where(np.isfinite(recurs), recurs, np.inf)
    before = ode["time"].values[None, :] <= until[:, None]  # (draw, time)
    smallest = ode["N"].values
    if model.tolerant_states:
        reservoir = sum(ode[state].values for state in model.tolerant_states)
        smallest = np.minimum(smallest, reservoir)
    return float(np.min(np.where(before, smallest, np.inf)[ok]))


def predict(
    fit: FitResult,
    schedule: Schedule,
    *,
    draws: int = 500,
    uncertainty: str | None = None,
    posterior: xr.Dataset | None = None,
    demographic: str = "auto",
    paths: int | None = None,
    params: Mapping[str, float] | None = None,
    times=None,
    threshold: str | float = "size_at_withdrawal",
    horizon_days: float | None = None,
    eradication_day: float | None = None,
    level: float = 0.9,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    seed: int = 0,
    rtol: float = 1e-6,
) -> xr.Dataset:
    """Predict recurrence after tamoxifen withdrawal under ``schedule``, with uncertainty.

    Parameters
    ----------
    fit : FitResult
        The fitted model (:func:`tolsim.fit`). Fixed and default parameters keep the fit's
        values; condition-specific overrides of the fit do not carry over (use ``params``).
    schedule : Schedule
        The schedule to predict under; it must give tamoxifen (recurrence is counted from its
        withdrawal, :meth:`Schedule.withdrawal_day`).
    draws : int
        Parameter draws (one batched solve each).
    uncertainty : {"laplace", "posterior", "none"}, optional
        Default ``"laplace"``, or ``"posterior"`` when ``posterior`` is given (another value
        with it is an error). Where draws come from: the Laplace approximation corrected by
        importance sampling
        (:func:`laplace_draws`; attrs ``laplace_effective_sample_size`` and
        ``laplace_candidates``), posterior
        samples (``posterior``, or :meth:`FitResult.sample` run here with ``seed``), or the
        best fit only (``draws`` is then 1).
    posterior : xarray.Dataset, optional
        Output of :meth:`FitResult.sample`; implies ``uncertainty="posterior"``.
    demographic : {"auto", "branching", "paths", "none"}
        Demographic noise: exact branching-process extinction (linear models; what ``"auto"``
        picks for them while every draw's extinction probability is below
        :data:`BRANCHING_MAX_EXTINCTION` and its mean field keeps at least
        :data:`BRANCHING_MIN_CELLS` cells), ``paths`` hybrid stochastic paths per draw (any
        model; ``"auto"`` for non-linear ones, and for linear ones beyond those limits, where
        surviving lineages recur earlier than the mean field, or a few cells' recurrence
        day spreads), or none (deterministic recurrence only). Both start from whole
        cells: an initial count that is not whole (a fitted ``T0`` = 3964.85, say) is rounded
        stochastically per draw, up with probability its fractional part and down otherwise,
        so the expected count is the draw's (reproducible: the uniforms come from ``seed``);
        the mean-field solves keep the draw's own value. Whole counts are used as they are.
    paths : int, optional
        Stochastic paths per draw where paths are run (default 100); an error with
        ``demographic`` "branching" or "none", which run none.
    params : mapping, optional
        Model parameter overrides for the new schedule (e.g. a knockout's ``kappa_T``); a
        free parameter cannot be overridden.
    times : array_like, optional
        Output days of the trajectory bands ``N_quantiles`` and
        ``tolerant_fraction_quantiles``; default daily over the schedule, with its
        breakpoints, withdrawal day and end. The recurrence days do not depend on them: they
        come from the mean-field solution on that default grid (with ``times`` added).
    threshold : "size_at_withdrawal" or float
        Recurrence threshold (cells), as for :func:`tolsim.time_to_recurrence`.
    horizon_days : float, optional
        Days after withdrawal for ``probability_no_recurrence``; default to the schedule's end.
    eradication_day : float, optional
        Day by which the tolerant reservoir must be empty for ``eradication_probability``;
        default the last day any drug is given (the end of treatment).
    level : float
        Level of the prediction interval ``time_to_recurrence_interval`` and of the Monte
        Carlo intervals of probabilities.
    quantiles : sequence of float
        Quantiles reported (``level``'s two ends are added).
    seed : int
        Seed of the draws and paths: the same seed gives the same prediction.
    rtol : float
        Relative tolerance of the ODE solves.

    Returns
    -------
    xarray.Dataset
        Per draw (dim ``draw``): ``parameter_value`` (draw, parameter), ``time_to_recurrence``
        (days after withdrawal, ``inf`` if not within the schedule; with paths: (draw,
        path)), ``extinction_probability``, ``eradication_probability_draw`` and
        ``initial_cells`` (draw, state; the whole cells they start from) with demographic
        noise. Summaries: ``time_to_recurrence_quantiles`` (quantile, days),
        ``time_to_recurrence_interval`` (bound: low/high, days) at ``level``,
        ``recurrence_free_probability`` with ``recurrence_free_low``/``_high`` (Monte Carlo
        interval) against ``day_since_withdrawal``, ``probability_no_recurrence`` by
        ``horizon_days``, ``eradication_probability``, ``N_quantiles`` and
        ``tolerant_fraction_quantiles`` (quantile, time): quantiles of the mean-field
        trajectory over the draws, i.e. parameter uncertainty only (no measurement or
        demographic noise: not bands for new measurements). Attributes record the model,
        schedule, fit, uncertainty, demographic treatment, seed and tolsim version.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tolsim
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> grow = tolsim.Schedule.from_phases([{"days": 20}])
    >>> days = np.arange(2.0, 21.0, 2.0)
    >>> cells = tolsim.simulate(model, model.default_params(lambda_S=0.3), grow, days).N
    >>> noisy = cells.values * np.exp(0.1 * np.random.default_rng(1).standard_normal(10))
    >>> data = pd.DataFrame({"condition": "control", "observable": "total_cells",
    ...                      "time": days, "value": noisy})
    >>> result = tolsim.fit(model, data, {"control": grow}, free=["lambda_S"],
    ...                     noise=tolsim.observe.LogNormal(), starts=2,
    ...                     fixed={"total_cells.sigma": 0.1})
    >>> new = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}, {"days": 60}])
    >>> p = result.predict(new, draws=200, seed=1, threshold=1e7)  # days to 1e7 cells
    >>> low, high = p.time_to_recurrence_interval.values
    >>> bool(0 < low < high < 60)
    True
    """
    from tolsim.fit import FitResult

    if not isinstance(fit, FitResult):
        raise TypeError(f"`fit` = {type(fit).__name__}: expected a tolsim.FitResult")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` = {schedule!r}: expected a tolsim.Schedule")
    try:
        withdrawal = schedule.withdrawal_day("tamoxifen")
    except ValueError as error:
        raise ValueError(
            f"`schedule` never gives tamoxifen ({error}): recurrence is counted from "
            "tamoxifen withdrawal"
        ) from None
    if withdrawal >= schedule.duration_days:
        where = "its end" if withdrawal == schedule.duration_days else (
            f"after its end (day {schedule.duration_days:g})"
        )  # fmt: skip
        raise ValueError(
            f"`schedule` gives tamoxifen until day {withdrawal:g}, {where}: there is no "
            "follow-up after withdrawal to predict"
        )
    if not fit.converged:
        warnings.warn(
            "`fit` did not converge (its `converged` is False; see its `starts`): the "
            "prediction is around a point that may not be the best fit",
            PredictionWarning,
            stacklevel=_user_stacklevel(),
        )
    draws = _check_positive_int(draws, "draws")
    if posterior is not None and uncertainty not in (None, "posterior"):
        raise ValueError(
            f"`uncertainty` = {uncertainty!r} with `posterior` given: the posterior's draws "
            "are used only with uncertainty='posterior' (the default when it is given)"
        )
    if uncertainty is None:
        uncertainty = "laplace" if posterior is None else "posterior"
    _check_choice(uncertainty, "uncertainty", UNCERTAINTIES)
    _check_choice(demographic, "demographic", DEMOGRAPHIC)
    if paths is not None and demographic in ("branching", "none"):
        raise ValueError(
            f"`paths` = {paths!r} with `demographic` = {demographic!r}: paths are run only "
            "with demographic='paths' (or 'auto', where it takes them)"
        )
    paths = _check_positive_int(100 if paths is None else paths, "paths")
    seed = check_seed(seed)
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` = {level!r}: expected a level in (0, 1)")
    quantiles = np.asarray(quantiles, dtype=float).ravel()
    if quantiles.size == 0 or np.any(~((quantiles > 0) & (quantiles < 1))):
        raise ValueError(f"`quantiles` = {quantiles.tolist()}: expected values in (0, 1)")
    ends = np.round([(1.0 - level) / 2.0, (1.0 + level) / 2.0], 12)  # 0.05, not 0.0499...9
    quantiles = np.unique(np.round(np.concatenate([quantiles, ends]), 12))
    follow_up = schedule.duration_days - withdrawal
    horizon_days = follow_up if horizon_days is None else float(horizon_days)
    if not 0.0 < horizon_days <= follow_up:
        raise ValueError(
            f"`horizon_days` = {horizon_days!r}: expected days after withdrawal in "
            f"(0, {follow_up:g}] (the schedule's follow-up)"
        )
    if eradication_day is None:
        eradication_day = schedule.treatment_end_day()
    eradication_day = float(eradication_day)
    if not 0.0 < eradication_day <= schedule.duration_days:
        raise ValueError(
            f"`eradication_day` = {eradication_day!r}: expected a day in "
            f"(0, {schedule.duration_days:g}]"
        )
    model = fit.objective.model
    overrides = dict(params or {})
    model._check_names(overrides, "params")
    clash = [n for n in overrides if n in fit.free]
    if clash:
        raise ValueError(
            f"`params` overrides free parameter(s) {clash}: their values come from the fit's draws"
        )
    if demographic == "auto" and not model.linear:
        demographic = "paths"
    if demographic == "branching" and not model.linear:
        raise ValueError(
            f"`demographic` = 'branching' needs a linear model (no crowding); {model.name} is "
            "not: use demographic='paths'"
        )
    grid = metric_grid(schedule)  # daily, breakpoints, withdrawal, end: the recurrence days
    if times is None:
        times = grid
    times = _check_times(times, schedule.duration_days)
    grid = np.union1d(grid, times)

    # 1. parameter draws (log10 scale) -------------------------------------------------------
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    names = list(fit.free)
    best = np.log10([fit.params[n] for n in names])
    laplace: dict[str, float] = {}
    if uncertainty == "none":
        theta = best[None, :]
    elif uncertainty == "laplace":
        theta, laplace = _laplace_importance(fit, draws, rng)
        effective = laplace["effective_sample_size"]
        if effective < min(LAPLACE_FALLBACK_EFFECTIVE, draws / 4):
            warnings.warn(
                f"the Laplace approximation's importance sampling found an effective sample "
                f"size of {effective:.1f} in {laplace['candidates']:.0f} candidates: the "
                "likelihood is far from any normal approximation (a curved ridge of "
                "parameters the data do not separate?); the draws come from the posterior "
                f"sampled with emcee instead (FitResult.sample(seed={seed}))",
                PredictionWarning,
                stacklevel=_user_stacklevel(),
            )
            uncertainty = "posterior"
            posterior = fit.sample(seed=seed)
            theta = _posterior_draws(posterior, names, draws, rng)
        else:
            _warn_effective(laplace, draws)
    else:
        if posterior is None:
            posterior = fit.sample(seed=seed)
        theta = _posterior_draws(posterior, names, draws, rng)
    n_draws = theta.shape[0]
    values = fit.model_params
    values.update(overrides)
    table = {n: np.full(n_draws, float(v)) for n, v in values.items()}
    for k, name in enumerate(names):
        if name in model.parameter_names:
            table[name] = 10.0 ** theta[:, k]

    # the branching process and the stochastic paths start from whole cells
    counts = _whole_initial_counts(model, table, np.random.SeedSequence([seed, 2]))
    whole = None
    if demographic in ("auto", "branching"):  # (a linear model)
        whole = branching_extinction(model, counts, schedule)
        largest = float(np.nanmax(whole["extinction_probability"].values))
        if demographic == "auto":  # (and the mean field's nadir, once solved, below)
            demographic = "auto-branching" if largest < BRANCHING_MAX_EXTINCTION else "paths"
        elif largest >= BRANCHING_MAX_EXTINCTION:
            warnings.warn(
                f"a draw dies out with probability {largest:.2f}: its surviving lineages are "
                f"{1.0 / max(1.0 - largest, 1e-300):.3g} times the mean field on average, so "
                "they recur earlier than the mixture's mean-field day, or where the mean field "
                "never does; use demographic='paths' (or 'auto') for their recurrence days",
                PredictionWarning,
                stacklevel=_user_stacklevel(),
            )

    # 2. mean-field trajectories and recurrence days -----------------------------------------
    ode = simulate(model, table, schedule, grid, rtol=rtol, throw=False)
    ok = ode["status"].values == 0
    why = ""
    if not np.all(ok):
        why = str(ode.message.values[~ok][0])
        if "non-finite" in why and model.linear:
            why += (
                "; an uncrowded model grows without bound, and the fastest-growing draws "
                "overflow a long follow-up first: shorten the schedule after withdrawal"
            )
        warnings.warn(
            f"{int((~ok).sum())} of {n_draws} draws failed to solve ({why}): they are left out "
            "of the prediction, which is biased if they are not a random subset of the draws",
            PredictionWarning,
            stacklevel=_user_stacklevel(),
        )
    if not np.any(ok):
        raise RuntimeError(f"every draw failed to solve ({why})")
    mean_field_days = (  # (paths take their own days)
        None if demographic == "paths" else time_to_recurrence(ode, threshold=threshold).values
    )
    if demographic == "auto-branching":  # few cells at the bottleneck: timing noise
        smallest = _bottleneck(ode, model, mean_field_days, withdrawal, ok)
        demographic = "branching" if smallest >= BRANCHING_MIN_CELLS else "paths"
    weights = ok.astype(float) / ok.sum()
    data_vars: dict[str, tuple] = {}
    censored_note = (
        f"inf: no recurrence within the {follow_up:g} days of follow-up after withdrawal the "
        "schedule simulates (censored there: a longer follow-up may show one)"
    )
    day_grid = np.union1d(np.arange(0.0, follow_up, 1.0), [horizon_days, follow_up])
    if demographic == "paths":
        stochastic = simulate(
            model,
            counts,
            schedule,
            np.unique([eradication_day, schedule.duration_days]),
            method="hybrid",
            paths=paths,
            seed=int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]),
            recurrence_threshold=threshold,
            throw=False,
        )
        path_ok = (stochastic["status"].values == 0) & ok[:, None]
        days = stochastic["time_to_recurrence"].values  # (draw, path)
        at = stochastic.sel(time=eradication_day)
        gone = np.logical_and.reduce([at[s].values == 0 for s in model.tolerant_states])
        end = stochastic.sel(time=schedule.duration_days)
        extinct = np.logical_and.reduce([end[s].values == 0 for s in model.states])
        per_draw = np.where(path_ok.any(1), path_ok.sum(1), 1)
        # each draw weighs as in the mean-field mixture, shared among its successful paths
        path_weight = weights[:, None] * path_ok / per_draw[:, None]
        mixture_values, mixture_weights = days.ravel(), path_weight.ravel()
        extinction = (extinct & path_ok).sum(1) / per_draw
        eradication = (gone & path_ok).sum(1) / per_draw
        recurred_by = (days[..., None] <= day_grid) & path_ok[..., None]
        curve_terms = 1.0 - recurred_by.sum(1) / per_draw[:, None]  # (draw, day)
        data_vars["time_to_recurrence"] = (
            ("draw", "path"),
            days,
            {"units": "days", "long_name": "days from withdrawal to recurrence, per path"},
        )
        paths_of_draw = np.where(path_ok.any(1), per_draw, 0)  # successful paths per draw
    else:
        days = mean_field_days
        days = np.where(ok, days, np.nan)
        data_vars["time_to_recurrence"] = (
            "draw",
            days,
            {"units": "days", "long_name": "mean-field days from withdrawal to recurrence"},
        )
        if demographic == "branching":
            extinction = whole["extinction_probability"].values
            reservoir = branching_extinction(
                model, counts, schedule, by_day=eradication_day, states=model.tolerant_states
            )
            eradication = reservoir["extinction_probability"].values
        else:
            extinction = np.zeros(n_draws)
            eradication = None
        extinction = np.where(ok, extinction, 0.0)
        mixture_values = np.concatenate([days, np.full(n_draws, np.inf)])
        mixture_weights = np.concatenate([weights * (1.0 - extinction), weights * extinction])
        recurred_by = (days[:, None] <= day_grid) & ok[:, None]
        curve_terms = 1.0 - recurred_by * (1.0 - extinction)[:, None]
        paths_of_draw = None  # per-draw probabilities are exact: no noise within a draw
    if demographic != "none":
        data_vars["initial_cells"] = (
            ("draw", "state"),
            np.column_stack([counts[name] for _, name in model.initial]),
            {
                "units": "cells",
                "long_name": "whole cells of each state on day 0 for the demographic noise "
                "(non-whole draws rounded stochastically, keeping the expected count)",
            },
        )
        data_vars["extinction_probability"] = (
            "draw",
            extinction,
            {"units": "1", "long_name": "probability that no cell is left at the schedule's end"},
        )
        data_vars["eradication_probability_draw"] = (
            "draw",
            eradication,
            {
                "units": "1",
                "long_name": f"probability of no tolerant cell on day {eradication_day:g}",
            },
        )

    # 3. summaries ---------------------------------------------------------------------------
    z = float(ndtri((1.0 + level) / 2.0))

    squared = weights**2
    n_effective = 1.0 / squared.sum() if squared.sum() > 0 else 0.0  # Kish's effective draws

    def mean_and_interval(terms: np.ndarray):
        """Weighted mean over draws of per-draw probabilities, with a normal Monte Carlo
        interval: the estimate's precision from a finite number of draws and paths.

        The variance of ``sum_d w_d p_d`` is estimated from the spread of the per-draw
        estimates, ``sum_d w_d^2 (p_d - mean)^2`` (times ``n/(n-1)`` for ``n`` effective
        draws), which holds their binomial noise when ``p_d`` is a fraction of paths; and at
        least the binomial part alone, ``sum_d w_d^2 p_d (1 - p_d) / paths_d``, which is
        all there is to go on with one draw (``uncertainty="none"``)."""
        mean = np.clip(np.tensordot(weights, terms, axes=(0, 0)), 0.0, 1.0)
        between = np.tensordot(squared, (terms - mean) ** 2, axes=(0, 0))
        between = between * n_effective / (n_effective - 1.0) if n_effective > 1.0 else 0.0
        variance = between
        if paths_of_draw is not None:
            shape = (-1,) + (1,) * (terms.ndim - 1)
            binomial = terms * (1.0 - terms) / np.maximum(paths_of_draw, 1).reshape(shape)
            variance = np.maximum(variance, np.tensordot(squared, binomial, axes=(0, 0)))
        half = z * np.sqrt(np.maximum(variance, 0.0))
        return mean, np.clip(mean - half, 0.0, 1.0), np.clip(mean + half, 0.0, 1.0)

    from tolsim.fit import _parameter_units  # (fit imports this module's caller)

    quantile_days = weighted_quantile(mixture_values, mixture_weights, quantiles)
    curve, curve_low, curve_high = mean_and_interval(curve_terms)
    no_recurrence = curve[np.searchsorted(day_grid, horizon_days)]
    data_vars.update(
        {
            "parameter_value": (
                ("draw", "parameter"),
                10.0**theta,
                {
                    "long_name": "free parameter values of each draw",
                    "units": _parameter_units(fit.objective, fit.free),  # JSON, per parameter
                },
            ),
            "draw_ok": ("draw", ok, {"long_name": "the draw's solution succeeded"}),
            "time_to_recurrence_quantiles": (
                "quantile",
                quantile_days,
                {
                    "units": "days",
                    "long_name": "predictive quantiles of the time to recurrence",
                    "comment": censored_note,
                },
            ),
            "time_to_recurrence_interval": (
                "bound",
                weighted_quantile(mixture_values, mixture_weights, ends),
                {
                    "units": "days",
                    "long_name": f"{level:.0%} prediction interval",
                    "comment": censored_note,
                },
            ),
            "recurrence_free_probability": (
                "day_since_withdrawal",
                curve,
                {"units": "1", "long_name": "probability of no recurrence yet"},
            ),
            "recurrence_free_low": ("day_since_withdrawal", curve_low, {"units": "1"}),
            "recurrence_free_high": ("day_since_withdrawal", curve_high, {"units": "1"}),
            "probability_no_recurrence": (
                (),
                no_recurrence,
                {"units": "1", "long_name": f"no recurrence within {horizon_days:g} days"},
            ),
        }
    )
    if demographic != "none":
        erad, erad_low, erad_high = mean_and_interval(eradication)
        data_vars["eradication_probability"] = (
            (),
            erad,
            {
                "units": "1",
                "long_name": f"probability that the tolerant reservoir is gone by day "
                f"{eradication_day:g}",
                "interval": [float(erad_low), float(erad_high)],
            },
        )
    for variable in ("N", "tolerant_fraction"):
        trajectory = ode[variable].sel(time=times).values[ok]
        data_vars[f"{variable}_quantiles"] = (
            ("quantile", "time"),
            np.quantile(trajectory, quantiles, axis=0) if trajectory.size else np.nan,
            {
                "units": ode[variable].attrs.get("units", ""),
                "long_name": f"quantiles of the mean-field {variable} over parameter draws "
                "(parameter uncertainty only: no measurement or demographic noise)",
            },
        )
    coords = {
        "draw": np.arange(n_draws),
        "parameter": names,
        "quantile": quantiles,
        "bound": ["low", "high"],
        "time": ("time", times, {"units": "days"}),
        "day_since_withdrawal": ("day_since_withdrawal", day_grid, {"units": "days"}),
    }
    if demographic != "none":
        coords["state"] = [state for state, _ in model.initial]
    if demographic == "paths":
        coords["path"] = np.arange(paths)
    return xr.Dataset(
        data_vars,
        coords=coords,
        attrs={
            "title": f"tolsim recurrence prediction with {model.name}",
            "model": ode.attrs["model"],
            "schedule": ode.attrs["schedule"],
            "fit": json.dumps(
                {
                    "params": fit.params,
                    "nllh": fit.nllh,
                    "free": names,
                    "method": fit.method,
                    "converged": bool(fit.converged),
                }
            ),  # fmt: skip
            "follow_up_days": follow_up,
            "params": json.dumps(values),
            "uncertainty": uncertainty,
            **{f"laplace_{key}": value for key, value in laplace.items()},
            "demographic": demographic,
            "draws": n_draws,
            "paths": paths if demographic == "paths" else 0,
            "seed": seed,
            "level": level,
            "threshold": threshold if isinstance(threshold, str) else float(threshold),
            "withdrawal_day": withdrawal,
            "horizon_days": horizon_days,
            "eradication_day": eradication_day,
            "rtol": rtol,
            "tolsim_version": tolsim.__version__,
        },
    )
