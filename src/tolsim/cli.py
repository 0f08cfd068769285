"""The ``tolsim`` command: ``tolsim sweep SWEEP.toml --store out.zarr`` and friends.

A sweep is described by a TOML file with the tables ``[model]``, ``[schedule]``, ``[design]``
and, optionally, ``[outputs]`` and ``[run]`` (see :func:`load_sweep` for every key). The file
is checked as a whole before anything runs; a mistake is reported naming its TOML key and
value, with exit status 2 and no traceback.

The sweep itself is :func:`tolsim.sweep`, called repeatedly with ``max_chunks`` on one Dask
cluster so that a progress bar can follow the chunks: each call computes a few pending chunks
and returns the store, whose ``chunk_done`` says how far the sweep is. Interrupting the
command loses at most the chunks in flight; ``--resume`` continues the same store.

Exit status: 0 success; 2 usage, validation or store errors (a message on stderr); 1 anything
unexpected (with its traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tomllib
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

import tolsim
from tolsim import design as designs
from tolsim.models import Model, ThreeState, TwoState
from tolsim.models.tolerance import CROWDING_CODES
from tolsim.schedule import Schedule
from tolsim.sweep import _METHOD_CODES, StoreMismatchError, sweep

__all__ = ["ConfigError", "SweepConfig", "load_sweep", "main"]

MODELS = {"TwoState": TwoState, "ThreeState": ThreeState}
DESIGN_KINDS = ("grid", "lhs", "sobol", "csv")
OUTPUT_KINDS = ("metrics", "trajectories", "both")
RECURRENCE_THRESHOLDS = ("size_at_withdrawal",)
CHUNKS_PER_WORKER_THREAD = 2  # chunks per progress step: keeps every worker busy between steps

_TABLES = {"model": True, "schedule": True, "design": True, "outputs": False, "run": False}
_DESIGN_KEYS = {
    "grid": (("values",), ()),
    "lhs": (("n", "seed", "ranges"), ()),
    "sobol": (("n", "seed", "ranges"), ()),
    "csv": (("path",), ()),
}
_RUN_DEFAULTS = {
    "chunk_size": 10_000,
    "method": "auto",
    "rtol": 1e-6,
    "atol": 1e-6,
    "max_steps": 100_000,
    "device": "cpu",
}


class ConfigError(ValueError):
    """A sweep file is unreadable or one of its keys has a wrong value."""


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
        ``max_steps`` (100000), ``device`` (``"cpu"``, or ``"cuda"`` for GPUs).

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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"`SWEEP.toml` = {file!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"`SWEEP.toml` = {file!r} cannot be read: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file} is not valid TOML: {error}") from None

    for key in data:
        if key not in _TABLES:
            raise ConfigError(f"{file} has unknown table [{key}]: expected {_listed(_TABLES)}")
    for key, required in _TABLES.items():
        if key not in data:
            if required:
                raise ConfigError(f"{file} lacks the table [{key}]")
            data[key] = {}
        elif not isinstance(data[key], dict):
            raise ConfigError(f"`{key}` = {data[key]!r} in {file}: expected a table [{key}]")

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


def _load_schedule(table: Mapping[str, Any], model: Model, file: str) -> Schedule:
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
            _check_keys(table, "schedule", file, ("phases",), ("duration_days",))
            schedule = Schedule.from_phases(phases, duration_days=table.get("duration_days"))
        schedule.compile(model.drugs)  # every drug given is one the model knows
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise _wrapped("schedule", file, error) from None
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
    threshold = table.get("recurrence_threshold", "size_at_withdrawal")
    if isinstance(threshold, str):
        threshold = _choice(threshold, "outputs.recurrence_threshold", file, RECURRENCE_THRESHOLDS)
    else:
        expected = "'size_at_withdrawal' or a number of cells > 0"
        threshold = _number(threshold, "outputs.recurrence_threshold", file, expected)
        if threshold <= 0.0:
            raise ConfigError(
                f"`outputs.recurrence_threshold` = {threshold!r} in {file}: expected {expected}"
            )
    return kind, times, threshold


def _load_run(table: Mapping[str, Any], file: str) -> dict[str, Any]:
    _check_keys(table, "run", file, (), tuple(_RUN_DEFAULTS))
    run = {**_RUN_DEFAULTS, **table}
    run["chunk_size"] = _integer(run["chunk_size"], "run.chunk_size", file, 1)
    run["method"] = _choice(run["method"], "run.method", file, tuple(_METHOD_CODES))
    for name in ("rtol", "atol"):
        run[name] = _number(run[name], f"run.{name}", file, "a tolerance > 0")
        if run[name] <= 0.0:
            raise ConfigError(f"`run.{name}` = {run[name]!r} in {file}: expected a tolerance > 0")
    run["max_steps"] = _integer(run["max_steps"], "run.max_steps", file, 1)
    run["device"] = _choice(run["device"], "run.device", file, ("cpu", "cuda"))
    return run


# --------------------------------------------------------------------------------------------
# the command


class _UsageError(Exception):
    """An error of the command line or the store: exit status 2, message only."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``tolsim`` argument parser (one subcommand per task)."""
    parser = argparse.ArgumentParser(
        prog="tolsim",
        description=(
            "Simulate sensitive and NF-kB-high tamoxifen-tolerant cancer cell populations "
            "under dosing schedules."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tolsim {tolsim.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "sweep",
        help="run a parameter sweep described by a TOML file into a Zarr store",
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
        "an error)",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tolsim`` command; return its exit status.

    ``--help``, ``--version`` and malformed command lines end in :class:`SystemExit` from
    :mod:`argparse` (status 0, or 2 for a usage error), as for any command.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sweep" and args.scheduler is not None and args.workers is not None:
        parser.error("--workers sizes the local cluster: it cannot be used with --scheduler")
    try:
        return args.handler(args)
    except (ConfigError, StoreMismatchError, _UsageError) as error:
        print(f"tolsim {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"tolsim {args.command}: interrupted; finished chunks are kept in the store: run "
            "the same command with --resume to continue",
            file=sys.stderr,
        )
        return 130
    except Exception:
        traceback.print_exc()
        print(f"tolsim {args.command}: unexpected error (above)", file=sys.stderr)
        return 1


def _sweep_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    config = load_sweep(args.config)
    store = Path(args.store)
    chunk_size = args.chunk_size
    if store.exists():
        if not args.resume:
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
        client, cluster = _connect(args)
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
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    wall = time.perf_counter() - started
    print(
        f"tolsim sweep: {ds.sizes['sample']} samples, {done}/{n_chunks} chunks done "
        f"({done - before} computed now) in {wall:.1f} s; store {store}"
    )
    return 0


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


def _connect(args: argparse.Namespace):
    """A client of ``--scheduler``, or of a new local cluster (returned too, to close it)."""
    from distributed import Client, LocalCluster

    if args.scheduler is not None:
        try:
            return Client(args.scheduler, timeout="30s"), None
        except OSError as error:
            raise _UsageError(
                f"`--scheduler` = {args.scheduler!r}: cannot connect ({error})"
            ) from None
    cluster = LocalCluster(
        n_workers=args.workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        # without a dashboard the scheduler still serves /health on HTTP, by default on port
        # 8787, and warns when another cluster holds it: take any free local port instead
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


if __name__ == "__main__":
    sys.exit(main())
