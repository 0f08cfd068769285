"""Schedule design: search a schedule template for the best trade-off of benefit and drug.

:func:`optimize_schedule` evaluates every candidate of a search space over a
:class:`~tolsim.design.ScheduleTemplate`'s slots (a grid of given values, a scrambled Sobol
sample of ranges, or both), scores each by a benefit (recurrence-free days after withdrawal,
the probability of no recurrence, or the probability that the tolerant reservoir is
eradicated) and a drug burden (days of a drug, or its cumulative exposure in µM·day), and
returns every candidate with the best feasible one and the Pareto front: the candidates no
other candidate beats on benefit without more burden.

Each candidate is its own schedule, so it is one kernel call. Candidates run on a pool of
threads with one numba thread each (the kernels release the GIL): for a handful of parameter
sets per candidate that is far faster than a parallel kernel per candidate, whose thread
start-up would dominate.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from numbers import Integral, Real

import numpy as np
import xarray as xr
from scipy import integrate

import tolsim
from tolsim.branching import branching_extinction
from tolsim.design import ScheduleTemplate, grid, sobol
from tolsim.models.base import Model
from tolsim.recurrence import check_threshold
from tolsim.schedule import Schedule
from tolsim.simulate import check_rtol
from tolsim.stochastic import check_seed
from tolsim.sweep import _evaluate

__all__ = ["drug_burden", "optimize_schedule", "pareto_front"]

OBJECTIVES = {
    "recurrence_free_days": ("days", "recurrence-free days after withdrawal (to the horizon)"),
    "no_recurrence_probability": ("1", "probability of no recurrence within the horizon"),
    "eradication_probability": ("1", "probability that no tolerant cell is left"),
}


# -- drug burden -----------------------------------------------------------------------------
def _union_length(intervals) -> float:
    total, end = 0.0, -np.inf
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def drug_burden(schedule: Schedule, drug: str, kind: str = "days") -> float:
    """How much of ``drug`` a schedule gives.

    Parameters
    ----------
    schedule : Schedule
    drug : str
        e.g. ``"inhibitor"``.
    kind : {"days", "um_days"}
        ``"days"``: days on which the drug is given (in-vitro phases with a positive level,
        oral regimens from start to stop day, pellets; overlaps counted once; clipped to the
        schedule). ``"um_days"``: cumulative exposure, the integral of its concentration (µM
        day) — exact for in-vitro phases, by Simpson's rule with 0.005-day steps within each
        piece between doses when PK dosing is involved.

        A drug the schedule does not name gives 0 (names are not checked against a model:
        ``schedule.drugs`` lists those it names).

    Examples
    --------
    >>> s = tolsim.Schedule.from_phases([{"days": 10, "inhibitor": 2.0}, {"days": 5}])
    >>> drug_burden(s, "inhibitor"), drug_burden(s, "inhibitor", "um_days")
    (10.0, 20.0)
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` = {schedule!r}: expected a tolsim.Schedule")
    if not isinstance(drug, str):
        raise TypeError(f"`drug` = {drug!r}: expected a drug name (str), e.g. 'inhibitor'")
    if kind not in ("days", "um_days"):
        raise ValueError(f"`kind` = {kind!r}: expected 'days' or 'um_days'")
    end = schedule.duration_days
    if kind == "days":
        intervals = [
            (p.start_day, p.stop_day) for p in schedule.phases if p.levels_um.get(drug, 0.0) > 0
        ]
        intervals += [
            (r.start_day, r.stop_day)
            for r in schedule.oral_doses
            if r.drug == drug and r.dose_mg > 0
        ]
        intervals += [
            (p.start_day, p.stop_day)
            for p in schedule.pellets
            if p.drug == drug and p.release_mg_per_day > 0
        ]
        return _union_length((min(a, end), min(b, end)) for a, b in intervals)
    uses_pk = any(r.drug == drug for r in schedule.oral_doses) or any(
        p.drug == drug for p in schedule.pellets
    )
    if not uses_pk:
        return float(
            sum(p.levels_um.get(drug, 0.0) * (p.stop_day - p.start_day) for p in schedule.phases)
        )
    edges = np.union1d(schedule.breakpoints(), [end])
    edges = edges[edges <= end]
    total = 0.0
    for start, stop in zip(edges[:-1], edges[1:], strict=True):  # smooth within a piece
        days = np.linspace(start, stop, 2 * max(1, math.ceil((stop - start) / 0.01)) + 1)
        # a piece's right end belongs to the next piece: evaluate just inside it
        inside = np.minimum(days, np.nextafter(stop, start))
        # (all the schedule's drugs: compile refuses a list that leaves one out)
        levels = schedule.concentrations(inside, schedule.drugs)
        total += integrate.simpson(levels[:, schedule.drugs.index(drug)], x=days)
    return float(total)


def _drug_burden_of(schedule: Schedule, *, drug: str, kind: str) -> float:
    return drug_burden(schedule, drug, kind)


def _burden_function(
    burden, drugs: tuple[str, ...]
) -> tuple[Callable[[Schedule], float], str, str]:
    if callable(burden):
        name = getattr(burden, "__name__", "burden")
        return burden, name, ""
    if isinstance(burden, str):
        for suffix, kind, unit in (("_um_days", "um_days", "µM·day"), ("_days", "days", "days")):
            if burden.endswith(suffix) and len(burden) > len(suffix):
                drug = burden[: -len(suffix)]
                if drug not in drugs:  # a schedule never gives it: every burden would be 0
                    raise ValueError(
                        f"`burden` = {burden!r}: {drug!r} is not a drug of the model; expected "
                        f"'<drug>{suffix}' with a drug in {list(drugs)}"
                    )
                return functools.partial(_drug_burden_of, drug=drug, kind=kind), burden, unit
    raise ValueError(
        f"`burden` = {burden!r}: expected '<drug>_days' (e.g. 'inhibitor_days'), "
        "'<drug>_um_days' (cumulative µM·day) or a callable schedule -> float"
    )


# -- the Pareto front ------------------------------------------------------------------------
def pareto_front(benefit, burden) -> np.ndarray:
    """Mask of the candidates no other candidate beats: none has at least their benefit
    with less burden, or more benefit with at most their burden. Of exact ties one (the
    first) is kept. NaN benefits or burdens are never on the front; infinite ones compare
    as numbers (the one candidate with the most benefit is on it, whatever its burden).

    Examples
    --------
    >>> pareto_front([1.0, 3.0, 2.0, 3.0], [1.0, 2.0, 2.0, 5.0]).tolist()
    [True, True, False, False]
    """
    arrays = []
    for name, values in (("benefit", benefit), ("burden", burden)):
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"`{name}` = {values!r}: expected numbers") from None
        if array.ndim != 1:
            raise ValueError(f"`{name}` has shape {array.shape}: expected a 1-d array")
        arrays.append(array)
    benefit, burden = arrays
    if benefit.size != burden.size:
        raise ValueError(
            f"`benefit` has {benefit.size} values and `burden` {burden.size}: expected one "
            "of each per candidate"
        )
    on_front = np.zeros(benefit.size, dtype=bool)
    valid = np.flatnonzero(~np.isnan(burden) & ~np.isnan(benefit))
    # by burden ascending, then benefit descending, then index
    order = valid[np.lexsort((valid, -benefit[valid], burden[valid]))]
    best = None
    for i in order:  # (infinite values compare as any other: an inf burden can be on it)
        if best is None or benefit[i] > best:
            on_front[i] = True
            best = benefit[i]
    return on_front


# -- the search ------------------------------------------------------------------------------
def _candidates(template: ScheduleTemplate, space, candidates: int, seed: int):
    if not isinstance(space, Mapping) or not space:
        raise ValueError(
            f"`space` = {space!r}: expected a mapping slot -> values (a list: a grid) or "
            "(low, high) (a tuple: a Sobol sample)"
        )
    unknown = [slot for slot in space if slot not in template.slots]
    if unknown:
        raise ValueError(
            f"`space` names unknown slot(s) {unknown}: the template's slots are "
            f"{list(template.slots)}"
        )
    ranges = {k: v for k, v in space.items() if isinstance(v, tuple)}
    values = {k: v for k, v in space.items() if not isinstance(v, tuple)}
    for slot, bounds in ranges.items():
        if len(bounds) != 2 or not all(isinstance(b, Real) for b in bounds):
            raise ValueError(f"`space[{slot!r}]` = {bounds!r}: expected a (low, high) range")
    columns = {}
    if values:
        columns = dict(grid(**values).columns)
    if isinstance(candidates, bool) or not isinstance(candidates, Integral) or candidates < 1:
        raise ValueError(f"`candidates` = {candidates!r}: expected a power of two (>= 1)")
    if ranges and candidates & (candidates - 1):
        raise ValueError(
            f"`candidates` = {candidates!r}: Sobol points are balanced only in powers of 2; "
            f"use {1 << (int(candidates) - 1).bit_length()}"
        )
    if ranges:
        sample = sobol(candidates, ranges, seed=seed).columns  # (a slot may be named seed)
        if columns:  # every grid point with every Sobol point
            n_grid, n_sobol = len(next(iter(columns.values()))), candidates
            columns = {k: np.repeat(v, n_sobol) for k, v in columns.items()}
            columns.update({k: np.tile(v, n_grid) for k, v in sample.items()})
        else:
            columns = dict(sample)
    return columns


def optimize_schedule(
    model: Model,
    params,
    template: ScheduleTemplate,
    space: Mapping,
    *,
    objective: str = "recurrence_free_days",
    burden="inhibitor_days",
    budget: float | None = None,
    candidates: int = 1024,
    horizon_days: float | None = None,
    threshold: str | float = "size_at_withdrawal",
    eradication_day: float | None = None,
    top: int = 10,
    seed: int = 0,
    rtol: float = 1e-6,
    workers: int | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Search schedules from a template for the most benefit under a drug-burden budget.

    Parameters
    ----------
    model : Model
    params : mapping or table
        One parameter set, or several (``pandas.DataFrame`` or mapping of equal-length
        arrays): the benefit is then the mean over them — a schedule that is robust to
        parameter uncertainty. Draws of a fit come from :func:`tolsim.predict`'s
        ``parameter_value``, which holds the free parameters only: give the fit's other
        values too, ``{**fit.model_params, **{name: draws.parameter_value.sel(parameter=name)
        .values for name in fit.free}}`` (the parameters not given take the model's
        defaults).
    template : ScheduleTemplate
        e.g. :func:`tolsim.design.inhibitor_course`, :func:`tolsim.design.intermittent_tamoxifen`.
    space : mapping slot -> list or (low, high)
        A list of values makes a grid over that slot; a ``(low, high)`` tuple a scrambled
        Sobol sample of ``candidates`` points over the ranges (crossed with any grid).
        Unnamed slots keep the template's defaults.
    objective : {"recurrence_free_days", "no_recurrence_probability", "eradication_probability"}
        The benefit, maximised. ``recurrence_free_days``: days from tamoxifen withdrawal to
        recurrence, counted up to the horizon (a tumour that never recurs scores the
        horizon). ``no_recurrence_probability``: the fraction of parameter sets that do not
        recur within the horizon. ``eradication_probability`` (linear models): the exact
        branching-process probability that no tolerant cell is left on ``eradication_day``
        (default: the end of treatment, the last day any drug is given).
    burden : str or callable
        ``"<drug>_days"`` (days the drug is given), ``"<drug>_um_days"`` (cumulative exposure,
        µM·day; see :func:`drug_burden`) of one of the model's drugs, or a function
        schedule -> float.
    budget : float, optional
        Candidates whose burden exceeds it are infeasible (still reported; never the best);
        so are those whose burden is NaN (from a callable ``burden``), budget or not.
    candidates : int
        Sobol points for ranges (a power of two; checked, and unused by a grid-only space).
    horizon_days : float, optional
        Follow-up counted after withdrawal; default each schedule's own follow-up, which must
        then be the same for all candidates to compare them fairly (an error otherwise).
    threshold : "size_at_withdrawal" or float
        Recurrence threshold (cells, finite and >= 0), as for
        :func:`tolsim.time_to_recurrence`. Under the default, a parameter set whose burden
        grows from withdrawal on (tolerant cells regrowing under tamoxifen) recurs at once,
        0 days, whatever the schedule after withdrawal: give a threshold in cells to compare
        schedules by the regrowth to a size.
    eradication_day : float, optional
        Day by which the tolerant reservoir must be empty (``eradication_probability``).
    top : int
        How many of the best feasible candidates ``ranking`` lists.
    rtol : float
        Relative tolerance of the ODE solves (>= 1e-13).
    workers : int, optional
        Threads evaluating candidates; default the number of CPUs.
    progress : bool
        Show a progress bar (tqdm, on stderr) of the candidates evaluated.

    Returns
    -------
    xarray.Dataset
        Dim ``candidate``: each searched slot, ``benefit`` (units of the objective),
        ``burden``, ``feasible``, ``on_front`` (Pareto-optimal), ``n_failed`` (parameter sets
        whose solve failed; 0: every one solved, else ``benefit`` is NaN); ``best`` (index of
        the best feasible candidate, -1 if none); ``ranking`` (rank): the ``top`` best
        feasible candidates. Attributes record the objective, burden, budget, the best
        schedule (JSON), the template, the search space (a Sobol range as ``{"range": [low,
        high]}``, a grid as its list), ``candidates``, ``seed``, ``rtol``, model, parameters
        and tolsim version: enough to run it again.

    Examples
    --------
    >>> import tolsim
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> template = tolsim.design.inhibitor_course(tamoxifen_days=60.0, follow_up_days=120.0)
    >>> result = optimize_schedule(
    ...     model, model.default_params(), template,
    ...     {"inhibitor_start_day": [0.0, 30.0, 60.0], "inhibitor_days": [0.0, 14.0, 28.0]},
    ...     budget=14.0, threshold=1e6)
    >>> int(result.inhibitor_days[result.best]), bool(result.feasible[result.best])
    (14, True)
    """
    if not isinstance(model, Model):
        raise TypeError(f"`model` = {model!r}: expected a tolsim.models.Model")
    if not isinstance(template, ScheduleTemplate):
        raise TypeError(
            f"`template` = {template!r}: expected a tolsim.design.ScheduleTemplate (e.g. "
            "tolsim.design.inhibitor_course())"
        )
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` = {objective!r}: expected one of {list(OBJECTIVES)}")
    if objective == "eradication_probability" and not model.linear:
        raise ValueError(
            f"`objective` = 'eradication_probability' needs a linear model (exact branching "
            f"probabilities); {model.name} is not"
        )
    burden_of, burden_name, burden_unit = _burden_function(burden, model.drugs)
    if budget is not None and (
        isinstance(budget, bool | np.bool_) or not (isinstance(budget, Real) and budget >= 0)
    ):
        raise ValueError(f"`budget` = {budget!r}: expected a number >= 0 (or None)")
    check_threshold(threshold)
    rtol = check_rtol(rtol)
    if isinstance(top, bool | np.bool_) or not isinstance(top, Integral) or top < 1:
        raise ValueError(f"`top` = {top!r}: expected an integer >= 1")
    if workers is not None and (
        isinstance(workers, bool | np.bool_)
        or not isinstance(workers, int | np.integer)
        or workers < 1
    ):
        raise ValueError(f"`workers` = {workers!r}: expected an integer >= 1 (or None)")
    seed = check_seed(seed)
    if objective == "eradication_probability":  # options of the other objectives
        given = {
            "horizon_days": horizon_days,
            "threshold": None if threshold == "size_at_withdrawal" else threshold,
        }
        for name, value in given.items():
            if value is not None:
                raise ValueError(
                    f"`{name}` = {value!r} with `objective` = 'eradication_probability': it "
                    "applies to the recurrence objectives (eradication is judged on "
                    "`eradication_day`)"
                )
    if eradication_day is not None:
        if objective != "eradication_probability":
            raise ValueError(
                f"`eradication_day` = {eradication_day!r} with `objective` = {objective!r}: "
                "it applies to objective='eradication_probability'"
            )
        if (
            isinstance(eradication_day, bool | np.bool_)
            or not isinstance(eradication_day, Real)
            or not (math.isfinite(eradication_day) and eradication_day > 0)
        ):
            raise ValueError(
                f"`eradication_day` = {eradication_day!r}: expected a day > 0 within every "
                "candidate's schedule"
            )
        eradication_day = float(eradication_day)
    if isinstance(params, xr.DataArray | xr.Dataset):
        raise TypeError(
            f"`params` is an xarray {type(params).__name__}: expected a mapping of names to "
            "values or arrays, or a pandas.DataFrame (from predict's `parameter_value`: "
            "{name: draws.parameter_value.sel(parameter=name).values, ...}, with the fit's "
            "`model_params` for the rest)"
        )
    if isinstance(params, Mapping) and all(np.ndim(v) == 0 for v in params.values()):
        packed = model.pack(params, "params")[None]
    else:
        packed = model.pack_table(params, "params")
    columns = _candidates(template, space, candidates, seed)
    # (recorded before any work: a range's numpy numbers made json.dumps fail at the end)
    space_record = json.dumps(
        {
            k: {"range": [float(b) for b in v]} if isinstance(v, tuple) else np.asarray(v).tolist()
            for k, v in space.items()
        }
    )
    slots = list(columns)
    n = len(columns[slots[0]])
    schedules = []
    for i in range(n):
        row = {slot: float(columns[slot][i]) for slot in slots}
        try:
            schedules.append(template(**row))
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"candidate {i} ({row}) is not a valid schedule of template "
                f"{template.name!r}: {error}"
            ) from None
    withdrawal = np.empty(n)
    follow_up = np.empty(n)
    # burdens before the solves, so that a burden that cannot be computed fails first
    burdens = np.array([float(burden_of(s)) for s in schedules])
    for i, schedule in enumerate(schedules):
        try:
            withdrawal[i] = schedule.withdrawal_day("tamoxifen")
        except ValueError:
            if objective != "eradication_probability":
                raise ValueError(
                    f"candidate {i} never gives tamoxifen: recurrence is counted from its "
                    "withdrawal"
                ) from None
            withdrawal[i] = np.nan
        follow_up[i] = schedule.duration_days - withdrawal[i]
        if objective == "eradication_probability" and eradication_day is None:
            try:
                schedule.treatment_end_day()
            except ValueError as error:
                raise ValueError(
                    f"candidate {i} ({ {slot: float(columns[slot][i]) for slot in slots} }) "
                    f"has no end of treatment for `objective` = 'eradication_probability' "
                    f"({error}): pass eradication_day=, or leave drug-free candidates out of "
                    "`space`"
                ) from None
        if eradication_day is not None and eradication_day > schedule.duration_days:
            raise ValueError(
                f"`eradication_day` = {eradication_day!r}: after the end of candidate {i}'s "
                f"schedule (day {schedule.duration_days:g})"
            )
    if objective != "eradication_probability":
        if horizon_days is None:
            if np.ptp(follow_up) > 1e-9:
                raise ValueError(
                    "candidates have different follow-ups after withdrawal "
                    f"({follow_up.min():g}-{follow_up.max():g} days): pass horizon_days= "
                    "to compare them over the same days"
                )
            horizon_days = float(follow_up[0])
        if (
            isinstance(horizon_days, bool | np.bool_)
            or not isinstance(horizon_days, Real)
            or not math.isfinite(horizon_days)
        ):
            raise ValueError(f"`horizon_days` = {horizon_days!r}: expected a number of days")
        horizon_days = float(horizon_days)
        if not 0 < horizon_days <= follow_up.min():
            raise ValueError(
                f"`horizon_days` = {horizon_days!r}: expected days in (0, {follow_up.min():g}]"
                " (the shortest follow-up of a candidate)"
            )
    spec = {
        "times": None,
        "rtol": rtol,
        "atol": 1e-6,
        "max_steps": 100_000,
        "method": "auto",
        "outputs": "metrics",
        "recurrence_threshold": None if threshold == "size_at_withdrawal" else float(threshold),
    }
    table = None
    if objective == "eradication_probability":
        names = model.parameter_names
        table = {name: packed[:, k] for k, name in enumerate(names)}

    def evaluate(index_range) -> list[tuple[float, int, bool]]:
        import numba

        numba.set_num_threads(1)  # one candidate per thread: no nested thread start-up
        out = []
        for i in index_range:
            schedule = schedules[i]
            if objective == "eradication_probability":
                day = schedule.treatment_end_day() if eradication_day is None else eradication_day
                q = branching_extinction(
                    model, table, schedule, by_day=day, states=model.tolerant_states
                )["extinction_probability"].values
                out.append((float(np.mean(q)), 0, False))
                continue
            data = _evaluate(model, packed, schedule, spec)
            days = data["time_to_recurrence"]
            failed = int(np.sum(data["status"] != 0))
            if objective == "recurrence_free_days":
                value = float(np.mean(np.minimum(days, horizon_days)))
            else:
                value = float(np.mean(days > horizon_days))
            at_once = threshold == "size_at_withdrawal" and bool(np.all(days == 0.0))
            out.append((np.nan if failed else value, failed, at_once))
        return out

    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    blocks = np.array_split(np.arange(n), max(1, min(n, 8 * workers)))
    from tqdm import tqdm

    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=n, unit="candidate", desc="candidates", disable=not progress) as bar,
    ):
        futures = {pool.submit(evaluate, block): block.size for block in blocks}
        for done in as_completed(futures):  # the bar moves in this thread only
            bar.update(futures[done])
        results = [pair for future in futures for pair in future.result()]
    benefit = np.array([r[0] for r in results])
    failures = np.array([r[1] for r in results], dtype=np.int64)
    at_once = sum(r[2] for r in results)
    if at_once:
        warnings.warn(
            f"{at_once} of {n} candidates recur at once (0 days) for every parameter set: "
            "their burden grows from withdrawal on, never falling below its size there, so "
            "under threshold='size_at_withdrawal' they score 0 whatever follows withdrawal; "
            "pass a threshold in cells to compare their regrowth to a size",
            UserWarning,
            stacklevel=2,
        )
    feasible = np.isfinite(benefit) & (
        ~np.isnan(burdens) if budget is None else burdens <= budget + 1e-12
    )
    on_front = pareto_front(benefit, burdens)
    order = np.lexsort((np.arange(n), burdens, -np.where(feasible, benefit, -np.inf)))
    ranking = order[feasible[order]][:top]
    best = int(ranking[0]) if ranking.size else -1
    unit, long_name = OBJECTIVES[objective]
    data_vars = {
        slot: ("candidate", np.asarray(columns[slot], dtype=float), {"long_name": f"slot {slot}"})
        for slot in slots
    }
    data_vars.update(
        {
            "benefit": ("candidate", benefit, {"units": unit, "long_name": long_name}),
            "burden": (
                "candidate",
                burdens,
                {"units": burden_unit, "long_name": burden_name.replace("_", " ")},
            ),
            "feasible": ("candidate", feasible, {"long_name": "burden within the budget"}),
            "on_front": ("candidate", on_front, {"long_name": "on the Pareto front"}),
            "n_failed": ("candidate", failures, {"long_name": "parameter sets that failed"}),
            "best": ((), best, {"long_name": "index of the best feasible candidate"}),
            "ranking": ("rank", ranking, {"long_name": "best feasible candidates, best first"}),
        }
    )
    recorded_threshold = threshold if isinstance(threshold, str) else float(threshold)
    attrs = {
        "title": f"tolsim schedule optimisation with {model.name}",
        "objective": objective,
        "constraint": f"{burden_name} <= {budget:g}" if budget is not None else "none",
        "burden": burden_name,
        "budget": np.nan if budget is None else float(budget),
        "template": json.dumps(template.to_dict()),
        # a (low, high) range (Sobol points) and a list of values (a grid) read apart
        "space": space_record,
        "candidates": int(candidates),
        "rtol": rtol,
        "top": int(top),
        "model": json.dumps(model.describe()),
        "n_parameter_sets": int(packed.shape[0]),
        # (an option of the recurrence objectives: "none" for eradication, as horizon_days)
        "threshold": "none" if objective == "eradication_probability" else recorded_threshold,
        "horizon_days": "none" if horizon_days is None else horizon_days,
        "eradication_day": (
            "the end of each candidate's treatment" if eradication_day is None else eradication_day
        )
        if objective == "eradication_probability"
        else "none",
        "seed": seed,
        "tolsim_version": tolsim.__version__,
    }
    names = model.parameter_names
    values = packed[:, : len(names)]
    if packed.shape[0] == 1:
        attrs["params"] = json.dumps(dict(zip(names, values[0].tolist(), strict=True)))
    else:  # every parameter set the benefit averages over (e.g. posterior draws)
        data_vars["parameters"] = (
            ("parameter_set", "parameter"),
            values,
            {"units": json.dumps({p.name: p.unit for p in model.parameters})},
        )
    if best >= 0:
        attrs["best_schedule"] = json.dumps(schedules[best].to_dict())
    return xr.Dataset(
        data_vars,
        coords={"candidate": np.arange(n), "rank": np.arange(ranking.size)}
        | ({} if packed.shape[0] == 1 else {"parameter": list(names)}),
        attrs=attrs,
    )
