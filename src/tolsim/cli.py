"""The ``tolsim`` command: one subcommand per task, each driven by a TOML file.

=====================================================  ===========================================
``tolsim simulate RUN.toml --out run.nc``              :func:`tolsim.simulate` (ODE or paths)
``tolsim fit FIT.toml --out fit.nc``                   :func:`tolsim.fit`, profiles, posterior
``tolsim predict FIT.toml --schedule NEW.toml ...``    :func:`tolsim.predict` after the fit
``tolsim optimize OPT.toml --out opt.nc``              :func:`tolsim.optimize_schedule`
``tolsim sweep SWEEP.toml --store out.zarr``           :func:`tolsim.sweep` on a Dask cluster
``tolsim experiment NAME``                             ``experiments/NAME.py``'s ``main``
=====================================================  ===========================================

Every file is checked as a whole before anything runs (see the ``load_*`` functions for every
key); a mistake is reported naming its TOML key and value, with exit status 2 and no
traceback. The tables mean the same in every file: ``[model]`` (with ``[model.params]``) and
``[schedule]`` are read as in a sweep file.

Outputs are written only after the work succeeded, to a temporary name in the same folder
renamed at the end, so an error or an interrupt never leaves a half-written file; an existing
output is replaced only with ``--overwrite``. NetCDF files carry the TOML text they came from
(``config_toml``, ``config_file`` attrs). A figure's format follows its suffix (``.png`` or
``.svg``).

The sweep itself is :func:`tolsim.sweep`, called repeatedly with ``max_chunks`` on one Dask
cluster so that a progress bar can follow the chunks: each call computes a few pending chunks
and returns the store, whose ``chunk_done`` says how far the sweep is. Interrupting the
command loses at most the chunks in flight; ``--resume`` continues the same store.

Exit status: 0 success; 2 usage, validation or store errors (a message on stderr); 3 the
results were written but some solves failed (``tolsim simulate``, ``tolsim sweep``: their
``status`` and ``message`` say which; a warning on stderr counts them); 1 anything unexpected
(with its traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import inspect
import json
import logging
import math
import os
import runpy
import shutil
import sys
import textwrap
import threading
import time
import tomllib
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import tolsim
from tolsim import design as designs
from tolsim.cuda import CudaUnavailableError
from tolsim.data import Measurements, read_measurements
from tolsim.fit import BUILTIN_OBSERVABLES
from tolsim.models import Model, ThreeState, TwoState
from tolsim.models.tolerance import CROWDING_CODES
from tolsim.observe import Combined, LogNormal, Normal, Proportional
from tolsim.optimize import OBJECTIVES
from tolsim.predict import DEMOGRAPHIC, UNCERTAINTIES
from tolsim.recurrence import derivative_jumps, withdrawal_within
from tolsim.schedule import Schedule
from tolsim.simulate import METHODS as SIMULATE_METHODS
from tolsim.stochastic import STOCHASTIC_METHODS
from tolsim.sweep import _METHOD_CODES, DEFAULT_CHUNK, NOT_COMPUTED, StoreMismatchError, sweep

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = [
    "ConfigError",
    "FitConfig",
    "OptimizeConfig",
    "PredictConfig",
    "SimulateConfig",
    "SweepConfig",
    "load_fit",
    "load_optimize",
    "load_prediction",
    "load_simulate",
    "load_sweep",
    "main",
]

MODELS = {"TwoState": TwoState, "ThreeState": ThreeState}
DESIGN_KINDS = ("grid", "lhs", "sobol", "csv")
OUTPUT_KINDS = ("metrics", "trajectories", "both")
RECURRENCE_THRESHOLDS = ("size_at_withdrawal",)
NOISE_MODELS = {
    "normal": Normal,
    "lognormal": LogNormal,
    "proportional": Proportional,
    "combined": Combined,
}
TEMPLATES = {
    "inhibitor_course": designs.inhibitor_course,
    "intermittent_tamoxifen": designs.intermittent_tamoxifen,
}
NETCDF_SUFFIXES = (".nc", ".nc4")
FIGURE_SUFFIXES = (".png", ".svg")
CHUNKS_PER_WORKER_THREAD = 2  # chunks per progress step: keeps every worker busy between steps
SOLVES_FAILED = 3  # exit status: results written, some solves failed (status != 0)

_TABLES = {"model": True, "schedule": True, "design": True, "outputs": False, "run": False}
_DESIGN_KEYS = {
    "grid": (("values",), ()),
    "lhs": (("n", "seed", "ranges"), ()),
    "sobol": (("n", "seed", "ranges"), ()),
    "csv": (("path",), ()),
}
_RUN_DEFAULTS = {
    "chunk_size": DEFAULT_CHUNK,
    "method": "auto",
    "rtol": 1e-6,
    "atol": 1e-6,
    "max_steps": 100_000,
    "device": "cpu",
    "lockstep": False,
    "gpu_specialise": False,
}
# where a table someone may guess belongs instead
_TABLE_HINTS = {"params": "parameter values go in [model.params]"}


class ConfigError(ValueError):
    """A TOML (or data) file is unreadable or one of its keys has a wrong value."""


# --------------------------------------------------------------------------------------------
# the sweep file


@dataclass(frozen=True)
class SweepConfig:
    """A sweep file, checked and built: everything :func:`tolsim.sweep` needs but the store.

    Attributes
    ----------
    path : Path
        The TOML file.
    model : Model
    schedule : Schedule
    design : tolsim.design.Design
        The swept columns, then one constant column per fixed parameter of
        ``[model.params]``; its spec records the fixed values under ``"fixed_params"``.
    fixed_params : dict of str to float
        ``[model.params]``.
    outputs : {"metrics", "trajectories", "both"}
    times : tuple of float or None
        Days of the trajectory outputs (None for metrics only).
    recurrence_threshold : str or float
    chunk_size : int
    method : str
    rtol, atol : float
    max_steps : int
    device : {"cpu", "cuda"}
    lockstep : bool
        Groups of samples on shared steps (:func:`tolsim.sweep`'s ``lockstep``).
    gpu_specialise : bool
        With ``device = "cuda"``: the fixed parameters compiled into the GPU kernel
        (:func:`tolsim.sweep`'s ``gpu_specialise``).
    """

    path: Path
    model: Model
    schedule: Schedule
    design: designs.Design
    fixed_params: dict[str, float]
    outputs: str
    times: tuple[float, ...] | None
    recurrence_threshold: str | float
    chunk_size: int
    method: str
    rtol: float
    atol: float
    max_steps: int
    device: str = "cpu"
    lockstep: bool = False
    gpu_specialise: bool = False

    def sweep_kwargs(self, chunk_size: int | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`tolsim.sweep` other than the store, client and
        ``max_chunks`` (``chunk_size`` overrides the file's ``run.chunk_size``)."""
        return {
            "outputs": self.outputs,
            "times": None if self.times is None else list(self.times),
            "chunk_size": self.chunk_size if chunk_size is None else chunk_size,
            "method": self.method,
            "rtol": self.rtol,
            "atol": self.atol,
            "max_steps": self.max_steps,
            "recurrence_threshold": self.recurrence_threshold,
            "device": self.device,
            "lockstep": self.lockstep,
            "gpu_specialise": self.gpu_specialise,
        }


def load_sweep(path: str | os.PathLike[str]) -> SweepConfig:
    """Read, check and build a sweep file.

    The file has these tables (keys not listed are errors):

    ``[model]``
        ``name`` = ``"TwoState"`` | ``"ThreeState"``; ``crowding`` = ``"logistic"``
        (default) | ``"none"`` | ``"gompertz"``; ``[model.params]``: fixed values of
        parameters not swept (others keep their defaults).
    ``[schedule]``
        Either in-vitro phases as :meth:`Schedule.from_phases` takes them, ``phases = [{days =
        120, tamoxifen = 1.0}, {start_day = 120, stop_day = 148, inhibitor = 5.0}]`` with an
        optional ``duration_days``; or a table as :meth:`Schedule.to_toml` writes it
        (``duration_days``, ``phases`` with ``concentrations_um``, ``oral_doses``, ``pellets``),
        read by :meth:`Schedule.from_dict`. The second form is recognised by ``oral_doses``,
        ``pellets`` or a phase with ``concentrations_um``.
    ``[design]``
        ``kind`` = ``"grid"`` with ``[design.values]`` ``name = [v1, v2, ...]``;
        ``"lhs"`` or ``"sobol"`` with ``n``, ``seed`` and ``[design.ranges]``
        ``name = [low, high]`` or ``[low, high, "log"]``; ``"csv"`` with ``path`` (relative to
        the TOML file). Every column must be a parameter of the model.
    ``[outputs]`` (optional)
        ``kind`` = ``"metrics"`` (default) | ``"trajectories"`` | ``"both"``; ``times`` (days,
        increasing; required with trajectories); ``recurrence_threshold`` =
        ``"size_at_withdrawal"`` (default) or a number of cells.
    ``[run]`` (optional)
        ``chunk_size`` (10000), ``method`` (``"auto"``), ``rtol`` (1e-6), ``atol`` (1e-6),
        ``max_steps`` (100000), ``device`` (``"cpu"``, or ``"cuda"`` for GPUs), ``lockstep``
        (false; true: groups of samples on shared steps, see :func:`tolsim.sweep`),
        ``gpu_specialise`` (false; true with ``device = "cuda"``: the parameters the design
        does not vary compiled into the GPU kernel, see :func:`tolsim.sweep`).

    Fixed parameters become constant columns of the design, so that the store records them
    next to the swept ones and they enter the sweep's fingerprint (a store made with other
    fixed values is then refused on resume, never silently mixed).

    Parameters
    ----------
    path : path
        The TOML file.

    Returns
    -------
    SweepConfig

    Raises
    ------
    ConfigError
        Naming the file, the TOML key and its value.
    """
    path = Path(path)
    file = str(path)
    data, _ = _read_toml(path, "SWEEP.toml")
    _check_tables(data, file, _TABLES)

    model, fixed = _load_model(data["model"], file)
    schedule = _load_schedule(data["schedule"], model, file)
    design = _load_design(data["design"], model, fixed, path, file)
    outputs, times, threshold = _load_outputs(data["outputs"], schedule, file)
    run = _load_run(data["run"], file)
    return SweepConfig(
        path=path,
        model=model,
        schedule=schedule,
        design=design,
        fixed_params=fixed,
        outputs=outputs,
        times=times,
        recurrence_threshold=threshold,
        **run,
    )


def _listed(options: Sequence[str] | Mapping[str, Any]) -> str:
    return ", ".join(repr(option) for option in options)


def _check_keys(
    table: Mapping[str, Any], key: str, file: str, required: Sequence[str], optional: Sequence[str]
) -> None:
    allowed = (*required, *optional)
    for name in table:
        if name not in allowed:
            raise ConfigError(
                f"`{key}.{name}` in {file} is not a known key: [{key}] takes {_listed(allowed)}"
            )
    for name in required:
        if name not in table:
            raise ConfigError(f"[{key}] in {file} lacks the key `{key}.{name}`")


def _choice(value: Any, key: str, file: str, options: Sequence[str]) -> str:
    if value not in options or not isinstance(value, str):
        raise ConfigError(f"`{key}` = {value!r} in {file}: expected one of {_listed(options)}")
    return value


def _number(value: Any, key: str, file: str, what: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ConfigError(f"`{key}` = {value!r} in {file}: expected {what}")
    return float(value)


def _boolean(value: Any, key: str, file: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"`{key}` = {value!r} in {file}: expected true or false")
    return value


def _integer(value: Any, key: str, file: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ConfigError(f"`{key}` = {value!r} in {file}: expected an integer >= {low}")
    return int(value)


def _wrapped(key: str, file: str, error: Exception) -> ConfigError:
    """A library's own check, said about the TOML key it came from."""
    return ConfigError(f"`{key}` in {file}: {error}")


def _load_model(table: Mapping[str, Any], file: str) -> tuple[Model, dict[str, float]]:
    _check_keys(table, "model", file, ("name",), ("crowding", "params"))
    name = _choice(table["name"], "model.name", file, tuple(MODELS))
    crowding = _choice(
        table.get("crowding", "logistic"), "model.crowding", file, tuple(CROWDING_CODES)
    )
    model = MODELS[name](crowding=crowding)
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(
            f"`model.params` = {params!r} in {file}: expected a table [model.params] of "
            "parameter = value"
        )
    fixed = {}
    for parameter, value in params.items():
        key = f"model.params.{parameter}"
        if parameter not in model.parameter_names:
            raise ConfigError(
                f"`{key}` in {file}: {parameter!r} is not a parameter of model {name!r}; its "
                f"parameters are {_listed(model.parameter_names)}"
            )
        fixed[parameter] = _number(value, key, file)
    try:
        model.pack(fixed, "model.params")
    except (TypeError, ValueError) as error:
        raise _wrapped("model.params", file, error) from None
    return model, fixed


def _load_schedule(
    table: Mapping[str, Any], model: Model, file: str, key: str = "schedule"
) -> Schedule:
    phases = table.get("phases", [])
    as_written = (
        "oral_doses" in table
        or "pellets" in table
        or (
            isinstance(phases, list)
            and any(isinstance(p, dict) and "concentrations_um" in p for p in phases)
        )
    )
    try:
        if as_written:  # the form Schedule.to_toml writes
            schedule = Schedule.from_dict(table)
        else:
            _check_keys(table, key, file, ("phases",), ("duration_days",))
            schedule = Schedule.from_phases(phases, duration_days=table.get("duration_days"))
        schedule.compile(model.drugs)  # every drug given is one the model knows
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise _wrapped(key, file, error) from None
    return schedule


def _load_design(
    table: Mapping[str, Any],
    model: Model,
    fixed: Mapping[str, float],
    path: Path,
    file: str,
) -> designs.Design:
    if "kind" not in table:
        raise ConfigError(
            f"[design] in {file} lacks the key `design.kind`: expected one of "
            f"{_listed(DESIGN_KINDS)}"
        )
    kind = _choice(table["kind"], "design.kind", file, DESIGN_KINDS)
    required, optional = _DESIGN_KEYS[kind]
    _check_keys(table, "design", file, ("kind", *required), optional)

    def named_columns(names: Sequence[str], key: str) -> None:
        for name in names:
            if name not in model.parameter_names:
                raise ConfigError(
                    f"`{key}` in {file}: {name!r} is not a parameter of model "
                    f"{model.name!r}; its parameters are {_listed(model.parameter_names)}"
                )

    if kind == "grid":
        values = table["values"]
        if not isinstance(values, dict) or not values:
            raise ConfigError(
                f"`design.values` = {values!r} in {file}: expected a table [design.values] of "
                "parameter = [value, ...]"
            )
        for name in values:
            named_columns([name], f"design.values.{name}")
        try:
            design = designs.grid(**values)
        except (TypeError, ValueError) as error:
            raise _wrapped("design.values", file, error) from None
    elif kind in ("lhs", "sobol"):
        n = _integer(table["n"], "design.n", file, 1)
        seed = _integer(table["seed"], "design.seed", file, 0)
        ranges = table["ranges"]
        if not isinstance(ranges, dict) or not ranges:
            raise ConfigError(
                f"`design.ranges` = {ranges!r} in {file}: expected a table [design.ranges] of "
                'parameter = [low, high] or [low, high, "log"]'
            )
        for name, value in ranges.items():
            key = f"design.ranges.{name}"
            named_columns([name], key)
            try:
                designs._parse_ranges({name: value})
            except (TypeError, ValueError) as error:
                raise _wrapped(key, file, error) from None
        builder = designs.lhs if kind == "lhs" else designs.sobol
        try:
            design = builder(n, seed=seed, **ranges)
        except (TypeError, ValueError) as error:
            raise _wrapped("design.n" if kind == "sobol" else "design", file, error) from None
    else:
        source = table["path"]
        if not isinstance(source, str) or not source:
            raise ConfigError(f"`design.path` = {source!r} in {file}: expected a file path")
        csv_path = Path(source)
        if not csv_path.is_absolute():
            csv_path = path.parent / csv_path  # relative to the TOML file, not the cwd
        try:
            design = designs.from_csv(csv_path)
        except (OSError, TypeError, ValueError) as error:
            raise _wrapped("design.path", file, error) from None
        named_columns(design.names, f"design.path = {source!r}")

    both = [name for name in fixed if name in design.columns]
    if both:
        raise ConfigError(
            f"`model.params.{both[0]}` in {file}: {both[0]!r} is also swept by [design]; give "
            "each parameter in one place"
        )
    if fixed:
        n = len(design)
        columns = dict(design.columns)
        columns.update({name: np.full(n, value) for name, value in fixed.items()})
        design = designs.Design(columns, design.kind, {**design.spec, "fixed_params": fixed})
    try:
        model.pack_table(dict(design.columns), "design")  # bounds of every row, before running
    except (TypeError, ValueError) as error:
        raise _wrapped("design", file, error) from None
    return design


def _load_outputs(
    table: Mapping[str, Any], schedule: Schedule, file: str
) -> tuple[str, tuple[float, ...] | None, str | float]:
    _check_keys(table, "outputs", file, (), ("kind", "times", "recurrence_threshold"))
    kind = _choice(table.get("kind", "metrics"), "outputs.kind", file, OUTPUT_KINDS)
    times = None
    if kind == "metrics":
        if "times" in table:
            raise ConfigError(
                f"`outputs.times` in {file} is used only with `outputs.kind` = 'trajectories' "
                "or 'both' (the kind is 'metrics')"
            )
    else:
        if "times" not in table:
            raise ConfigError(
                f"[outputs] in {file} lacks the key `outputs.times`: `outputs.kind` = {kind!r} "
                "needs the days at which to store trajectories"
            )
        given = table["times"]
        duration = schedule.duration_days
        expected = f"a list of increasing days within [0, {duration:g}], the schedule"
        if not isinstance(given, list) or not given:
            raise ConfigError(f"`outputs.times` = {given!r} in {file}: expected {expected}")
        times = tuple(_number(t, "outputs.times", file, expected) for t in given)
        if any(b <= a for a, b in zip(times, times[1:], strict=False)) or not (
            0.0 <= times[0] and times[-1] <= duration
        ):
            raise ConfigError(f"`outputs.times` = {given!r} in {file}: expected {expected}")
    threshold = _recurrence_threshold(
        table.get("recurrence_threshold", "size_at_withdrawal"),
        "outputs.recurrence_threshold",
        file,
    )
    return kind, times, threshold


def _load_run(table: Mapping[str, Any], file: str) -> dict[str, Any]:
    _check_keys(table, "run", file, (), tuple(_RUN_DEFAULTS))
    run = {**_RUN_DEFAULTS, **table}
    run["chunk_size"] = _integer(run["chunk_size"], "run.chunk_size", file, 1)
    run["method"] = _choice(run["method"], "run.method", file, tuple(_METHOD_CODES))
    for name in ("rtol", "atol"):  # as in every other file
        run[name] = _tolerance(run[name], f"run.{name}", file)
    run["max_steps"] = _integer(run["max_steps"], "run.max_steps", file, 1)
    run["device"] = _choice(run["device"], "run.device", file, ("cpu", "cuda"))
    run["lockstep"] = _boolean(run["lockstep"], "run.lockstep", file)
    run["gpu_specialise"] = _boolean(run["gpu_specialise"], "run.gpu_specialise", file)
    if run["gpu_specialise"] and run["device"] != "cuda":
        raise ConfigError(
            f"`run.gpu_specialise` = true in {file} with `run.device` = {run['device']!r}: it "
            'applies to device = "cuda"'
        )
    return run


# --------------------------------------------------------------------------------------------
# helpers shared by every file


def _read_toml(path: Path, metavar: str) -> tuple[dict[str, Any], str]:
    """The parsed file and its text; a missing, unreadable or invalid file is a ConfigError
    (invalid TOML with tomllib's line and column)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"`{metavar}` = {file!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"`{metavar}` = {file!r} cannot be read: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file} is not valid TOML: {error}") from None
    return data, text


def _check_tables(data: dict[str, Any], file: str, tables: Mapping[str, bool]) -> None:
    """Every top-level key is one of ``tables`` and a table; required ones are present;
    missing optional ones become empty tables."""
    for key in data:
        if key not in tables:
            hint = f" ({_TABLE_HINTS[key]})" if key in _TABLE_HINTS else ""
            raise ConfigError(
                f"{file} has unknown table [{key}]: expected {_listed(tables)}{hint}"
            )
    for key, required in tables.items():
        if key not in data:
            if required:
                raise ConfigError(f"{file} lacks the table [{key}]")
            data[key] = {}
        elif not isinstance(data[key], dict):
            raise ConfigError(f"`{key}` = {data[key]!r} in {file}: expected a table [{key}]")


def _toml_key(table: str, name: str) -> str:
    """``table.name`` as TOML spells it: a name that is not a bare key (``"a.b"``) is quoted."""
    bare = name and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    return f"{table}.{name}" if bare else f'{table}."{name}"'


def _positive(value: Any, key: str, file: str, what: str = "a number > 0") -> float:
    number = _number(value, key, file, what)
    if number <= 0.0:
        raise ConfigError(f"`{key}` = {value!r} in {file}: expected {what}")
    return number


def _recurrence_threshold(value: Any, key: str, file: str) -> str | float:
    if isinstance(value, str):
        return _choice(value, key, file, RECURRENCE_THRESHOLDS)
    return _positive(value, key, file, "'size_at_withdrawal' or a number of cells > 0")


def _tolerance(value: Any, key: str, file: str) -> float:
    tolerance = _positive(value, key, file, "a tolerance > 0")
    if key.endswith("rtol") and not 1e-13 <= tolerance < 1.0:
        raise ConfigError(
            f"`{key}` = {value!r} in {file}: expected a relative tolerance in [1e-13, 1) "
            "(below 1e-13 round-off dominates; from 1 on no digit is asked for)"
        )
    return tolerance


def _table(value: Any, key: str, file: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"`{key}` = {value!r} in {file}: expected a table of {what}")
    return value


def _data_file(source: Any, key: str, path: Path, file: str) -> Path:
    """A file named by a TOML key, relative to the TOML file; it must exist."""
    if not isinstance(source, str) or not source:
        raise ConfigError(f"`{key}` = {source!r} in {file}: expected a file path")
    found = Path(source)
    if not found.is_absolute():
        found = path.parent / found  # relative to the TOML file, not the cwd
    if not found.is_file():
        raise ConfigError(f"`{key}` = {source!r} in {file}: no such file ({found})")
    return found


def _days(value: Any, key: str, file: str, low: float, high: float) -> np.ndarray:
    expected = f"a list of increasing days within [{low:g}, {high:g}]"
    if not isinstance(value, list) or not value:
        raise ConfigError(f"`{key}` = {value!r} in {file}: expected {expected}")
    days = np.array([_number(day, key, file, expected) for day in value])
    if np.any(np.diff(days) <= 0) or days[0] < low or days[-1] > high:
        raise ConfigError(f"`{key}` = {value!r} in {file}: expected {expected}")
    return days


def _params_table(
    value: Any, key: str, file: str, model: Model, base: Mapping[str, float]
) -> dict[str, float]:
    """A table of model parameter values (checked against the model's bounds, on top of
    ``base``)."""
    table = _table(value, key, file, "parameter = value")
    params = {}
    for name, number in table.items():
        if name not in model.parameter_names:
            raise ConfigError(
                f"`{_toml_key(key, name)}` in {file}: {name!r} is not a parameter of model "
                f"{model.name!r}; its parameters are {_listed(model.parameter_names)}"
            )
        params[name] = _number(number, _toml_key(key, name), file)
    try:
        model.pack({**base, **params}, key)
    except (TypeError, ValueError) as error:
        raise _wrapped(key, file, error) from None
    return params


# --------------------------------------------------------------------------------------------
# the simulation file

_SIMULATE_RUN = {"method": "auto", "rtol": 1e-6, "atol": 1e-6, "max_steps": 100_000}
_STOCHASTIC_KEYS = ("paths", "seed", "max_events", "threshold", "recurrence_threshold")


@dataclass(frozen=True)
class SimulateConfig:
    """A simulation file, checked and built: the arguments of :func:`tolsim.simulate`.

    Attributes
    ----------
    path : Path
    text : str
        The file's TOML text (recorded in the output).
    model : Model
    params : dict of str to float
        ``[model.params]``; other parameters keep their defaults.
    schedule : Schedule
    times : numpy.ndarray
        Output days.
    options : dict
        Keyword arguments of :func:`tolsim.simulate` from ``[run]``.
    """

    path: Path
    text: str
    model: Model
    params: dict[str, float]
    schedule: Schedule
    times: np.ndarray
    options: dict[str, Any]


def load_simulate(path: str | os.PathLike[str]) -> SimulateConfig:
    """Read, check and build a simulation file.

    ``[model]`` and ``[schedule]``
        As in a sweep file (:func:`load_sweep`); ``[model.params]`` sets parameter values.
    ``[times]`` (optional)
        ``step_days`` (default 1: daily from day 0, plus the schedule's last day, its
        tamoxifen withdrawal day and the days a drug level steps, so that recurrence read
        from the file is located as in a sweep) or ``days`` (a list of increasing days
        within the schedule, taken as given), not both.
    ``[run]`` (optional)
        ``method`` (``"auto"``; ``"dopri5"``, ``"rosenbrock"``, ``"exact"``, or the
        stochastic ``"ssa"``, ``"tau"``, ``"hybrid"``), ``rtol`` (1e-6), ``atol`` (1e-6),
        ``max_steps`` (100000), ``device`` (``"cpu"`` or ``"cuda"``), ``lockstep`` (false;
        see :func:`tolsim.simulate`). Stochastic methods
        only: ``seed`` (required), ``paths`` (1), ``max_events``, ``threshold`` (hybrid),
        ``recurrence_threshold``.

    Raises
    ------
    ConfigError
        Naming the file, the TOML key and its value.
    """
    path = Path(path)
    file = str(path)
    data, text = _read_toml(path, "RUN.toml")
    _check_tables(data, file, {"model": True, "schedule": True, "times": False, "run": False})
    model, params = _load_model(data["model"], file)
    schedule = _load_schedule(data["schedule"], model, file)
    times = _load_times(data["times"], schedule, file)
    options = _load_simulate_run(data["run"], file)
    return SimulateConfig(path, text, model, params, schedule, times, options)


def _load_times(table: Mapping[str, Any], schedule: Schedule, file: str) -> np.ndarray:
    _check_keys(table, "times", file, (), ("days", "step_days"))
    duration = schedule.duration_days
    if "days" in table:
        if "step_days" in table:
            raise ConfigError(
                f"[times] in {file}: give `times.days` or `times.step_days`, not both"
            )
        return _days(table["days"], "times.days", file, 0.0, duration)
    step = _positive(table.get("step_days", 1.0), "times.step_days", file, "days > 0")
    count = math.floor(duration / step * (1 + 1e-12))
    days = np.arange(count + 1) * step
    days = days[days < duration * (1 - 1e-12)]  # no near-duplicate of the last day
    # and the days recurrence is measured from or must not interpolate across (as the
    # library's recurrence metric grid): the withdrawal day and the drug-level steps
    steps = schedule.breakpoints()
    steps = steps[derivative_jumps(schedule, steps)]
    withdrawal = withdrawal_within(schedule)
    extra = steps if withdrawal is None else np.append(steps, withdrawal)
    return np.union1d(np.append(days, duration), extra)


def _load_simulate_run(table: Mapping[str, Any], file: str) -> dict[str, Any]:
    _check_keys(table, "run", file, (), (*_SIMULATE_RUN, "device", "lockstep", *_STOCHASTIC_KEYS))
    run = {**_SIMULATE_RUN, **table}
    method = _choice(run["method"], "run.method", file, SIMULATE_METHODS)
    options: dict[str, Any] = {
        "method": method,
        "rtol": _tolerance(run["rtol"], "run.rtol", file),
        "atol": _tolerance(run["atol"], "run.atol", file),
        "max_steps": _integer(run["max_steps"], "run.max_steps", file, 1),
    }
    if "device" in table:
        options["device"] = _choice(table["device"], "run.device", file, ("cpu", "cuda"))
        if options["device"] == "cuda" and method not in ("auto", "dopri5", "tau"):
            raise ConfigError(
                f"`run.device` = 'cuda' in {file}: the GPU runs `run.method` 'auto' or "
                f"'dopri5' (ODE) or 'tau' (paths), not {method!r}"
            )
    if "lockstep" in table:
        options["lockstep"] = _boolean(table["lockstep"], "run.lockstep", file)
    if method not in STOCHASTIC_METHODS:
        for name in _STOCHASTIC_KEYS:
            if name in table:
                raise ConfigError(
                    f"`run.{name}` in {file} applies to stochastic methods "
                    f"({_listed(STOCHASTIC_METHODS)}), not `run.method` = {method!r}"
                )
        return options
    for name in ("rtol", "atol", "max_steps"):
        if name in table:
            raise ConfigError(
                f"`run.{name}` in {file} applies to the ODE methods, not `run.method` = "
                f"{method!r} (whose budget is `run.max_events`)"
            )
        del options[name]
    if "seed" not in table:
        raise ConfigError(
            f"[run] in {file} lacks the key `run.seed`: `run.method` = {method!r} draws random "
            "paths"
        )
    options["seed"] = _integer(table["seed"], "run.seed", file, 0)
    options["paths"] = _integer(table.get("paths", 1), "run.paths", file, 1)
    if "max_events" in table:
        options["max_events"] = _integer(table["max_events"], "run.max_events", file, 1)
    if "threshold" in table:
        if method != "hybrid":
            raise ConfigError(
                f"`run.threshold` in {file} applies to `run.method` = 'hybrid', not {method!r}"
            )
        options["threshold"] = _positive(table["threshold"], "run.threshold", file, "cells > 0")
    if "recurrence_threshold" in table:
        options["recurrence_threshold"] = _recurrence_threshold(
            table["recurrence_threshold"], "run.recurrence_threshold", file
        )
    return options


# --------------------------------------------------------------------------------------------
# the fit file

_FIT_REQUIRED = ("free",)
_FIT_OPTIONAL = ("fixed", "bounds", "noise", "starts", "seed", "workers", "condition_params")
_PROFILE_DEFAULTS = {"level": 0.95, "points": 20}
_SAMPLE_DEFAULTS = {"steps": 2000, "seed": 0}


@dataclass(frozen=True)
class FitConfig:
    """A fit file, checked and built: the arguments of :func:`tolsim.fit` and of the
    profiles and posterior sampling it asks for.

    Attributes
    ----------
    path : Path
    text : str
    model : Model
    data_path : Path
        The measurement table (CSV or TSV).
    measurements : Measurements
    schedules : dict of str to Schedule
        One per condition of the data.
    free : tuple of str
    fixed : dict of str to float
        ``[model.params]`` and ``fit.fixed``.
    bounds : dict of str to (float, float)
    noise : dict of str to str
        Noise kind per observable (keys of :data:`NOISE_MODELS`).
    condition_params : dict
    starts, seed : int
    workers : int or None
    profile : dict or None
        ``[profile]`` (``level``, ``points``) if the file has the table.
    sample : dict or None
        ``[sample]`` (``steps``, ``walkers``, ``burn``, ``seed``) if the file has the table.
    """

    path: Path
    text: str
    model: Model
    data_path: Path
    measurements: Measurements
    schedules: dict[str, Schedule]
    free: tuple[str, ...]
    fixed: dict[str, float]
    bounds: dict[str, tuple[float, float]]
    noise: dict[str, str]
    condition_params: dict[str, dict[str, float]]
    starts: int
    seed: int
    workers: int | None = None
    profile: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`tolsim.fit` (model, data and schedules included)."""
        return {
            "model": self.model,
            "data": self.measurements,
            "schedules": dict(self.schedules),
            "free": list(self.free),
            "fixed": dict(self.fixed),
            "bounds": dict(self.bounds),
            "noise": {name: NOISE_MODELS[kind]() for name, kind in self.noise.items()},
            "condition_params": {k: dict(v) for k, v in self.condition_params.items()},
            "starts": self.starts,
            "seed": self.seed,
            "workers": self.workers,
        }


def load_fit(path: str | os.PathLike[str]) -> FitConfig:
    """Read, check and build a fit file (and its measurement table).

    ``[model]``
        As in a sweep file; ``[model.params]`` fixes model parameter values (for a free
        parameter: its first start).
    ``[data]``
        ``path``: the measurement table, CSV (TSV for ``.tsv``), relative to the TOML file,
        with tidy or PEtab columns as :func:`tolsim.read_measurements` reads them. Its
        observables must be built-in ones (``total_cells``, ``tumour_volume``, ...).
    ``[schedules.<condition>]``
        One schedule per condition of the data, each as a sweep file's ``[schedule]``.
    ``[fit]``
        ``free`` (list of parameter names: the model's, or ``"<observable>.<name>"`` for
        observable and noise parameters), ``fixed`` (table name = value), ``bounds`` (table
        name = [low, high], free parameters only), ``noise`` (``"normal"`` (default),
        ``"lognormal"``, ``"proportional"``, ``"combined"``, or a table observable = kind),
        ``starts`` (20), ``seed`` (0), ``workers``, ``condition_params`` (table condition =
        table of model parameter values).
    ``[profile]`` (optional)
        ``level`` (0.95), ``points`` (20): profile likelihoods are computed.
    ``[sample]`` (optional)
        ``steps`` (2000), ``walkers``, ``burn``, ``seed`` (0): posterior samples are drawn.

    Raises
    ------
    ConfigError
        Naming the file, the TOML key and its value (or the data file and its rows).
    """
    path = Path(path)
    file = str(path)
    data, text = _read_toml(path, "FIT.toml")
    present = set(data)
    _check_tables(
        data,
        file,
        {
            "model": True,
            "data": True,
            "schedules": True,
            "fit": True,
            "profile": False,
            "sample": False,
        },
    )
    model, model_params = _load_model(data["model"], file)
    data_path, measurements = _load_data(data["data"], path, file)
    schedules = _load_schedules(data["schedules"], model, measurements, file)
    fit = _load_fit_table(data["fit"], model, model_params, measurements, schedules, file)
    profile = _load_profile(data["profile"], file) if "profile" in present else None
    sample = None
    if "sample" in present:
        sample = _load_sample(data["sample"], len(fit["free"]), file)
    return FitConfig(
        path=path,
        text=text,
        model=model,
        data_path=data_path,
        measurements=measurements,
        schedules=schedules,
        profile=profile,
        sample=sample,
        **fit,
    )


def _load_data(table: Mapping[str, Any], path: Path, file: str) -> tuple[Path, Measurements]:
    _check_keys(table, "data", file, ("path",), ("ignore_columns",))
    data_path = _data_file(table["path"], "data.path", path, file)
    ignore = table.get("ignore_columns", [])
    if not isinstance(ignore, list) or not all(isinstance(name, str) for name in ignore):
        raise ConfigError(
            f"`data.ignore_columns` = {ignore!r} in {file}: expected a list of column names"
        )
    try:
        measurements = read_measurements(data_path, ignore=ignore)
    except (OSError, TypeError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise _wrapped("data.path", file, error) from None
    for observable in measurements.observables:
        if observable not in BUILTIN_OBSERVABLES:
            raise ConfigError(
                f"`data.path` = {table['path']!r} in {file}: observable {observable!r} is not "
                f"one the command line knows; expected {_listed(BUILTIN_OBSERVABLES)}"
            )
    return data_path, measurements


def _load_schedules(
    table: Mapping[str, Any], model: Model, measurements: Measurements, file: str
) -> dict[str, Schedule]:
    conditions = measurements.conditions
    schedules = {}
    for condition, value in table.items():
        key = _toml_key("schedules", condition)
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` = {value!r} in {file}: expected a table [{key}]")
        if condition not in conditions:
            raise ConfigError(
                f"`{key}` in {file}: the data have no condition {condition!r}; their conditions "
                f"are {_listed(conditions)}"
            )
        schedules[condition] = _load_schedule(value, model, file, key)
    for condition in conditions:
        key = _toml_key("schedules", condition)
        if condition not in schedules:
            raise ConfigError(
                f"[schedules] in {file} lacks the table [{key}]: the data have condition "
                f"{condition!r}"
            )
        last = float(measurements.for_condition(condition)["time"].max())
        end = schedules[condition].duration_days
        if last > end:
            raise ConfigError(
                f"`{key}` in {file}: condition {condition!r} has measurements up to day "
                f"{last:g}, after its schedule's end (day {end:g})"
            )
    return schedules


def _load_fit_table(
    table: Mapping[str, Any],
    model: Model,
    model_params: Mapping[str, float],
    measurements: Measurements,
    schedules: Mapping[str, Schedule],
    file: str,
) -> dict[str, Any]:
    _check_keys(table, "fit", file, _FIT_REQUIRED, _FIT_OPTIONAL)
    observables = measurements.observables

    given = table.get("noise", "normal")
    if isinstance(given, dict):
        noise = dict.fromkeys(observables, "normal")
        for observable, kind in given.items():
            key = _toml_key("fit.noise", observable)
            if observable not in observables:
                raise ConfigError(
                    f"`{key}` in {file}: the data have no observable {observable!r}; their "
                    f"observables are {_listed(observables)}"
                )
            noise[observable] = _choice(kind, key, file, tuple(NOISE_MODELS))
    elif isinstance(given, str):
        noise = dict.fromkeys(observables, _choice(given, "fit.noise", file, tuple(NOISE_MODELS)))
    else:
        raise ConfigError(
            f"`fit.noise` = {given!r} in {file}: expected one of {_listed(NOISE_MODELS)} or a "
            "table observable = kind"
        )
    values = measurements.table["value"].to_numpy()
    for observable, kind in noise.items():
        rows = (measurements.table["observable"] == observable).to_numpy()
        if kind == "lognormal" and np.any(values[rows] <= 0):
            raise ConfigError(
                f"`fit.noise` in {file}: 'lognormal' noise needs positive values, but "
                f"observable {observable!r} has values <= 0 in {measurements.source}"
            )

    catalogue = {p.name: p for p in model.parameters}
    for observable in observables:
        built = BUILTIN_OBSERVABLES[observable]()
        for p in built.fit_parameters(NOISE_MODELS[noise[observable]]()):
            catalogue[p.name] = p

    free = table["free"]
    if not isinstance(free, list) or not free:
        raise ConfigError(
            f"`fit.free` = {free!r} in {file}: expected a list of the parameter names to estimate"
        )
    for i, name in enumerate(free):
        if name not in catalogue:
            raise ConfigError(
                f"`fit.free[{i}]` = {name!r} in {file}: not a parameter of this fit; expected "
                f"one of {_listed(catalogue)}"
            )
        if name in free[:i]:
            raise ConfigError(f"`fit.free[{i}]` = {name!r} in {file}: named twice")

    fixed = dict(model_params)
    for name, value in _table(table.get("fixed", {}), "fit.fixed", file, "name = value").items():
        key = _toml_key("fit.fixed", name)
        if name not in catalogue:
            raise ConfigError(
                f"`{key}` in {file}: {name!r} is not a parameter of this fit; expected one of "
                f"{_listed(catalogue)}"
            )
        if name in model_params:
            raise ConfigError(
                f"`{key}` in {file}: {name!r} is also given in [model.params]; give each "
                "value in one place"
            )
        if name in free:
            raise ConfigError(
                f"`{key}` in {file}: {name!r} is also in `fit.free`; a fixed value is not "
                "estimated (a free parameter's start comes from [model.params] or `starts`)"
            )
        low, high = catalogue[name].bounds
        fixed[name] = _number(value, key, file)
        if not low <= fixed[name] <= high:
            raise ConfigError(
                f"`{key}` = {value!r} in {file}: expected a value within [{low:g}, {high:g}]"
            )

    bounds = {}
    for name, pair in _table(
        table.get("bounds", {}), "fit.bounds", file, "name = [low, high]"
    ).items():
        key = _toml_key("fit.bounds", name)
        if name not in free:
            raise ConfigError(
                f"`{key}` in {file}: bounds are for free parameters, and {name!r} is not in "
                "`fit.free`"
            )
        p = catalogue[name]
        floor = f"{p.bounds[0]:g} <= low" if p.bounds[0] > 0 else "0 < low"
        expected = f"[low, high] with {floor} < high <= {p.bounds[1]:g}"
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"`{key}` = {pair!r} in {file}: expected {expected}")
        low, high = (_number(v, key, file, expected) for v in pair)
        if not (0 < low < high and p.bounds[0] <= low and high <= p.bounds[1]):
            raise ConfigError(f"`{key}` = {pair!r} in {file}: expected {expected}")
        bounds[name] = (low, high)
    for i, name in enumerate(free):
        p = catalogue[name]
        low, high = max(p.bounds[0], p.default * 1e-2), min(p.bounds[1], p.default * 1e2)
        if name not in bounds and not (0 < low < high and math.isfinite(high)):
            raise ConfigError(
                f"`fit.free[{i}]` = {name!r} in {file}: its default search range, two decades "
                f"either side of its default {p.default:g}, is ({low:g}, {high:g}); a log10 "
                f"search needs 0 < low < high: give `{_toml_key('fit.bounds', name)}` = "
                "[low, high]"
            )

    condition_params = {}
    given = _table(
        table.get("condition_params", {}),
        "fit.condition_params",
        file,
        "condition = {parameter = value}",
    )
    for condition, overrides in given.items():
        key = _toml_key("fit.condition_params", condition)
        if condition not in schedules:
            raise ConfigError(
                f"`{key}` in {file}: no condition {condition!r}; the conditions are "
                f"{_listed(schedules)}"
            )
        condition_params[condition] = _params_table(overrides, key, file, model, model_params)

    workers = None
    if "workers" in table:
        workers = _integer(table["workers"], "fit.workers", file, 1)
    return {
        "free": tuple(free),
        "fixed": fixed,
        "bounds": bounds,
        "noise": noise,
        "condition_params": condition_params,
        "starts": _integer(table.get("starts", 20), "fit.starts", file, 1),
        "seed": _integer(table.get("seed", 0), "fit.seed", file, 0),
        "workers": workers,
    }


def _load_profile(table: Mapping[str, Any], file: str) -> dict[str, Any]:
    _check_keys(table, "profile", file, (), tuple(_PROFILE_DEFAULTS))
    level = _number(table.get("level", 0.95), "profile.level", file, "a level in (0, 1)")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"`profile.level` = {level!r} in {file}: expected a level in (0, 1)")
    return {"level": level, "points": _integer(table.get("points", 20), "profile.points", file, 3)}


def _load_sample(table: Mapping[str, Any], n_free: int, file: str) -> dict[str, Any]:
    _check_keys(table, "sample", file, (), ("steps", "walkers", "burn", "seed"))
    sample = {
        "steps": _integer(table.get("steps", 2000), "sample.steps", file, 1),
        "seed": _integer(table.get("seed", 0), "sample.seed", file, 0),
    }
    if "walkers" in table:
        sample["walkers"] = _integer(table["walkers"], "sample.walkers", file, 2 * n_free)
    if "burn" in table:
        sample["burn"] = _integer(table["burn"], "sample.burn", file, 0)
        if sample["burn"] >= sample["steps"]:
            raise ConfigError(
                f"`sample.burn` = {sample['burn']} in {file}: expected fewer than the "
                f"{sample['steps']} steps (`sample.steps`)"
            )
    return sample


# --------------------------------------------------------------------------------------------
# the prediction file

_PREDICT_KEYS = (
    "draws",
    "uncertainty",
    "demographic",
    "paths",
    "params",
    "threshold",
    "horizon_days",
    "eradication_day",
    "level",
    "quantiles",
    "seed",
    "rtol",
)


@dataclass(frozen=True)
class PredictConfig:
    """A prediction file (the new schedule and ``[predict]``), checked against its fit file.

    Attributes
    ----------
    path : Path
    text : str
    schedule : Schedule
    options : dict
        Keyword arguments of :func:`tolsim.predict` from ``[predict]``.
    """

    path: Path
    text: str
    schedule: Schedule
    options: dict[str, Any] = field(default_factory=dict)


def load_prediction(path: str | os.PathLike[str], fit: FitConfig) -> PredictConfig:
    """Read and check the file of ``tolsim predict --schedule``.

    ``[schedule]``
        The new schedule, as in a sweep file; it must give tamoxifen and follow up after its
        withdrawal.
    ``[predict]`` (optional)
        :func:`tolsim.predict`'s options: ``draws`` (500), ``uncertainty`` (``"laplace"``,
        ``"posterior"`` (then the fit file's ``[sample]`` settings), ``"none"``),
        ``demographic`` (``"auto"``, ``"branching"``, ``"paths"``, ``"none"``), ``paths``
        (100), ``threshold``, ``horizon_days``, ``eradication_day``, ``level`` (0.9),
        ``quantiles``, ``seed`` (0), ``rtol`` (1e-6), and ``[predict.params]``: model
        parameter values for the new schedule (not free ones).

    Raises
    ------
    ConfigError
        Naming the file, the TOML key and its value.
    """
    path = Path(path)
    file = str(path)
    data, text = _read_toml(path, "SCHEDULE.toml")
    _check_tables(data, file, {"schedule": True, "predict": False})
    model = fit.model
    schedule = _load_schedule(data["schedule"], model, file)
    duration = schedule.duration_days
    try:
        withdrawal = schedule.withdrawal_day("tamoxifen")
    except ValueError:
        raise ConfigError(
            f"`schedule` in {file}: the schedule never gives tamoxifen; recurrence is counted "
            "from its withdrawal"
        ) from None
    follow_up = duration - withdrawal
    if follow_up <= 0:
        raise ConfigError(
            f"`schedule` in {file}: tamoxifen is given until the schedule's end (day "
            f"{duration:g}); add days without it to follow recurrence"
        )

    table = data["predict"]
    _check_keys(table, "predict", file, (), _PREDICT_KEYS)
    options: dict[str, Any] = {
        "draws": _integer(table.get("draws", 500), "predict.draws", file, 1),
        "uncertainty": _choice(
            table.get("uncertainty", "laplace"), "predict.uncertainty", file, UNCERTAINTIES
        ),
        "demographic": _choice(
            table.get("demographic", "auto"), "predict.demographic", file, DEMOGRAPHIC
        ),
        "paths": (  # (checked below)
            _integer(table["paths"], "predict.paths", file, 1) if "paths" in table else None
        ),
        "threshold": _recurrence_threshold(
            table.get("threshold", "size_at_withdrawal"), "predict.threshold", file
        ),
        "seed": _integer(table.get("seed", 0), "predict.seed", file, 0),
        "rtol": _tolerance(table.get("rtol", 1e-6), "predict.rtol", file),
    }
    if "paths" in table and options["demographic"] in ("none", "branching"):
        raise ConfigError(
            f"`predict.paths` in {file} applies to `predict.demographic` = 'paths' (or "
            f"'auto'), not {options['demographic']!r}"
        )
    if options["demographic"] == "branching" and not model.linear:
        raise ConfigError(
            f"`predict.demographic` = 'branching' in {file}: exact branching needs a linear "
            f"model (`model.crowding` = 'none'); use 'paths'"
        )
    if "params" in table:
        base = {k: v for k, v in fit.fixed.items() if k in model.parameter_names}
        params = _params_table(table["params"], "predict.params", file, model, base)
        for name in params:
            if name in fit.free:
                raise ConfigError(
                    f"`predict.params.{name}` in {file}: {name!r} is free in the fit; its "
                    "values come from the fit's draws"
                )
        options["params"] = params
    if "horizon_days" in table:
        horizon = _positive(table["horizon_days"], "predict.horizon_days", file, "days > 0")
        if horizon > follow_up:
            raise ConfigError(
                f"`predict.horizon_days` = {horizon:g} in {file}: expected days after "
                f"withdrawal within the schedule's follow-up (0, {follow_up:g}]"
            )
        options["horizon_days"] = horizon
    if "eradication_day" in table:
        day = _positive(table["eradication_day"], "predict.eradication_day", file, "a day > 0")
        if day > duration:
            raise ConfigError(
                f"`predict.eradication_day` = {day:g} in {file}: expected a day within the "
                f"schedule (0, {duration:g}]"
            )
        options["eradication_day"] = day
    if "level" in table:
        level = _number(table["level"], "predict.level", file, "a level in (0, 1)")
        if not 0.0 < level < 1.0:
            raise ConfigError(f"`predict.level` = {level!r} in {file}: expected a level in (0, 1)")
        options["level"] = level
    if "quantiles" in table:
        given = table["quantiles"]
        expected = "a list of quantiles in (0, 1)"
        if not isinstance(given, list) or not given:
            raise ConfigError(f"`predict.quantiles` = {given!r} in {file}: expected {expected}")
        quantiles = [_number(q, "predict.quantiles", file, expected) for q in given]
        if not all(0.0 < q < 1.0 for q in quantiles):
            raise ConfigError(f"`predict.quantiles` = {given!r} in {file}: expected {expected}")
        options["quantiles"] = quantiles
    return PredictConfig(path, text, schedule, options)


# --------------------------------------------------------------------------------------------
# the optimisation file

_OPTIMIZE_KEYS = (
    "objective",
    "burden",
    "budget",
    "candidates",
    "horizon_days",
    "threshold",
    "eradication_day",
    "top",
    "seed",
    "rtol",
    "workers",
)


@dataclass(frozen=True)
class OptimizeConfig:
    """An optimisation file, checked and built: the arguments of
    :func:`tolsim.optimize_schedule`.

    Attributes
    ----------
    path : Path
    text : str
    model : Model
    params : dict of str to float
        ``[model.params]``.
    template : tolsim.design.ScheduleTemplate
        Built with the fixed values of ``[template]``.
    space : dict
        Slot -> list of values (a grid) or (low, high) (a Sobol range).
    options : dict
        Keyword arguments of :func:`tolsim.optimize_schedule` from ``[optimize]``.
    """

    path: Path
    text: str
    model: Model
    params: dict[str, float]
    template: designs.ScheduleTemplate
    space: dict[str, list[float] | tuple[float, float]]
    options: dict[str, Any]


def load_optimize(path: str | os.PathLike[str]) -> OptimizeConfig:
    """Read, check and build an optimisation file.

    ``[model]``
        As in a sweep file; ``[model.params]`` sets parameter values.
    ``[template]``
        ``name`` = ``"inhibitor_course"`` | ``"intermittent_tamoxifen"``, and fixed values of
        its keyword arguments (e.g. ``tamoxifen_days = 60``), which are also its slots.
    ``[space]``
        The searched slots: ``slot = [v1, v2, ...]`` (a grid) or ``slot = {low = a, high =
        b}`` (a scrambled Sobol sample of ``candidates`` points; crossed with any grid).
    ``[optimize]`` (optional)
        ``objective`` (``"recurrence_free_days"``, ``"no_recurrence_probability"``,
        ``"eradication_probability"``), ``burden`` (``"<drug>_days"`` or
        ``"<drug>_um_days"``, default ``"inhibitor_days"``), ``budget``, ``candidates``
        (Sobol points, a power of 2; 64), ``horizon_days``, ``threshold``,
        ``eradication_day``, ``top`` (10), ``seed`` (0), ``rtol`` (1e-6), ``workers``.

    Raises
    ------
    ConfigError
        Naming the file, the TOML key and its value.
    """
    path = Path(path)
    file = str(path)
    data, text = _read_toml(path, "OPT.toml")
    _check_tables(data, file, {"model": True, "template": True, "space": True, "optimize": False})
    model, params = _load_model(data["model"], file)
    template, fixed = _load_template(data["template"], file)
    space = _load_space(data["space"], template, fixed, file)
    options = _load_optimize_table(data["optimize"], model, space, file)
    _check_candidates(template, space, options, file)
    return OptimizeConfig(path, text, model, params, template, space, options)


def _load_template(
    table: Mapping[str, Any], file: str
) -> tuple[designs.ScheduleTemplate, dict[str, float]]:
    if "name" not in table:
        raise ConfigError(
            f"[template] in {file} lacks the key `template.name`: expected one of "
            f"{_listed(TEMPLATES)}"
        )
    name = _choice(table["name"], "template.name", file, tuple(TEMPLATES))
    factory = TEMPLATES[name]
    slots = tuple(inspect.signature(factory).parameters)
    _check_keys(table, "template", file, ("name",), slots)
    fixed = {
        slot: _number(value, f"template.{slot}", file)
        for slot, value in table.items()
        if slot != "name"
    }
    try:
        return factory(**fixed), fixed
    except (TypeError, ValueError) as error:
        raise _wrapped("template", file, error) from None


def _load_space(
    table: Mapping[str, Any],
    template: designs.ScheduleTemplate,
    fixed: Mapping[str, float],
    file: str,
) -> dict[str, list[float] | tuple[float, float]]:
    if not table:
        raise ConfigError(
            f"[space] in {file} is empty: expected slot = [values] or slot = {{low = ..., "
            f"high = ...}} for slots of {template.name!r}: {_listed(template.slots)}"
        )
    space: dict[str, list[float] | tuple[float, float]] = {}
    for slot, value in table.items():
        key = f"space.{slot}"
        if slot not in template.slots:
            raise ConfigError(
                f"`{key}` in {file}: {slot!r} is not a slot of template {template.name!r}; its "
                f"slots are {_listed(template.slots)}"
            )
        if slot in fixed:
            raise ConfigError(
                f"`template.{slot}` in {file}: {slot!r} is also searched by [space]; give each "
                "slot in one place"
            )
        if isinstance(value, list) and value:
            space[slot] = [_number(v, key, file, "a list of numbers") for v in value]
        elif isinstance(value, dict):
            _check_keys(value, key, file, ("low", "high"), ())
            low = _number(value["low"], f"{key}.low", file)
            high = _number(value["high"], f"{key}.high", file)
            if not low < high:
                raise ConfigError(f"`{key}` = {value!r} in {file}: expected low < high")
            space[slot] = (low, high)
        else:
            raise ConfigError(
                f"`{key}` = {value!r} in {file}: expected a list of values (a grid) or "
                "{low = ..., high = ...} (a Sobol range)"
            )
    return space


def _load_optimize_table(
    table: Mapping[str, Any], model: Model, space: Mapping[str, Any], file: str
) -> dict[str, Any]:
    _check_keys(table, "optimize", file, (), _OPTIMIZE_KEYS)
    objective = _choice(
        table.get("objective", "recurrence_free_days"), "optimize.objective", file, OBJECTIVES
    )
    if objective == "eradication_probability" and not model.linear:
        raise ConfigError(
            f"`optimize.objective` = 'eradication_probability' in {file}: exact branching "
            "probabilities need a linear model (`model.crowding` = 'none')"
        )
    burden = table.get("burden", "inhibitor_days")
    burdens = [f"{drug}_{kind}" for drug in model.drugs for kind in ("days", "um_days")]
    burden = _choice(burden, "optimize.burden", file, burdens)
    options: dict[str, Any] = {
        "objective": objective,
        "burden": burden,
        "threshold": _recurrence_threshold(
            table.get("threshold", "size_at_withdrawal"), "optimize.threshold", file
        ),
        "top": _integer(table.get("top", 10), "optimize.top", file, 1),
        "seed": _integer(table.get("seed", 0), "optimize.seed", file, 0),
        "rtol": _tolerance(table.get("rtol", 1e-6), "optimize.rtol", file),
        "candidates": 64,
    }
    if "budget" in table:
        budget = _number(table["budget"], "optimize.budget", file, "a number >= 0")
        if budget < 0:
            raise ConfigError(f"`optimize.budget` = {budget!r} in {file}: expected a number >= 0")
        options["budget"] = budget
    ranges = [slot for slot, value in space.items() if isinstance(value, tuple)]
    if "candidates" in table:
        if not ranges:
            raise ConfigError(
                f"`optimize.candidates` in {file} is the size of a Sobol sample over ranges, "
                "and [space] has none (only grids)"
            )
        candidates = _integer(table["candidates"], "optimize.candidates", file, 1)
        if candidates & (candidates - 1):
            raise ConfigError(
                f"`optimize.candidates` = {candidates} in {file}: expected a power of 2 (a "
                "balanced Sobol sample)"
            )
        options["candidates"] = candidates
    for key, default in (("horizon_days", None), ("threshold", "size_at_withdrawal")):
        given = key in table and table[key] != default
        if given and objective == "eradication_probability":  # (the API's rule)
            raise ConfigError(
                f"`optimize.{key}` in {file} applies to the recurrence objectives, not "
                "`optimize.objective` = 'eradication_probability' (judged on "
                "`optimize.eradication_day`)"
            )
    if "horizon_days" in table:
        options["horizon_days"] = _positive(
            table["horizon_days"], "optimize.horizon_days", file, "days > 0"
        )
    if "eradication_day" in table:
        if objective != "eradication_probability":
            raise ConfigError(
                f"`optimize.eradication_day` in {file} applies to `optimize.objective` = "
                f"'eradication_probability', not {objective!r}"
            )
        options["eradication_day"] = _positive(
            table["eradication_day"], "optimize.eradication_day", file, "a day > 0"
        )
    if "workers" in table:
        options["workers"] = _integer(table["workers"], "optimize.workers", file, 1)
    return options


def _check_candidates(
    template: designs.ScheduleTemplate,
    space: Mapping[str, Any],
    options: Mapping[str, Any],
    file: str,
) -> None:
    """Build every candidate schedule once, so that a bad one is reported before any work."""
    from tolsim.optimize import _candidates

    columns = _candidates(template, space, options["candidates"], options["seed"])
    follow_up = []
    n = len(next(iter(columns.values())))
    for i in range(n):
        row = {slot: float(values[i]) for slot, values in columns.items()}
        try:
            schedule = template(**row)
        except (TypeError, ValueError) as error:
            shown = ", ".join(f"{slot} = {value:g}" for slot, value in row.items())
            raise ConfigError(
                f"`space` in {file}: candidate {i} ({shown}) is not a valid schedule of "
                f"{template.name!r}: {error}"
            ) from None
        if options["objective"] == "eradication_probability":
            continue
        try:
            follow_up.append(schedule.duration_days - schedule.withdrawal_day("tamoxifen"))
        except ValueError:
            shown = ", ".join(f"{slot} = {value:g}" for slot, value in row.items())
            raise ConfigError(
                f"`space` in {file}: candidate {i} ({shown}) never gives tamoxifen; recurrence "
                "is counted from its withdrawal"
            ) from None
    if not follow_up:
        return
    shortest = min(follow_up)
    if "horizon_days" not in options and max(follow_up) - shortest > 1e-9:
        raise ConfigError(
            f"[optimize] in {file} lacks the key `optimize.horizon_days`: the candidates follow "
            f"up {shortest:g}-{max(follow_up):g} days after withdrawal; give the days over "
            "which to compare them"
        )
    if options.get("horizon_days", shortest) > shortest:
        raise ConfigError(
            f"`optimize.horizon_days` = {options['horizon_days']:g} in {file}: expected days "
            f"within the shortest follow-up of a candidate ({shortest:g})"
        )


# --------------------------------------------------------------------------------------------
# the command


class _UsageError(Exception):
    """An error of the command line, an output or a store: exit status 2, message only."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0")
    return value


_RUN_HELP = """\
RUN.toml (tables [model], [schedule], optional [times] and [run]):

  [model]
  name = "TwoState"            # or "ThreeState"
  crowding = "logistic"        # or "none", "gompertz"
  [model.params]               # parameter values; others keep their defaults
  K = 1e7
  [schedule]                   # in-vitro phases, or a table as Schedule.to_toml writes
  phases = [{ days = 120, tamoxifen = 1.0 }, { days = 240 }]
  [times]                      # output days: step_days (default 1) or days = [...]
  step_days = 1.0
  [run]                        # method, rtol, atol, max_steps, device, lockstep; for "ssa",
  method = "auto"              # "tau", "hybrid" also seed (required), paths,
                               # max_events, threshold, recurrence_threshold

Writes FILE.nc: the Dataset of tolsim.simulate (states, N, tolerant_fraction,
exposures, solver status; dims time and, for paths, path), with the TOML text in
its attrs; a failed solve is recorded there (status, message), reported, and the
command exits with status 3.
"""

_SWEEP_HELP = """\
SWEEP.toml (tables [model], [schedule], [design], optional [outputs] and [run];
experiments/sweep_inhibitor.toml is a complete example):

  [model]
  name = "TwoState"            # or "ThreeState"; crowding = "logistic" | "none" | ...
  [model.params]               # fixed values, stored as constant design columns
  K = 1e7
  [schedule]                   # in-vitro phases, or a table as Schedule.to_toml writes
  duration_days = 360
  phases = [{ days = 120, tamoxifen = 1.0 },
            { start_day = 120, stop_day = 148, inhibitor = 5.0 }]
  [design]                     # kind = "grid" ([design.values] name = [v1, v2, ...]),
  kind = "lhs"                 # "lhs" or "sobol" (n, seed, [design.ranges]), or
  n = 4096                     # "csv" (path, relative to SWEEP.toml); every column a
  seed = 1                     # parameter of the model
  [design.ranges]              # name = [low, high] or [low, high, "log"]
  kappa_T = [0.0, 0.6]
  mu_E = [1e-5, 1e-2, "log"]
  [outputs]                    # kind = "metrics" (default) | "trajectories" | "both";
  kind = "metrics"             # times = [...] (days) with trajectories;
                               # recurrence_threshold = "size_at_withdrawal" or cells
  [run]                        # chunk_size (10000), method ("auto"), rtol, atol,
  chunk_size = 1024            # max_steps, device ("cpu" | "cuda"), lockstep,
                               # gpu_specialise

Writes the Zarr store: per sample the design columns and, for metrics,
time_to_recurrence (days after withdrawal), burden_at_withdrawal,
tolerant_fraction_at_withdrawal, nadir_cells, nadir_day and status (trajectories:
the states and N at `times`); per chunk chunk_done; the model, schedule, settings,
fingerprint and tolsim version in its attrs. Read it with
xarray.open_zarr(PATH, consolidated=False).
"""

_FIT_HELP = """\
FIT.toml (tables [model], [data], [schedules.<condition>], [fit], optional
[profile] and [sample]):

  [model]
  name = "TwoState"
  crowding = "none"
  [data]
  path = "measurements.csv"    # relative to FIT.toml; columns condition,
                               # observable, time, value (replicate, sigma,
                               # censored, left_censored optional; PEtab
                               # names accepted)
  ignore_columns = ["sd"]      # optional: columns whose names read as censoring,
                               # limits, units or noise, to ignore all the same
  [schedules.control]          # one schedule per condition of the data
  phases = [{ days = 28 }]
  [schedules.tamoxifen]
  phases = [{ days = 28, tamoxifen = 1.0 }]
  [fit]
  free = ["lambda_S", "eps_S"]           # model or "<observable>.<name>" parameters
  fixed = { "total_cells.sigma" = 0.1 }  # values of parameters not estimated
  bounds = { eps_S = [0.1, 1.0] }        # search box of free parameters
  noise = "lognormal"          # normal (default), lognormal, proportional,
                               # combined; or { observable = kind }
  starts = 20                  # multi-start local optimisations (Sobol starts)
  seed = 0
  [profile]                    # optional (or --profile): level, points
  [sample]                     # optional (or --sample STEPS): steps, walkers,
                               # burn, seed

Writes FILE.nc, a NetCDF file with groups: / (best values per free parameter,
nllh, AIC, AICc, BIC, converged; the TOML text in attrs), /starts (every
start), /predictions (per measurement: observed, predicted, residual) and, if
asked, /profiles and /posterior. Read a group with
xarray.open_dataset(FILE, group="predictions"), or all with xarray.open_datatree.
The figure shows the fit against the data, the multi-start waterfall and the
profiles.
"""

_PREDICT_HELP = """\
FIT.toml is a fit file (see `tolsim fit --help`); its fit is run again (the
same data, starts and seed give the same best fit) before predicting.

SCHEDULE.toml (tables [schedule], optional [predict]):

  [schedule]                   # the new schedule: it must give tamoxifen and
  phases = [{ days = 60, tamoxifen = 1.0 }, { days = 120 }]   # follow up after it
  [predict]                    # options of tolsim.predict:
  draws = 500                  # parameter draws (--draws overrides)
  uncertainty = "laplace"      # or "posterior" (FIT.toml's [sample]), "none"
  demographic = "auto"         # or "branching", "paths", "none"
  threshold = 1e7              # cells, or "size_at_withdrawal" (default)
  seed = 0                     # (--seed overrides)
  # also: paths, horizon_days, eradication_day, level, quantiles, rtol,
  # and [predict.params]: model parameter values for the new schedule

Writes FILE.nc: the Dataset of tolsim.predict (per draw: parameters, time to
recurrence; quantiles and interval of the time to recurrence, the
recurrence-free curve, probabilities, the N band), with both TOML texts in its
attrs. The figure shows the N band and the recurrence-free curve.
"""

_OPTIMIZE_HELP = """\
OPT.toml (tables [model], [template], [space], optional [optimize]):

  [model]
  name = "TwoState"
  [model.params]
  K = 1e7
  [template]
  name = "inhibitor_course"    # or "intermittent_tamoxifen"
  tamoxifen_days = 120         # fixed values of template slots
  follow_up_days = 240
  [space]                      # searched slots:
  inhibitor_start_day = [0, 60, 120]         # a list: a grid
  inhibitor_days = { low = 0, high = 56 }    # a range: a Sobol sample
  [optimize]
  objective = "recurrence_free_days"  # or "no_recurrence_probability",
                                      # "eradication_probability"
  burden = "inhibitor_days"    # "<drug>_days" or "<drug>_um_days"
  budget = 28                  # the most burden allowed
  candidates = 64              # Sobol points (a power of 2)
  threshold = 1e7              # cells, or "size_at_withdrawal" (default)
  # also: horizon_days, eradication_day, top, seed, rtol, workers

Writes FILE.nc: the Dataset of tolsim.optimize_schedule (per candidate: slots,
benefit, burden, feasible, on_front; best, ranking; the best schedule in attrs),
with the TOML text in its attrs, and prints the best schedule. The figure is the
trade-off of burden and benefit with the Pareto front.
"""

_EXPERIMENT_HELP = """\
An experiment is a script DIR/NAME.py with a main() function (DIR is --path,
by default ./experiments). A main(argv=None) is called with the arguments;
otherwise the script runs as `python DIR/NAME.py ARGS` would. The arguments are
--out DIR, --quick if given, and every ARG after `--`.

Outputs go to --out (default results/NAME), which must be empty or new unless
--overwrite is given; if the experiment fails, what it wrote to a new or empty
folder is removed.
"""


def _paragraph(text: str) -> str:
    """``text`` wrapped for a help page (descriptions are printed as written)."""
    return textwrap.fill(text, 79)


def _output_options(command: argparse.ArgumentParser, writes: str) -> None:
    command.add_argument("--out", required=True, metavar="FILE.nc", help=f"NetCDF file: {writes}")
    command.add_argument(
        "--figure",
        metavar="FIGURE",
        help="figure to write, FILE.png or FILE.svg (the suffix sets the format)",
    )
    command.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files (without it, an existing file is an error)",
    )
    command.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``tolsim`` argument parser (one subcommand per task)."""
    parser = argparse.ArgumentParser(
        prog="tolsim",
        description=(
            "Simulate sensitive and NF-kB-high tamoxifen-tolerant cancer cell populations "
            "under dosing schedules, fit them to data, predict recurrence and search "
            "schedules. Each command reads a TOML file; `tolsim COMMAND --help` shows its "
            "tables."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tolsim {tolsim.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    run = commands.add_parser(
        "simulate",
        help="simulate one parameter set under a schedule (ODE or stochastic paths)",
        description=_paragraph(
            "Simulate the model of RUN.toml under its schedule with tolsim.simulate."
        ),
        epilog=_RUN_HELP,
        formatter_class=raw,
    )
    run.add_argument("config", metavar="RUN.toml", help="the simulation file")
    _output_options(run, "the simulation")
    run.set_defaults(handler=_simulate_command)

    run = commands.add_parser(
        "fit",
        help="fit a model to measurements (multi-start), with profiles and posterior",
        description=_paragraph(
            "Fit the model of FIT.toml to its measurement table with tolsim.fit (multi-start "
            "maximum likelihood), optionally with profile likelihoods (--profile) and "
            "posterior samples (--sample STEPS)."
        ),
        epilog=_FIT_HELP,
        formatter_class=raw,
    )
    run.add_argument("config", metavar="FIT.toml", help="the fit file")
    _output_options(run, "the fit (groups /, /starts, /predictions, /profiles, /posterior)")
    run.add_argument(
        "--profile",
        action="store_true",
        help="compute profile likelihoods of every free parameter (settings: [profile])",
    )
    run.add_argument(
        "--sample",
        type=_positive_int,
        metavar="STEPS",
        help="draw posterior samples with STEPS emcee steps (settings: [sample])",
    )
    run.set_defaults(handler=_fit_command)

    run = commands.add_parser(
        "predict",
        help="predict recurrence under a new schedule with the uncertainty of a fit",
        description=_paragraph(
            "Fit the model of FIT.toml, then predict recurrence after tamoxifen withdrawal "
            "under the schedule of SCHEDULE.toml with tolsim.predict (parameter draws and "
            "demographic noise)."
        ),
        epilog=_PREDICT_HELP,
        formatter_class=raw,
    )
    run.add_argument("config", metavar="FIT.toml", help="the fit file")
    run.add_argument(
        "--schedule",
        required=True,
        metavar="SCHEDULE.toml",
        help="the new schedule ([schedule]) and prediction options ([predict])",
    )
    _output_options(run, "the prediction")
    run.add_argument(
        "--draws", type=_positive_int, metavar="N", help="parameter draws (`predict.draws`)"
    )
    run.add_argument("--seed", type=_seed, metavar="S", help="seed of draws (`predict.seed`)")
    run.set_defaults(handler=_predict_command)

    run = commands.add_parser(
        "optimize",
        help="search a schedule template for the best benefit under a drug budget",
        description=_paragraph(
            "Search the schedule template of OPT.toml over [space] with "
            "tolsim.optimize_schedule and print the best schedule within the budget."
        ),
        epilog=_OPTIMIZE_HELP,
        formatter_class=raw,
    )
    run.add_argument("config", metavar="OPT.toml", help="the optimisation file")
    _output_options(run, "every candidate, the best and the Pareto front")
    run.set_defaults(handler=_optimize_command)

    run = commands.add_parser(
        "sweep",
        help="run a parameter sweep described by a TOML file into a Zarr store",
        epilog=_SWEEP_HELP,
        formatter_class=raw,
        description=(
            "Run the parameter sweep of SWEEP.toml ([model], [schedule], [design], [outputs], "
            "[run]) on a Dask cluster, chunk by chunk into a Zarr store. An interrupted sweep "
            "loses at most the chunks in flight: run the same command with --resume."
        ),
    )
    run.add_argument("config", metavar="SWEEP.toml", help="the sweep file")
    run.add_argument("--store", required=True, metavar="PATH", help="Zarr store to write")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an existing store of the same sweep (without it, an existing store is "
        "an error; with it, a store that does not exist yet is started)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a running Dask scheduler (e.g. tcp://host:8786); by default a local "
        "cluster is started for the sweep and closed after it",
    )
    run.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="single-threaded worker processes of the local cluster (default: one per core)",
    )
    run.add_argument(
        "--chunk-size",
        type=_positive_int,
        metavar="N",
        help="samples per task and Zarr chunk (default: `run.chunk_size` of the file; with "
        "--resume, the store's)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_sweep_command)

    run = commands.add_parser(
        "experiment",
        help="run one of the experiment scripts (experiments/NAME.py), or list them",
        usage=(
            "tolsim experiment [-h] [--list] [--path DIR] [--out DIR] [--quick] [--overwrite] "
            "[NAME] [-- ARG ...]"
        ),
        description=_paragraph(
            "Run the experiment script NAME.py of --path, or list them with --list."
        ),
        epilog=_EXPERIMENT_HELP,
        formatter_class=raw,
    )
    run.add_argument("name", nargs="?", metavar="NAME", help="the experiment (see --list)")
    run.add_argument("--list", action="store_true", help="list the experiments and exit")
    run.add_argument(
        "--path",
        default="experiments",
        metavar="DIR",
        help="folder of the experiment scripts (default: ./experiments)",
    )
    run.add_argument("--out", metavar="DIR", help="output folder (default: results/NAME)")
    run.add_argument("--quick", action="store_true", help="the experiment's quick mode")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="let the experiment write into a folder that is not empty",
    )
    run.set_defaults(handler=_experiment_command)

    run = commands.add_parser(
        "info",
        help="print versions, threads, GPU and kernel cache (for bug reports)",
        description=_paragraph("Print what tolsim.show_versions() prints."),
    )
    run.add_argument(
        "--no-cuda", action="store_true", help="do not look for a GPU (loads no CUDA driver)"
    )
    run.set_defaults(handler=_info_command)

    run = commands.add_parser(
        "cache",
        help="list the compiled kernel copies in the kernel cache, or clear it",
        description=_paragraph(
            "List the per-model kernel copies in tolsim's kernel cache ($TOLSIM_CACHE_DIR, "
            "default ~/.cache/tolsim): template, size with numba's cache files, and when "
            "each was written. --clear deletes them; each kernel compiles again on its next "
            "call. Clear it while no tolsim process is running."
        ),
    )
    run.add_argument("--clear", action="store_true", help="delete every kernel copy")
    run.set_defaults(handler=_cache_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tolsim`` command; return its exit status.

    ``--help``, ``--version`` and malformed command lines end in :class:`SystemExit` from
    :mod:`argparse` (status 0, or 2 for a usage error), as for any command.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    passed: list[str] = []
    if "--" in argv and "experiment" in argv[: argv.index("--")]:
        # after `--`: the experiment's own arguments (argparse would take them for options)
        argv, passed = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args = parser.parse_args(argv)
    if args.command == "experiment":
        args.args = passed
    if args.command == "sweep" and args.scheduler is not None and args.workers is not None:
        parser.error("--workers sizes the local cluster: it cannot be used with --scheduler")
    try:
        return args.handler(args)
    except (ConfigError, StoreMismatchError, _UsageError) as error:
        print(f"tolsim {args.command}: error: {error}", file=sys.stderr)
        return 2
    except CudaUnavailableError as error:  # `device = "cuda"` where no GPU can run it
        where = getattr(args, "config", "the file")
        print(
            f"tolsim {args.command}: error: `run.device` = 'cuda' in {where}: {error}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        if args.command == "sweep":
            what = "finished chunks are kept in the store: run the same command with --resume"
            print(f"tolsim sweep: interrupted; {what} to continue", file=sys.stderr)
        elif args.command == "experiment":
            print("tolsim experiment: interrupted", file=sys.stderr)
        else:
            print(f"tolsim {args.command}: interrupted; no output was written", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"tolsim {args.command}: unexpected error (above)", file=sys.stderr)
        return 1


def _info_command(args) -> int:
    from tolsim.info import show_versions

    show_versions(cuda=not args.no_cuda)
    return 0


def _cache_command(args) -> int:
    import datetime

    from tolsim.kernels.specialise import cache_dir, cached_copies, clear_cache

    if args.clear:
        n_copies, n_bytes = clear_cache()
        print(f"removed {n_copies} kernel copies ({n_bytes / 1e6:.1f} MB) from {cache_dir()}")
        return 0
    copies = cached_copies()
    total = sum(copy["bytes"] for copy in copies)
    print(f"{cache_dir()}: {len(copies)} kernel copies, {total / 1e6:.1f} MB")
    for copy in copies:
        written = datetime.datetime.fromtimestamp(copy["written"]).isoformat(timespec="seconds")
        print(f"  {written}  {copy['bytes'] / 1e6:7.2f} MB  {copy['name']}")
    return 0


# --------------------------------------------------------------------------------------------
# outputs, progress and warnings


@dataclass(frozen=True)
class _Outputs:
    """A command's NetCDF file and optional figure: checked before any work, written together
    at the end under temporary names in their folders, then renamed into place."""

    netcdf: Path
    figure: Path | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _Outputs:
        netcdf = Path(args.out)
        figure = None if args.figure is None else Path(args.figure)
        if netcdf.suffix.lower() not in NETCDF_SUFFIXES:
            raise _UsageError(
                f"`--out` = {args.out!r}: expected a NetCDF file name ending in "
                f"{' or '.join(NETCDF_SUFFIXES)}"
            )
        if figure is not None and figure.suffix.lower() not in FIGURE_SUFFIXES:
            raise _UsageError(
                f"`--figure` = {args.figure!r}: expected a file name ending in "
                f"{' or '.join(FIGURE_SUFFIXES)} (the suffix sets the format)"
            )
        for option, target in (("--out", netcdf), ("--figure", figure)):
            if target is None:
                continue
            if not target.parent.is_dir():
                raise _UsageError(
                    f"`{option}` = {str(target)!r}: no such folder {str(target.parent)!r}"
                )
            if target.is_dir():
                raise _UsageError(f"`{option}` = {str(target)!r} is a folder: expected a file")
            if target.exists() and not args.overwrite:
                raise _UsageError(
                    f"`{option}` = {str(target)!r} exists; pass --overwrite to replace it"
                )
        return cls(netcdf, figure)

    def write(self, data: Any, draw: Callable[[Figure], None]) -> list[str]:
        """Write ``data`` (a Dataset or DataTree) and, with a figure, what ``draw`` draws on
        a new matplotlib Figure; an error while writing or drawing leaves both targets as
        they were."""
        parts: list[tuple[Path, Path]] = []
        try:
            part = self._part(self.netcdf)
            parts.append((part, self.netcdf))
            if hasattr(data, "children"):  # a DataTree: each group readable alone, with names
                data.to_netcdf(part, engine="netcdf4", write_inherited_coords=True)
            else:
                data.to_netcdf(part, engine="netcdf4")
            if self.figure is not None:
                from matplotlib.figure import Figure

                figure = Figure(layout="constrained")
                draw(figure)
                part = self._part(self.figure)
                parts.append((part, self.figure))
                figure.savefig(part, format=self.figure.suffix[1:].lower(), dpi=120)
            for part, target in parts:
                os.replace(part, target)
        except BaseException:
            for part, _ in parts:
                part.unlink(missing_ok=True)
            raise
        return [str(target) for _, target in parts]

    @staticmethod
    def _part(target: Path) -> Path:
        return target.with_name(f".{target.name}.{os.getpid()}.part")


@contextlib.contextmanager
def _working(description: str, disable: bool) -> Iterator[None]:
    """A progress line for work that reports no progress of its own: what is being done and
    a clock, refreshed twice a second (tqdm, on stderr)."""
    from tqdm import tqdm

    bar = tqdm(desc=description, bar_format="{desc}: {elapsed}", disable=disable)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    if not disable:
        ticker.start()
    try:
        yield
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
        bar.close()


class _Collected(logging.Handler):
    """Keeps the messages of log records, each on one line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


@contextlib.contextmanager
def _reported_warnings(command: str) -> Iterator[None]:
    """The library's warnings (non-convergence, failed draws...) and emcee's logged ones
    (a chain too short for its autocorrelation time) as the command's own lines on stderr,
    each once, rather than Python warnings with source lines."""
    handler = _Collected()
    emcee_logger = logging.getLogger("emcee")
    propagate = emcee_logger.propagate
    emcee_logger.addHandler(handler)
    emcee_logger.propagate = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            emcee_logger.removeHandler(handler)
            emcee_logger.propagate = propagate
            texts = [str(warning.message) for warning in caught] + handler.messages
            for text in dict.fromkeys(texts):
                print(f"tolsim {command}: warning: {text}", file=sys.stderr)


def _record(ds: Any, path: Path, text: str, prefix: str = "") -> None:
    """Record the TOML file a result came from in its attrs."""
    ds.attrs[f"{prefix}config_file"] = str(path)
    ds.attrs[f"{prefix}config_toml"] = text


# --------------------------------------------------------------------------------------------
# tolsim simulate


def _simulate_command(args: argparse.Namespace) -> int:
    config = load_simulate(args.config)
    outputs = _Outputs.from_args(args)
    started = time.perf_counter()
    with _reported_warnings("simulate"):
        try:
            ds = tolsim.simulate(
                config.model,
                config.params,
                config.schedule,
                config.times,
                throw=False,
                **config.options,
            )
        except (TypeError, ValueError, MemoryError) as error:
            key = "model.params" if str(error).startswith("`params.") else "run"
            raise _wrapped(key, str(config.path), error) from None
    wall = time.perf_counter() - started
    _record(ds, config.path, config.text)
    status = ds["status"].values
    failed = int(np.count_nonzero(status != 0))
    if failed:
        first = ds["message"].values[status != 0].ravel()[0]
        print(
            f"tolsim simulate: warning: {failed} of {status.size} solve(s) failed ({first}); "
            "see `status` and `message` in the output",
            file=sys.stderr,
        )
    written = outputs.write(ds, lambda figure: _draw_simulation(figure, ds, config))
    n = np.asarray(ds["N"].isel(time=-1).values, dtype=float)
    end = float(np.median(n[n >= 0])) if np.any(n >= 0) else math.nan
    print(
        f"tolsim simulate: {config.model.name} ({config.options['method']}) to day "
        f"{config.times[-1]:g} in {wall:.1f} s; N = {end:.4g} cells at the end"
        f"{' (median over paths)' if 'paths' in config.options else ''}; wrote "
        f"{', '.join(written)}"
    )
    return SOLVES_FAILED if failed else 0


def _draw_simulation(figure: Figure, ds: xr.Dataset, config: SimulateConfig) -> None:
    from tolsim import plot

    ax = figure.add_subplot()
    plot.trajectories(ds, ax, states=True)
    ax.legend(fontsize="small")
    ax.set_title(f"{config.model.name}, {config.options['method']}", fontsize="medium")
    figure.set_size_inches(7.0, 4.5)


# --------------------------------------------------------------------------------------------
# tolsim fit and tolsim predict


def _fit_command(args: argparse.Namespace) -> int:
    config = load_fit(args.config)
    profile = config.profile
    if args.profile and profile is None:
        profile = dict(_PROFILE_DEFAULTS)
    sample = config.sample
    if args.sample is not None:
        sample = {**(sample or _SAMPLE_DEFAULTS), "steps": args.sample}
    if sample is not None and sample.get("burn", 0) >= sample["steps"]:
        raise _UsageError(
            f"`sample.burn` = {sample['burn']} in {config.path} discards every one of the "
            f"{sample['steps']} steps (--sample or `sample.steps`)"
        )
    outputs = _Outputs.from_args(args)
    progress = not args.no_progress
    with _reported_warnings("fit"):
        result = _run_fit(config, progress)
        profiles = None if profile is None else _run_profiles(result, profile, progress)
        posterior = None if sample is None else _run_sample(result, sample, progress)
    tree = _fit_tree(config, result, profiles, posterior)
    written = outputs.write(tree, lambda figure: _draw_fit(figure, result, profiles))
    print(result.summary())
    print(f"tolsim fit: wrote {', '.join(written)}")
    return 0


def _run_fit(config: FitConfig, progress: bool):
    try:
        return tolsim.fit(**config.fit_kwargs(), progress=progress)
    except RuntimeError as error:
        raise _UsageError(f"the fit of {config.path} failed: {error}") from None
    except (TypeError, ValueError) as error:
        raise _wrapped("fit", str(config.path), error) from None


def _run_profiles(result, settings: Mapping[str, Any], progress: bool) -> xr.Dataset:
    """:meth:`FitResult.profile` parameter by parameter (the same profiles, with a bar): the
    result keeps them together, as profiles at one level add up."""
    from tqdm import tqdm

    with tqdm(
        total=len(result.free), unit="parameter", desc="profiles", disable=not progress
    ) as bar:
        for name in result.free:
            bar.set_postfix_str(name)
            result.profile([name], **settings)
            bar.update()
    return result.profiles


def _run_sample(result, settings: Mapping[str, Any], progress: bool) -> xr.Dataset:
    with _working(f"posterior ({settings['steps']} steps)", disable=not progress):
        return result.sample(**settings)


def _fit_tree(config: FitConfig, result, profiles, posterior):
    """:meth:`FitResult.to_datatree`, its root recording the fit file too (data path, noise
    settings, starts, seed and the TOML text)."""
    if profiles is not None:
        result.profiles = profiles
    tree = result.to_datatree(posterior)
    root = tree.to_dataset(inherit=False)
    root.attrs.update(
        data=str(config.data_path),
        noise=json.dumps(config.noise),
        starts=config.starts,
        seed=config.seed,
    )
    _record(root, config.path, config.text)
    tree.dataset = root
    return tree


def _draw_fit(figure: Figure, result, profiles) -> None:
    from tolsim import plot

    predictions = result.predictions
    kinds = predictions["observable"].values
    observables = list(dict.fromkeys(kinds.tolist()))
    top = len(observables) + 1
    bottom = 0 if profiles is None else len(result.free)
    columns, rows = max(top, bottom), 2 if bottom else 1
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, observable in zip(axes[0], observables, strict=False):
        plot.fit(predictions, ax, observable=observable)  # (log where every value is > 0)
        ax.legend(fontsize="small")
    plot.waterfall(result.starts, axes[0][len(observables)])
    if bottom:
        plot.profiles(profiles, axes[1][:bottom])
    for ax in [*axes[0][top:], *(axes[1][bottom:] if bottom else [])]:
        ax.set_visible(False)
    figure.set_size_inches(4.2 * columns, 3.4 * rows)


def _predict_command(args: argparse.Namespace) -> int:
    fit_config = load_fit(args.config)
    config = load_prediction(args.schedule, fit_config)
    options = dict(config.options)
    if args.draws is not None:
        options["draws"] = args.draws
    if args.seed is not None:
        options["seed"] = args.seed
    outputs = _Outputs.from_args(args)
    progress = not args.no_progress
    with _reported_warnings("predict"):
        result = _run_fit(fit_config, progress)
        if options["uncertainty"] == "posterior":
            sample = fit_config.sample or dict(_SAMPLE_DEFAULTS)
            options["posterior"] = _run_sample(result, sample, progress)
        draws = 1 if options["uncertainty"] == "none" else options["draws"]
        with _working(f"prediction ({draws} draws)", disable=not progress):
            try:
                prediction = result.predict(config.schedule, **options)
            except (TypeError, ValueError) as error:
                raise _wrapped("predict", str(config.path), error) from None
            except RuntimeError as error:
                raise _UsageError(f"the prediction of {config.path} failed: {error}") from None
    _record(prediction, config.path, config.text)
    _record(prediction, fit_config.path, fit_config.text, prefix="fit_")
    written = outputs.write(prediction, lambda figure: _draw_prediction(figure, prediction))
    low, high = prediction["time_to_recurrence_interval"].values
    level = prediction.attrs["level"]
    median = float(prediction["time_to_recurrence_quantiles"].sel(quantile=0.5, method="nearest"))
    print(
        f"tolsim predict: recurrence {median:.4g} days after withdrawal (median; "
        f"{level:.0%} interval {low:.4g}-{high:.4g}); no recurrence within "
        f"{prediction.attrs['horizon_days']:g} days: "
        f"{float(prediction['probability_no_recurrence']):.3g}; wrote {', '.join(written)}"
    )
    return 0


def _draw_prediction(figure: Figure, prediction: xr.Dataset) -> None:
    from tolsim import plot

    band, curve = figure.subplots(1, 2)
    plot.drug_shading(prediction, band)
    quantile = prediction["quantile"].values
    cells = prediction["N_quantiles"].transpose("quantile", "time").values
    days = prediction["time"].values
    low, high = int(np.argmin(quantile)), int(np.argmax(quantile))
    band.fill_between(
        days,
        cells[low],
        cells[high],
        color="C0",
        alpha=0.25,
        lw=0,
        label=f"N, quantiles {quantile[low]:g}-{quantile[high]:g}",
    )
    middle = np.flatnonzero(np.isclose(quantile, 0.5))
    if middle.size:
        band.plot(days, cells[middle[0]], color="C0", label="N, median")
    band.set_yscale("log")
    band.set_xlabel("time (days)")
    band.set_ylabel("cells")
    band.legend(fontsize="small")
    plot.recurrence_free(prediction, curve)
    figure.set_size_inches(10.0, 4.0)


# --------------------------------------------------------------------------------------------
# tolsim optimize


def _optimize_command(args: argparse.Namespace) -> int:
    config = load_optimize(args.config)
    outputs = _Outputs.from_args(args)
    with _reported_warnings("optimize"):
        try:
            result = tolsim.optimize_schedule(
                config.model,
                config.params,
                config.template,
                config.space,
                progress=not args.no_progress,
                **config.options,
            )
        except (TypeError, ValueError) as error:
            raise _wrapped("optimize", str(config.path), error) from None
    _record(result, config.path, config.text)
    written = outputs.write(result, lambda figure: _draw_tradeoff(figure, result))
    n, best = result.sizes["candidate"], int(result["best"])
    constraint = result.attrs["constraint"]
    constraint = "no budget" if constraint == "none" else constraint
    if best < 0:
        print(f"tolsim optimize: none of {n} candidates is feasible ({constraint})")
    else:
        slots = ", ".join(f"{slot} = {float(result[slot][best]):g}" for slot in config.space)

        def quantity(name: str) -> str:
            value = result[name]
            unit = value.attrs.get("units", "")
            return f"{float(value[best]):.4g}" + (f" {unit}" if unit not in ("", "1") else "")

        print(
            f"tolsim optimize: best of {n} candidates: {slots}; {result.attrs['objective']} "
            f"{quantity('benefit')}, {result.attrs['burden']} {quantity('burden')} "
            f"({constraint})"
        )
        print(Schedule.from_json(result.attrs["best_schedule"]).describe())
    print(f"tolsim optimize: wrote {', '.join(written)}")
    return 0


def _draw_tradeoff(figure: Figure, result: xr.Dataset) -> None:
    from tolsim import plot

    ax = figure.add_subplot()
    plot.tradeoff(result, ax)
    ax.legend(fontsize="small")
    figure.set_size_inches(6.0, 4.5)


# --------------------------------------------------------------------------------------------
# tolsim experiment


@dataclass(frozen=True)
class _Experiment:
    path: Path
    summary: str
    takes_argv: bool  # main(argv=None); otherwise the script parses sys.argv itself


def _experiments(folder: Path) -> dict[str, _Experiment]:
    """The scripts of ``folder`` with a top-level ``main`` function, read without running
    them."""
    found = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        main_ = next(
            (
                node
                for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name == "main"
            ),
            None,
        )
        if main_ is None:
            continue
        doc = (ast.get_docstring(tree) or "").strip()
        positional = [*main_.args.posonlyargs, *main_.args.args]
        takes_argv = len(positional) == 1 and len(main_.args.defaults) == 1
        summary = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, one line
        found[path.stem] = _Experiment(path, summary, takes_argv)
    return found


def _experiment_command(args: argparse.Namespace) -> int:
    folder = Path(args.path)
    if not folder.is_dir():
        raise _UsageError(
            f"`--path` = {args.path!r}: no such folder (run from the repository root, or pass "
            "--path)"
        )
    found = _experiments(folder)
    if args.list:
        width = max((len(name) for name in found), default=0)
        for name, experiment in found.items():
            print(f"{name:<{width}}  {experiment.summary}")
        return 0
    if args.name is None:
        raise _UsageError("name an experiment, or pass --list to see them")
    if args.name not in found:
        raise _UsageError(
            f"`NAME` = {args.name!r}: no experiment of that name in {str(folder)!r}; expected "
            f"one of {_listed(found)}"
        )
    out = Path("results") / args.name if args.out is None else Path(args.out)
    if out.exists() and not out.is_dir():
        raise _UsageError(f"`--out` = {str(out)!r} is a file: expected a folder")
    was_empty = not out.exists() or not any(out.iterdir())
    if not was_empty and not args.overwrite:
        raise _UsageError(
            f"`--out` = {str(out)!r} is not empty; pass --overwrite to let the experiment "
            "replace its files there"
        )
    created = not out.exists()
    argv = ["--out", str(out), *(["--quick"] if args.quick else []), *args.args]
    started = time.perf_counter()
    status = None
    try:
        status = _run_experiment(args.name, found[args.name], argv)
    finally:
        if status != 0 and was_empty and out.is_dir():  # leave no half-written results
            if created:
                shutil.rmtree(out, ignore_errors=True)
            else:
                for entry in out.iterdir():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
    if status != 0:
        raise _UsageError(f"experiment {args.name!r} exited with status {status} (above)")
    print(
        f"tolsim experiment: {args.name} finished in {time.perf_counter() - started:.1f} s; "
        f"outputs in {out}"
    )
    return 0


def _run_experiment(name: str, experiment: _Experiment, argv: list[str]) -> int:
    """Run an experiment with ``argv``; its exit status (0 when it returns)."""
    folder = str(experiment.path.parent)
    sys.path.insert(0, folder)  # as `python NAME.py` would: it may import its neighbours
    module_name = f"tolsim_experiment_{name}"
    saved_argv = sys.argv
    try:
        if experiment.takes_argv:
            spec = importlib.util.spec_from_file_location(module_name, experiment.path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # dataclasses look their module up there
            spec.loader.exec_module(module)
            module.main(argv)
        else:
            sys.argv = [str(experiment.path), *argv]
            runpy.run_path(str(experiment.path), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    finally:
        sys.argv = saved_argv
        sys.modules.pop(module_name, None)
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return 0


# --------------------------------------------------------------------------------------------
# tolsim sweep


def _sweep_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    config = load_sweep(args.config)
    store = Path(args.store)
    chunk_size = args.chunk_size
    if not store.parent.is_dir():  # as --out: a typo must not make a store somewhere else
        raise _UsageError(f"`--store` = {str(store)!r}: no such folder {str(store.parent)!r}")
    if store.exists() and not store.is_dir():
        raise _UsageError(
            f"`--store` = {str(store)!r} is a file, not a Zarr store (a folder): give another path"
        )
    if store.exists():
        # without --resume only a store with no chunk computed may be taken up again (one
        # this command created before its cluster failed, say): it is never deleted, since
        # another run may be computing into it
        if _chunks_done(store) is None:
            _stored_chunk_size(store)  # not a sweep store (an empty folder, say): says so
        if not args.resume and _chunks_done(store) != 0:
            raise _UsageError(
                f"`--store` = {str(store)!r}: store exists; pass --resume to continue it"
            )
        stored = _stored_chunk_size(store)  # also: is it a store at all?
        if chunk_size is None:
            chunk_size = stored
    kwargs = config.sweep_kwargs(chunk_size)
    started = time.perf_counter()
    try:  # create the store, or check that it holds this sweep: no cluster needed yet
        ds = sweep(
            config.model, config.design, config.schedule, store=store, max_chunks=0, **kwargs
        )
    except StoreMismatchError:
        raise
    except (TypeError, ValueError) as error:
        raise _UsageError(f"{args.config}: {error}") from None
    n_chunks = ds.sizes["chunk"]
    done = before = int(ds["chunk_done"].values.sum())
    if done < n_chunks:
        client, cluster = _connect(args)  # a failure leaves the store: the same command resumes
        try:
            threads = sum(client.nthreads().values()) or 1
            step = CHUNKS_PER_WORKER_THREAD * threads
            with tqdm(
                total=n_chunks,
                initial=done,
                unit="chunk",
                desc=f"sweep {store.name}",
                disable=args.no_progress,
            ) as bar:
                while done < n_chunks:
                    ds = sweep(
                        config.model,
                        config.design,
                        config.schedule,
                        store=store,
                        client=client,
                        max_chunks=step,
                        **kwargs,
                    )
                    now = int(ds["chunk_done"].values.sum())
                    if now <= done:
                        raise RuntimeError(
                            f"no chunk of {store} finished in a pass over {step} pending chunks"
                        )
                    bar.update(now - done)
                    done = now
        except KeyboardInterrupt:
            if cluster is not None:  # our workers: their teardown is not news to the user
                _quiet(client)
            raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    wall = time.perf_counter() - started
    print(
        f"tolsim sweep: {ds.sizes['sample']} samples, {done}/{n_chunks} chunks done "
        f"({done - before} computed now) in {wall:.1f} s; store {store}"
    )
    return _report_failed_samples(ds, store)


def _report_failed_samples(ds: xr.Dataset, store: Path) -> int:
    """Warn about the samples of a sweep store whose solve failed (``status`` != 0, counted
    chunk by chunk: the store may not fit in memory); the command's exit status."""
    failed, first, unwritten = 0, None, 0
    status = ds["status"]
    size = int(ds.attrs.get("chunk_size") or status.sizes["sample"])
    for start in range(0, status.sizes["sample"], size):
        values = np.asarray(status.isel(sample=slice(start, start + size)).values)
        bad = np.flatnonzero((values != 0) & (values != NOT_COMPUTED))
        if first is None and bad.size:
            first = (start + int(bad[0]), int(values[bad[0]]))
        failed += int(bad.size)
        if bool(ds["chunk_done"].values[start // size]):
            unwritten += int(np.count_nonzero(values == NOT_COMPUTED))
    if unwritten:  # every chunk is done here: a marker set without its data (an edit?)
        print(
            f"tolsim sweep: warning: {unwritten} samples of chunks marked done in {store} were "
            "never written (status -99): set those chunks' `chunk_done` to false and run "
            "again with --resume",
            file=sys.stderr,
        )
    if first is None:
        return SOLVES_FAILED if unwritten else 0
    meaning = json.loads(status.attrs.get("flag_meanings", "{}")).get(str(first[1]), "")
    print(
        f"tolsim sweep: warning: {failed} of {status.sizes['sample']} samples failed (the "
        f"first: sample {first[0]}, status {first[1]}{': ' if meaning else ''}{meaning}); "
        f"see `status` in {store}",
        file=sys.stderr,
    )
    return SOLVES_FAILED


def _chunks_done(store: Path) -> int | None:
    """How many chunks of an existing sweep store are done (None: not readable as one)."""
    import zarr

    try:
        return int(np.count_nonzero(zarr.open_array(str(store / "chunk_done"), mode="r")[:]))
    except Exception:  # zarr raises several kinds for a path that is no store
        return None


def _stored_chunk_size(store: Path) -> int | None:
    """The chunk size an existing store was written with (None if it does not say)."""
    import zarr

    try:
        attrs = zarr.open_group(str(store), mode="r").attrs
    except Exception as error:  # zarr raises several kinds for a path that is no store
        raise _UsageError(
            f"`--store` = {str(store)!r} exists but is not a tolsim sweep store ({error})"
        ) from None
    value = attrs.get("chunk_size")
    return int(value) if isinstance(value, int) and value >= 1 else None


def _silence_distributed() -> None:
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _quiet(client) -> None:
    """Silence the logs of distributed in a local cluster's workers and scheduler before it
    is closed on Ctrl-C (cancelled tasks and closed connections are logged as errors)."""
    with contextlib.suppress(Exception):
        client.run(_silence_distributed, wait=True)
    _silence_distributed()  # the scheduler of a LocalCluster runs in this process


class _CancelledGather(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for the gather that Ctrl-C
    cancels in a Dask client (``distributed.client.AllExit``): the command reports the
    interruption itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            error = getattr(record, "exception", None)  # asyncio's context, by some paths
        return type(error).__name__ != "AllExit"


def _connect(args: argparse.Namespace):
    """A client of ``--scheduler``, or of a new local cluster (returned too, to close it)."""
    from distributed import Client, LocalCluster

    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _CancelledGather) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(_CancelledGather())  # for the process: the task may be
        # collected after the command has returned

    if args.scheduler is not None:
        try:
            return Client(args.scheduler, timeout="30s"), None
        except OSError as error:
            raise _UsageError(
                f"`--scheduler` = {args.scheduler!r}: cannot connect ({error})"
            ) from None
    import signal

    # Ctrl-C in a terminal reaches the workers too, which print tracebacks as they die: they
    # start with SIGINT ignored (an ignored signal stays ignored across exec, and Python then
    # installs no KeyboardInterrupt handler), and this process closes them. A Ctrl-C during
    # the few seconds of start-up is ignored here too.
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cluster = LocalCluster(
            n_workers=args.workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # without a dashboard the scheduler still serves /health on HTTP, by default on
            # port 8787, and warns when another cluster holds it: take any free local port
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
    finally:
        signal.signal(signal.SIGINT, handler)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


if __name__ == "__main__":
    sys.exit(main())
