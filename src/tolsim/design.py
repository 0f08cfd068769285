"""Sweep designs as data: tables of sample points, schedule templates, Sobol indices.

A :class:`Design` is a table of sample points — named, equal-length float64 columns — plus a
JSON-able ``spec`` saying how it was made (ranges, scales, ``n``, seed, source), so that a
stored sweep explains itself. Builders:

- :func:`grid` — the full cartesian product of given values;
- :func:`lhs` — a Latin hypercube (:class:`scipy.stats.qmc.LatinHypercube`);
- :func:`sobol` — a scrambled Sobol sequence (:class:`scipy.stats.qmc.Sobol`);
- :func:`saltelli` — the cross-sampling of Saltelli (2010) for :func:`sobol_indices`;
- :func:`from_csv` — a CSV file of numeric columns (any other column is an error).

Ranges are written ``name=(low, high)`` (uniform) or ``name=(low, high, "log")``
(log-uniform, ``low > 0``). Random designs need an integer ``seed``: randomness is explicit.

A :class:`ScheduleTemplate` turns named float *slots* into a :class:`~tolsim.Schedule`, so that
schedule parameters (how long tamoxifen is given, when an inhibitor starts) can be sweep
dimensions next to model parameters; :meth:`Design.split` separates the two kinds of column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from tolsim.schedule import Schedule

__all__ = [
    "Design",
    "ScheduleTemplate",
    "from_csv",
    "from_table",
    "grid",
    "inhibitor_course",
    "intermittent_tamoxifen",
    "lhs",
    "saltelli",
    "sobol",
    "sobol_indices",
]

KINDS = ("grid", "lhs", "sobol", "saltelli", "table")
SCALES = ("linear", "log")
# dtype kinds read as real numbers: signed and unsigned integers, floats (not bool, complex,
# timedelta, datetime, which numpy's np.number partly admits)
_REAL_KINDS = "iuf"
# sobol_indices warns below this many base rows (n of saltelli(n))
SOBOL_MIN_RELIABLE_N = 64


# --------------------------------------------------------------------------------------------
# the design table


@dataclass(frozen=True, eq=False)
class Design:
    """A table of sample points: columns name -> 1-d float64 array, all of length ``n``.

    Parameters
    ----------
    columns : mapping of str to 1-d array_like
        The sample points, one column per swept quantity (model parameters, schedule slots).
        Stored as read-only float64 arrays in a read-only mapping, in the given order.
    kind : {"grid", "lhs", "sobol", "saltelli", "table"}
        How the points were made.
    spec : dict
        JSON-able description of how they were made (ranges, scales, ``n``, seed, source);
        written to a store's attributes by :meth:`to_dict`.

    Examples
    --------
    >>> d = grid(lambda_S=[0.1, 0.2], kappa_T=[0.3, 0.4, 0.5])
    >>> len(d), d.names
    (6, ('lambda_S', 'kappa_T'))
    >>> d.chunk(0, 3)["kappa_T"].tolist()
    [0.3, 0.4, 0.5]
    """

    columns: Mapping[str, np.ndarray]
    kind: str
    spec: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.columns, Mapping):
            raise TypeError(
                f"`columns` is a {type(self.columns).__name__}: expected a mapping of names "
                "to 1-d arrays"
            )
        if not self.columns:
            raise ValueError("`columns` is empty: expected at least one column")
        frozen: dict[str, np.ndarray] = {}
        length = None
        for name, values in self.columns.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"`columns` has name {name!r}: expected non-empty str names")
            column = np.asarray(values)
            if column.ndim != 1:
                raise ValueError(
                    f"`columns[{name!r}]` has shape {column.shape}: expected a 1-d array"
                )
            if column.dtype.kind not in _REAL_KINDS:
                raise TypeError(
                    f"`columns[{name!r}]` has dtype {column.dtype}: expected real numbers"
                )
            column = np.array(column, dtype=np.float64)  # a copy the caller cannot change
            column.flags.writeable = False
            if length is None:
                length = column.size
            elif column.size != length:
                raise ValueError(
                    f"`columns[{name!r}]` has {column.size} rows, the first column {length}: "
                    "expected columns of equal length"
                )
            frozen[name] = column
        if length == 0:
            raise ValueError("`columns` hold 0 rows: expected at least one sample point")
        object.__setattr__(self, "columns", types.MappingProxyType(frozen))
        if self.kind not in KINDS:
            raise ValueError(f"`kind` = {self.kind!r}: expected one of {list(KINDS)}")
        if not isinstance(self.spec, dict):
            raise TypeError(f"`spec` = {self.spec!r}: expected a dict")
        try:
            json.dumps(self.spec)
        except (TypeError, ValueError) as error:
            raise TypeError(f"`spec` = {self.spec!r} is not JSON-able: {error}") from None

    def __reduce__(self):
        # the read-only view of the columns is no picklable type: rebuild from a dict
        return (type(self), (dict(self.columns), self.kind, self.spec))

    def __len__(self) -> int:
        return next(iter(self.columns.values())).size

    def __repr__(self) -> str:
        """A summary: size, how it was made, and each column's range (``columns`` has the
        values)."""
        width = max(len(name) for name in self.columns)
        n = len(self.columns)
        rows = len(self)
        lines = [
            f"<tolsim Design ({self.kind}): {rows:,} sample{'s' * (rows > 1)}, "
            f"{n} column{'s' * (n > 1)}>"
        ]
        for name, column in self.columns.items():
            low, high = column.min(), column.max()
            lines.append(
                f"  {name:<{width}}  {low:.4g}" + ("" if low == high else f" to {high:.4g}")
            )
        return "\n".join(lines)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names, in order."""
        return tuple(self.columns)

    def chunk(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``[start, stop)`` of every column (read-only views), e.g. for one batch.

        Examples
        --------
        >>> d = grid(x=[1.0, 2.0, 3.0])
        >>> d.chunk(1, 3)["x"].tolist()
        [2.0, 3.0]
        """
        n = len(self)
        for name, value in (("start", start), ("stop", stop)):
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise TypeError(f"`{name}` = {value!r}: expected an int row index")
        if not 0 <= start < stop <= n:
            raise ValueError(
                f"`start`, `stop` = {start}, {stop}: expected 0 <= start < stop <= {n} "
                f"(the design has {n} rows)"
            )
        return {name: column[start:stop] for name, column in self.columns.items()}

    def row(self, index: int) -> dict[str, float]:
        """Row ``index`` as ``{name: value}`` (e.g. the slots of one schedule).

        Examples
        --------
        >>> grid(x=[1.0, 2.0], y=[5.0]).row(1)
        {'x': 2.0, 'y': 5.0}
        """
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, Integral):
            raise TypeError(f"`index` = {index!r}: expected an int row index")
        if not -n <= index < n:
            raise ValueError(f"`index` = {index}: expected a row index in [-{n}, {n})")
        return {name: float(column[index]) for name, column in self.columns.items()}

    def split(self, names: Iterable[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The columns of ``names``, and the rest (e.g. model parameters and schedule slots).

        Examples
        --------
        >>> d = grid(lambda_S=[0.1, 0.2], tamoxifen_days=[60.0, 120.0])
        >>> slots, params = d.split(["tamoxifen_days"])
        >>> list(slots), list(params)
        (['tamoxifen_days'], ['lambda_S'])
        """
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise TypeError(f"`names` = {names!r}: expected a sequence of column names")
        chosen = list(names)
        unknown = [name for name in chosen if name not in self.columns]
        if unknown:
            raise ValueError(
                f"`names` has unknown column(s) {unknown}: the design's columns are "
                f"{list(self.names)}"
            )
        picked = {name: self.columns[name] for name in self.names if name in chosen}
        rest = {name: column for name, column in self.columns.items() if name not in chosen}
        return picked, rest

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: kind, names, ``n`` and the spec (not the points).

        The points can be made again from it (seeded builders, grid values), or, for a
        ``"table"``, checked against the file's path and SHA-256 hash.

        Examples
        --------
        >>> lhs(4, seed=1, x=(0.0, 1.0)).to_dict()["spec"]["ranges"]
        {'x': [0.0, 1.0, 'linear']}
        """
        return {"kind": self.kind, "names": list(self.names), "n": len(self), "spec": self.spec}


# --------------------------------------------------------------------------------------------
# checking helpers (each raises naming the argument, the value and what was expected)


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise TypeError(f"`n` = {n!r}: expected an int number of sample points")
    if n < 1:
        raise ValueError(f"`n` = {n}: expected at least 1 sample point")
    return int(n)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise TypeError(
            f"`seed` = {seed!r}: expected an int >= 0 (randomness is explicit, and the seed "
            "is recorded in the design's spec)"
        )
    return int(seed)


def _check_power_of_two(n: int) -> int:
    """``log2(n)`` for a power of two, else ``ValueError`` suggesting the nearest ones."""
    if n & (n - 1):
        above = 1 << n.bit_length()
        raise ValueError(
            f"`n` = {n}: Sobol points are balanced only in powers of 2; use n = {above} "
            f"(or {above // 2})"
        )
    return n.bit_length() - 1


def _count_and_ranges(n, ranges, more: dict) -> tuple[Any, dict]:
    """``n`` and the ranges of :func:`lhs`'s call: ``n`` and a ``ranges`` mapping may also come
    as keywords (``lhs(n=8, seed=0, x=...)``), where a number is the count and a mapping the
    ranges; a quantity named ``n`` or ``ranges`` is then a (low, high) range in the mapping."""
    more = dict(more)
    if n is None:
        count = more.get("n")
        if isinstance(count, Integral | float) and not isinstance(count, bool):
            n = more.pop("n")
        else:
            raise TypeError("`n` (the number of points) is missing: give it first, lhs(8, ...)")
    if ranges is None and isinstance(more.get("ranges"), Mapping):
        ranges = more.pop("ranges")
    return n, _merged_ranges(ranges, more)


def _merged_ranges(ranges: Mapping[str, Any] | None, more: Mapping[str, Any]) -> dict:
    """The ranges given as a mapping (after ``n``) and as keywords, in that order."""
    if ranges is None:
        return dict(more)
    if not isinstance(ranges, Mapping):
        raise TypeError(
            f"`ranges` = {ranges!r}: expected a mapping of names to (low, high) ranges"
        )
    twice = sorted(set(ranges) & set(more))
    if twice:
        raise ValueError(f"{twice} given both in `ranges` and as keywords: give each once")
    return {**ranges, **more}


def _parse_ranges(ranges: Mapping[str, Any]) -> dict[str, tuple[float, float, str]]:
    if not ranges:
        raise ValueError(
            "no ranges given: name each swept quantity with its range, e.g. "
            "lambda_S=(0.1, 0.5) or K=(1e6, 1e9, 'log')"
        )
    parsed = {}
    for name, value in ranges.items():
        if isinstance(value, str | bytes) or not isinstance(value, tuple | list):
            raise TypeError(
                f"`{name}` = {value!r}: expected a range (low, high) or (low, high, 'log')"
            )
        if len(value) not in (2, 3):
            raise ValueError(
                f"`{name}` = {value!r} has {len(value)} items: expected (low, high) or "
                "(low, high, 'log')"
            )
        scale = value[2] if len(value) == 3 else "linear"
        if scale not in SCALES:
            raise ValueError(f"`{name}` has scale {scale!r}: expected one of {list(SCALES)}")
        bounds = []
        for which, bound in zip(("low", "high"), value[:2], strict=True):
            if isinstance(bound, bool) or not isinstance(bound, Real):
                raise TypeError(f"`{name}` {which} = {bound!r}: expected a number")
            bounds.append(float(bound))
        low, high = bounds
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(
                f"`{name}` = ({low!r}, {high!r}): expected finite bounds with low < high"
            )
        if scale == "linear" and not math.isfinite(high - low):
            raise ValueError(
                f"`{name}` = ({low!r}, {high!r}): its width overflows float64; expected "
                f"|high - low| <= {np.finfo(np.float64).max:.4g}"
            )
        if scale == "log" and low <= 0.0:
            raise ValueError(
                f"`{name}` = ({low!r}, {high!r}, 'log'): a log-uniform range needs low > 0"
            )
        parsed[name] = (low, high, scale)
    return parsed


def _scale(unit: np.ndarray, ranges: Mapping[str, tuple[float, float, str]]) -> dict:
    """Map points of the unit hypercube ``(n, d)`` to the ranges, column by column."""
    columns = {}
    for j, (name, (low, high, scale)) in enumerate(ranges.items()):
        u = unit[:, j]
        if scale == "log":
            values = np.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            values = low + u * (high - low)
        columns[name] = np.clip(values, low, high)  # round-off must not leave the range
    return columns


def _ranges_spec(ranges: Mapping[str, tuple[float, float, str]]) -> dict[str, list]:
    return {name: [low, high, scale] for name, (low, high, scale) in ranges.items()}


# --------------------------------------------------------------------------------------------
# builders


def grid(**values: Any) -> Design:
    """Full cartesian product of the given values; the first name varies slowest.

    Rows are in the order of :func:`itertools.product` of the value lists.

    Parameters
    ----------
    **values : 1-d sequence of numbers
        The values of each quantity, e.g. ``lambda_S=[0.1, 0.2]``.

    Returns
    -------
    Design
        ``kind="grid"``, ``prod(len(v))`` rows; ``spec`` holds the value lists.

    Examples
    --------
    >>> d = grid(a=[1, 2], b=[10, 20, 30])
    >>> d.columns["a"].tolist(), d.columns["b"].tolist()
    ([1.0, 1.0, 1.0, 2.0, 2.0, 2.0], [10.0, 20.0, 30.0, 10.0, 20.0, 30.0])
    """
    if not values:
        raise ValueError(
            "no values given: name each swept quantity with its values, e.g. x=[1, 2]"
        )
    axes = {}
    for name, given in values.items():
        if isinstance(given, str | bytes | Mapping):
            raise TypeError(f"`{name}` = {given!r}: expected a 1-d sequence of numbers")
        array = np.asarray(given)
        if array.ndim != 1:
            raise ValueError(
                f"`{name}` has shape {array.shape}: expected a 1-d sequence of numbers"
            )
        if array.size == 0:
            raise ValueError(f"`{name}` is empty: expected at least one value")
        if array.dtype.kind not in _REAL_KINDS:
            raise TypeError(f"`{name}` = {given!r}: expected a 1-d sequence of numbers")
        array = array.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise ValueError(
                f"`{name}[{bad[0]}]` = {float(array[bad[0]])!r}: expected a finite number"
            )
        axes[name] = array
    mesh = np.meshgrid(*axes.values(), indexing="ij")
    columns = {name: m.ravel() for name, m in zip(axes, mesh, strict=True)}
    spec = {"values": {name: array.tolist() for name, array in axes.items()}}
    return Design(columns, "grid", spec)


def lhs(
    n: int | None = None,
    ranges: Mapping[str, Any] | None = None,
    /,
    *,
    seed: int,
    **more: Any,
) -> Design:
    """Latin hypercube sample of ``n`` points in the ranges.

    In unit space each of the ``n`` equal bins of each dimension holds exactly one point
    (:class:`scipy.stats.qmc.LatinHypercube`, randomised within bins).

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    ranges : mapping name -> range, optional (positional)
        Ranges as a mapping, for quantities named like an argument (``n``, ``seed``) or
        that are not Python names; merged with ``**more``.
    seed : int
        Seed of the generator (required; recorded in the spec).
    **more : (low, high) or (low, high, "log")
        Uniform or log-uniform range of each quantity.

    Examples
    --------
    >>> d = lhs(5, seed=0, lambda_S=(0.1, 0.5), K=(1e6, 1e9, "log"))
    >>> len(d), bool(d.columns["K"].min() >= 1e6)
    (5, True)
    """
    n, merged = _count_and_ranges(n, ranges, more)
    n = _check_n(n)
    seed = _check_seed(seed)
    parsed = _parse_ranges(merged)
    from scipy.stats import qmc  # here, not at import: scipy.stats takes ~0.6 s to load

    unit = qmc.LatinHypercube(len(parsed), rng=seed).random(n)
    spec = {"n": n, "seed": seed, "ranges": _ranges_spec(parsed), "method": "LatinHypercube"}
    return Design(_scale(unit, parsed), "lhs", spec)


def sobol(
    n: int | None = None,
    ranges: Mapping[str, Any] | None = None,
    /,
    *,
    seed: int,
    **more: Any,
) -> Design:
    """The first ``n`` points of a scrambled Sobol sequence in the ranges.

    ``n`` must be a power of 2, where Sobol points are balanced
    (:class:`scipy.stats.qmc.Sobol`, Owen scrambling seeded by ``seed``). Ranges as for
    :func:`lhs` (keywords, or a mapping after ``n``: ``sobol(8, {"seed": (0, 1)}, seed=0)``).

    Examples
    --------
    >>> d = sobol(8, seed=0, x=(0.0, 1.0), y=(1.0, 100.0, "log"))
    >>> len(d), d.names
    (8, ('x', 'y'))
    """
    n, merged = _count_and_ranges(n, ranges, more)
    n = _check_n(n)
    seed = _check_seed(seed)
    m = _check_power_of_two(n)
    parsed = _parse_ranges(merged)
    from scipy.stats import qmc

    unit = qmc.Sobol(len(parsed), scramble=True, rng=seed).random_base2(m)
    spec = {"n": n, "seed": seed, "ranges": _ranges_spec(parsed), "method": "Sobol scrambled"}
    return Design(_scale(unit, parsed), "sobol", spec)


def saltelli(
    n: int | None = None,
    ranges: Mapping[str, Any] | None = None,
    /,
    *,
    seed: int,
    **more: Any,
) -> Design:
    """Cross-sampling of Saltelli (2010) for :func:`sobol_indices`: ``n * (d + 2)`` rows.

    Two independent ``n``-point matrices A and B come from one scrambled Sobol sequence of
    dimension ``2 d`` (``n`` a power of 2); the rows are A, then B, then for each quantity
    ``i`` (in the order given) the matrix ``A_B^i``: A with column ``i`` taken from B.
    Ranges as for :func:`lhs`.

    Saltelli, A. et al. (2010). Variance based sensitivity analysis of model output. Design
    and estimator for the total sensitivity index. Comput. Phys. Commun. 181, 259-270.

    Examples
    --------
    >>> d = saltelli(4, seed=0, x=(0.0, 1.0), y=(0.0, 1.0))
    >>> len(d), d.spec["n"], d.spec["blocks"]
    (16, 4, ['A', 'B', 'A_B[x]', 'A_B[y]'])
    """
    n, merged = _count_and_ranges(n, ranges, more)
    n = _check_n(n)
    seed = _check_seed(seed)
    m = _check_power_of_two(n)
    parsed = _parse_ranges(merged)
    d = len(parsed)
    from scipy.stats import qmc

    base = qmc.Sobol(2 * d, scramble=True, rng=seed).random_base2(m)
    a, b = base[:, :d], base[:, d:]
    blocks = [a, b]
    for i in range(d):
        ab = a.copy()
        ab[:, i] = b[:, i]
        blocks.append(ab)
    spec = {
        "n": n,
        "seed": seed,
        "ranges": _ranges_spec(parsed),
        "blocks": ["A", "B", *(f"A_B[{name}]" for name in parsed)],
        "method": "Saltelli 2010 cross-sampling of a scrambled Sobol sequence",
    }
    return Design(_scale(np.concatenate(blocks), parsed), "saltelli", spec)


def from_csv(path: str | PathLike[str]) -> Design:
    """Design from a CSV file: a header of names, then one sample point per row.

    Every field must be a finite number; the error for one that is not gives its row (the
    k-th sample point), its line in the file and its column. Lines that are empty or hold
    only whitespace are skipped. The spec records the path and the SHA-256 hash.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "points.csv"
    >>> _ = path.write_text("lambda_S,kappa_T\\n0.1,0.3\\n0.2,0.4\\n")
    >>> from_csv(path).columns["kappa_T"].tolist()
    [0.3, 0.4]
    """
    if not isinstance(path, str | PathLike):
        raise TypeError(f"`path` = {path!r}: expected a file path (str or os.PathLike)")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path` = {str(path)!r}: no such file")
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    # (csv's own line splitting: str.splitlines also splits at form feeds and U+2028, and
    # inside quoted fields, which put the rows' line numbers out)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, lines = [], []
    start = 1
    for row in reader:
        rows.append(row)
        lines.append(start)  # the line the row starts on (a quoted line break spans two)
        start = reader.line_num + 1
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ValueError(f"`path` = {str(path)!r} is empty: expected a header of column names")
    header = [name.strip() for name in rows[0]]
    for j, name in enumerate(header):
        if not name:
            raise ValueError(f"`path` = {str(path)!r}: column {j + 1} of the header has no name")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ValueError(f"`path` = {str(path)!r}: the header names {duplicated} more than once")
    points = [
        (row, line)
        for row, line in zip(rows[1:], lines[1:], strict=True)
        if len(row) > 1 or (row and row[0].strip())  # (a row of empty fields is a point)
    ]
    data = [(number, row, line) for number, (row, line) in enumerate(points, start=1)]
    if not data:
        raise ValueError(f"`path` = {str(path)!r} has a header but no rows of sample points")
    values = np.empty((len(data), len(header)))
    for i, (number, row, line) in enumerate(data):
        where = f"`path` = {str(path)!r}: row {number} (line {line})"
        if len(row) != len(header):
            raise ValueError(
                f"{where} has {len(row)} fields: expected {len(header)}, one per column of "
                "the header"
            )
        for j, field_text in enumerate(row):
            try:
                if "_" in field_text:  # Python's float reads 1_000; a CSV number has no "_"
                    raise ValueError
                value = float(field_text)
            except ValueError:
                raise ValueError(
                    f"{where}, column {header[j]!r} holds {field_text!r}: expected a number"
                ) from None
            if not math.isfinite(value):
                raise ValueError(
                    f"{where}, column {header[j]!r} holds {field_text.strip()!r}: expected a "
                    "finite number (not NaN or inf)"
                )
            values[i, j] = value
    spec = {
        "source": "csv",
        "path": str(path.resolve()),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    return Design({name: values[:, j] for j, name in enumerate(header)}, "table", spec)


def from_table(table: Any) -> Design:
    """Design from a ``pandas.DataFrame`` or a mapping of equal-length 1-d arrays: a column
    per swept quantity, a sample point per row (a DataFrame's index is not kept).

    Every value must be a finite number; the error for one that is not names its column and
    row. The spec records a SHA-256 hash of the names and values, so that a sweep store is
    resumed only with the same table.

    Examples
    --------
    >>> import pandas as pd
    >>> d = from_table(pd.DataFrame({"kappa_T": [0.1, 0.3], "mu_E": [1e-4, 2e-4]}))
    >>> len(d), d.names, d.kind
    (2, ('kappa_T', 'mu_E'), 'table')
    """
    if isinstance(table, Design):
        raise TypeError(
            f"`table` is a tolsim Design ({table.kind}): it is a design already; pass it as "
            "it is, or its .columns"
        )
    if hasattr(table, "columns") and hasattr(table, "iloc"):  # a pandas DataFrame
        names = [str(name) for name in table.columns]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:  # e.g. 1 and "1", or a repeated header: one would silently replace another
            raise ValueError(
                f"`table` has more than one column named {repeated}: expected unique names"
            )
        columns = {str(name): np.asarray(table.iloc[:, i]) for i, name in enumerate(names)}
    elif isinstance(table, Mapping):
        columns = {name: np.asarray(values) for name, values in table.items()}
    else:
        raise TypeError(
            f"`table` is a {type(table).__name__}: expected a pandas.DataFrame or a mapping of "
            "names to 1-d arrays"
        )
    try:
        design = Design(columns, "table")  # names, shapes and dtypes checked
    except (TypeError, ValueError) as error:  # its messages name `columns`: here, `table`
        raise type(error)(str(error).replace("`columns", "`table")) from None
    for name, column in design.columns.items():
        bad = np.flatnonzero(~np.isfinite(column))
        if bad.size:
            raise ValueError(
                f"`table` column {name!r}, row {bad[0]} holds {float(column[bad[0]])!r}: "
                "expected a finite number (not NaN or inf)"
            )
    spec = {"source": "table", "sha256": points_sha256(design.columns)}
    return Design(design.columns, "table", spec)


def points_sha256(columns: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of a design's points: each column's name and float64 values, in order."""
    digest = hashlib.sha256()
    for name, column in columns.items():
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(column, dtype=np.float64))  # no copy to bytes
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Sobol indices


def sobol_indices(
    design: Design,
    y: Any,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """First-order and total Sobol indices from outputs on a :func:`saltelli` design.

    With ``f_A``, ``f_B``, ``f_ABi`` the outputs on the blocks of the design and ``V`` the
    variance of ``f_A`` and ``f_B`` together:

    - first order (Saltelli et al. 2010, table 2 (b)): ``S1_i = mean(f_B (f_ABi - f_A)) / V``;
    - total (Jansen 1999): ``ST_i = mean((f_A - f_ABi)**2) / (2 V)``.

    Confidence intervals are percentile bootstraps over the ``n`` base rows (each resample
    keeps a row's A, B and A_B^i outputs together), seeded by ``seed``.

    Parameters
    ----------
    design : Design
        A :func:`saltelli` design.
    y : (len(design),) array_like
        The output at each row of the design, in its order; finite.
    n_bootstrap : int
        Bootstrap resamples (>= 10).
    confidence : float
        Level of the intervals, in (0, 1).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    xarray.Dataset
        ``S1``, ``ST`` and their bounds ``S1_low``, ``S1_high``, ``ST_low``, ``ST_high``, dim
        ``parameter``; attrs give the estimators, ``n``, the output variance and the bootstrap.

    Examples
    --------
    >>> d = saltelli(1024, seed=0, x1=(0.0, 1.0), x2=(0.0, 1.0))
    >>> ds = sobol_indices(d, d.columns["x1"] + 0.1 * d.columns["x2"], n_bootstrap=100)
    >>> ds.S1.round(2).values.tolist(), ds.ST.round(2).values.tolist()
    ([0.99, 0.01], [0.99, 0.01])
    """
    if not isinstance(design, Design) or design.kind != "saltelli":
        got = f"a Design of kind {design.kind!r}" if isinstance(design, Design) else repr(design)
        raise TypeError(f"`design` is {got}: expected a Design made by tolsim.design.saltelli")
    if not {"ranges", "n"} <= set(design.spec):
        raise TypeError(
            f"`design` is a Design of kind 'saltelli' without saltelli's spec (its `ranges` "
            f"and `n`; it has {sorted(design.spec)}): expected a Design made by "
            "tolsim.design.saltelli"
        )
    y = np.asarray(y)
    if y.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"`y` has dtype {y.dtype}: expected real numbers")
    y = y.astype(np.float64)
    if y.shape != (len(design),):
        raise ValueError(
            f"`y` has shape {y.shape}: expected ({len(design)},), one output per design row"
        )
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ValueError(
            f"`y` holds {float(y[bad[0]])!r} at row {bad[0]} ({bad.size} non-finite rows in all): "
            "expected finite outputs (drop failed samples' rows from the design and rerun)"
        )
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, Integral):
        raise TypeError(f"`n_bootstrap` = {n_bootstrap!r}: expected an int")
    if n_bootstrap < 10:
        raise ValueError(f"`n_bootstrap` = {n_bootstrap}: expected at least 10 resamples")
    if isinstance(confidence, bool) or not isinstance(confidence, Real):
        raise TypeError(f"`confidence` = {confidence!r}: expected a number in (0, 1)")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` = {confidence!r}: expected a number in (0, 1)")
    seed = _check_seed(seed)

    names = list(design.spec["ranges"])
    n, d = int(design.spec["n"]), len(names)
    if n < 2:
        raise ValueError(
            f"`design` has n = {n} base row: Sobol indices and their bootstrap need at least 2 "
            f"(and {SOBOL_MIN_RELIABLE_N} or more to be reliable)"
        )
    if n < SOBOL_MIN_RELIABLE_N:
        warnings.warn(
            f"`design` has n = {n} base rows: Sobol indices from fewer than "
            f"{SOBOL_MIN_RELIABLE_N} are unreliable (they can fall far outside [0, 1]) and so "
            "are their bootstrap intervals; use a larger saltelli design",
            UserWarning,
            stacklevel=2,
        )
    # The indices do not change when a constant is added to y or y is scaled, but the
    # estimators' terms do: centring keeps f_B (f_ABi - f_A) from carrying the mean into the
    # bootstrap (intervals of +-30 for an output of 100 + x), and V = E[y^2] - E[y]^2 from
    # cancelling catastrophically (a false "constant" at 1e8 + x); scaling keeps y^2 finite.
    centre = y[: 2 * n].mean()
    scale = np.abs(y - centre).max()
    if not scale > 0.0:
        raise ValueError("`y` is constant over the design: Sobol indices need a varying output")
    blocks = ((y - centre) / scale).reshape(d + 2, n)
    f_a, f_b, f_ab = blocks[0], blocks[1], blocks[2:]
    # every estimate is a ratio of means of per-row terms, so a resample is a weighted mean
    terms = np.column_stack(
        [
            0.5 * (f_a + f_b),  # mean of y over A and B
            0.5 * (f_a**2 + f_b**2),  # mean of y**2 over A and B
            (f_b * (f_ab - f_a)).T,  # Saltelli 2010 first-order numerators
            (0.5 * (f_a - f_ab) ** 2).T,  # Jansen 1999 total numerators
        ]
    )

    def estimate(means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        variance = means[..., 1] - means[..., 0] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            s1 = means[..., 2 : 2 + d] / variance[..., None]
            st = means[..., 2 + d :] / variance[..., None]
        return s1, st, variance

    s1, st, variance = estimate(terms.mean(axis=0))
    if not variance > 0.0:
        raise ValueError("`y` is constant over the design: Sobol indices need a varying output")

    rng = np.random.default_rng(seed)
    boot_s1 = np.empty((n_bootstrap, d))
    boot_st = np.empty((n_bootstrap, d))
    batch = max(1, min(n_bootstrap, 2**22 // n))
    for start in range(0, n_bootstrap, batch):
        size = min(batch, n_bootstrap - start)
        draws = rng.integers(0, n, size=(size, n))
        offsets = (np.arange(size) * n)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=size * n).reshape(size, n)
        s1_b, st_b, _ = estimate(counts @ terms / n)
        boot_s1[start : start + size], boot_st[start : start + size] = s1_b, st_b
    tail = (1.0 - confidence) / 2.0
    s1_low, s1_high = np.nanquantile(boot_s1, [tail, 1.0 - tail], axis=0)
    st_low, st_high = np.nanquantile(boot_st, [tail, 1.0 - tail], axis=0)

    level = f"{100 * confidence:g}%"
    data_vars = {
        "S1": (("parameter",), s1, {"long_name": "first-order Sobol index (Saltelli 2010)"}),
        "ST": (("parameter",), st, {"long_name": "total Sobol index (Jansen 1999)"}),
        "S1_low": (("parameter",), s1_low, {"long_name": f"S1, lower {level} bound"}),
        "S1_high": (("parameter",), s1_high, {"long_name": f"S1, upper {level} bound"}),
        "ST_low": (("parameter",), st_low, {"long_name": f"ST, lower {level} bound"}),
        "ST_high": (("parameter",), st_high, {"long_name": f"ST, upper {level} bound"}),
    }
    for _, _, variable_attrs in data_vars.values():
        variable_attrs["units"] = "1"  # fractions of the output's variance
    attrs = {
        "first_order_estimator": "Saltelli et al. 2010: mean(f_B (f_ABi - f_A)) / V",
        "total_estimator": "Jansen 1999: mean((f_A - f_ABi)^2) / (2 V)",
        "n": n,
        "output_variance": float(variance) * scale**2,
        "n_bootstrap": int(n_bootstrap),
        "confidence": float(confidence),
        "bootstrap_seed": seed,
        "design": json.dumps(design.to_dict()),
        "tolsim_version": _version(),
    }
    return xr.Dataset(data_vars, coords={"parameter": names}, attrs=attrs)


def _version() -> str:
    import tolsim  # (this module is imported while tolsim is)

    return tolsim.__version__


# --------------------------------------------------------------------------------------------
# schedule templates


@dataclass(frozen=True)
class ScheduleTemplate:
    """A function of named float slots returning a :class:`~tolsim.Schedule`, plus defaults.

    Parameters
    ----------
    build : callable
        Called with every slot as a keyword argument (floats); returns a Schedule.
    slots : mapping of str to float
        Slot name -> default value.
    name : str
        What the template is, for records.

    Examples
    --------
    >>> template = inhibitor_course(tamoxifen_days=60.0, follow_up_days=60.0)
    >>> template(inhibitor_days=14.0).breakpoints().tolist()
    [0.0, 14.0, 60.0, 120.0]
    """

    build: Callable[..., Schedule]
    slots: Mapping[str, float]
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.build):
            raise TypeError(f"`build` = {self.build!r}: expected a callable returning a Schedule")
        if not isinstance(self.slots, Mapping):
            raise TypeError(f"`slots` = {self.slots!r}: expected a mapping of slot name to float")
        defaults = {}
        for slot, value in self.slots.items():
            if not isinstance(slot, str) or not slot.isidentifier():
                raise TypeError(f"`slots` has name {slot!r}: expected Python identifiers (str)")
            defaults[slot] = _slot_value(value, f"slots[{slot!r}]")
        object.__setattr__(self, "slots", types.MappingProxyType(defaults))
        if not isinstance(self.name, str):
            raise TypeError(f"`name` = {self.name!r}: expected a str")

    def __reduce__(self):
        # the read-only view of the slots is no picklable type: rebuild from a dict (``build``
        # pickles by reference, as any function: a module-level one with plain pickle)
        return (type(self), (self.build, dict(self.slots), self.name))

    def __repr__(self) -> str:
        slots = ", ".join(f"{slot}={value:g}" for slot, value in self.slots.items())
        return f"<tolsim ScheduleTemplate {self.name!r}: {slots}>"

    def __call__(self, **values: Any) -> Schedule:
        """The schedule for the given slots (others take their defaults)."""
        unknown = [slot for slot in values if slot not in self.slots]
        if unknown:
            raise ValueError(
                f"unknown slot(s) {unknown} for template {self.name!r}: its slots are "
                f"{list(self.slots)}"
            )
        filled = dict(self.slots)
        filled.update({slot: _slot_value(value, slot) for slot, value in values.items()})
        schedule = self.build(**filled)
        if not isinstance(schedule, Schedule):
            raise TypeError(
                f"`build` of template {self.name!r} returned {schedule!r}: expected a Schedule"
            )
        return schedule

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record: name, slot defaults and the build function's qualified name."""
        module = getattr(self.build, "__module__", None) or ""
        qualname = getattr(self.build, "__qualname__", type(self.build).__qualname__)
        return {
            "name": self.name,
            "slots": dict(self.slots),
            "build": f"{module}.{qualname}" if module else qualname,
        }


def _slot_value(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"`{name}` = {value!r}: expected a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` = {value!r}: expected a finite number")
    return value


def _at_least(value: float, name: str, low: float, unit: str, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise ValueError(f"`{name}` = {value!r} {unit}: expected {relation} {low:g}")


def _inhibitor_course_schedule(
    *,
    tamoxifen_days: float,
    follow_up_days: float,
    inhibitor_start_day: float,
    inhibitor_days: float,
    inhibitor_um: float,
    tamoxifen_um: float,
) -> Schedule:
    _at_least(tamoxifen_days, "tamoxifen_days", 0.0, "days", strict=True)
    _at_least(follow_up_days, "follow_up_days", 0.0, "days")
    _at_least(inhibitor_start_day, "inhibitor_start_day", 0.0, "days")
    _at_least(inhibitor_days, "inhibitor_days", 0.0, "days")
    _at_least(inhibitor_um, "inhibitor_um", 0.0, "µM")
    _at_least(tamoxifen_um, "tamoxifen_um", 0.0, "µM")
    duration = tamoxifen_days + follow_up_days
    schedule = Schedule.from_phases(
        [{"days": tamoxifen_days, "tamoxifen": tamoxifen_um}], duration_days=duration
    )
    stop = min(inhibitor_start_day + inhibitor_days, duration)  # clipped to the horizon
    if inhibitor_um > 0.0 and stop > inhibitor_start_day:
        schedule = schedule.with_inhibitor(
            start_day=inhibitor_start_day, stop_day=stop, dose_um=inhibitor_um
        )
    return schedule


def inhibitor_course(
    *,
    tamoxifen_days: float = 120.0,
    follow_up_days: float = 240.0,
    inhibitor_start_day: float = 0.0,
    inhibitor_days: float = 28.0,
    inhibitor_um: float = 5.0,
    tamoxifen_um: float = 1.0,
) -> ScheduleTemplate:
    """Template: tamoxifen, then withdrawal, with an NF-κB inhibitor course (in vitro, µM).

    Tamoxifen at ``tamoxifen_um`` for days ``[0, tamoxifen_days)``, withdrawn until day
    ``tamoxifen_days + follow_up_days`` (the end); the drug ``"inhibitor"`` at
    ``inhibitor_um`` for days ``[inhibitor_start_day, inhibitor_start_day + inhibitor_days)``,
    clipped to the end (no inhibitor when ``inhibitor_days`` or ``inhibitor_um`` is 0, or it
    would start at or after the end). The slots are exactly these keyword names, with the
    given values as defaults.

    Examples
    --------
    >>> template = inhibitor_course()
    >>> s = template(inhibitor_start_day=100.0)
    >>> s.breakpoints().tolist(), s.withdrawal_day("tamoxifen")
    ([0.0, 100.0, 120.0, 128.0, 360.0], 120.0)
    """
    slots = {
        "tamoxifen_days": tamoxifen_days,
        "follow_up_days": follow_up_days,
        "inhibitor_start_day": inhibitor_start_day,
        "inhibitor_days": inhibitor_days,
        "inhibitor_um": inhibitor_um,
        "tamoxifen_um": tamoxifen_um,
    }
    template = ScheduleTemplate(_inhibitor_course_schedule, slots, "inhibitor_course")
    template()  # check the defaults now, not in the middle of a sweep
    return template


def _intermittent_tamoxifen_schedule(
    *,
    on_days: float,
    off_days: float,
    cycles: float,
    tamoxifen_um: float,
    follow_up_days: float,
) -> Schedule:
    _at_least(on_days, "on_days", 0.0, "days", strict=True)
    _at_least(off_days, "off_days", 0.0, "days")
    _at_least(tamoxifen_um, "tamoxifen_um", 0.0, "µM")
    _at_least(follow_up_days, "follow_up_days", 0.0, "days")
    if cycles != round(cycles) or cycles < 1:
        raise ValueError(f"`cycles` = {cycles!r}: expected a whole number of cycles >= 1")
    period = on_days + off_days
    phases = [
        {"start_day": k * period, "stop_day": k * period + on_days, "tamoxifen": tamoxifen_um}
        for k in range(int(cycles))
    ]
    withdrawal = (int(cycles) - 1) * period + on_days
    return Schedule.from_phases(phases, duration_days=withdrawal + follow_up_days)


def intermittent_tamoxifen(
    *,
    on_days: float = 28.0,
    off_days: float = 28.0,
    cycles: float = 3,
    tamoxifen_um: float = 1.0,
    follow_up_days: float = 120.0,
) -> ScheduleTemplate:
    """Template: ``cycles`` courses of tamoxifen, ``on_days`` on and ``off_days`` off.

    Cycle ``k`` (from 0) gives tamoxifen at ``tamoxifen_um`` for days
    ``[k (on + off), k (on + off) + on)``; the last course is followed by ``follow_up_days``
    without drug instead of an off period, so the schedule ends on day
    ``(cycles - 1) (on + off) + on + follow_up_days``. ``cycles`` is a slot (a float) that
    must hold a whole number >= 1.

    Examples
    --------
    >>> s = intermittent_tamoxifen(on_days=10.0, off_days=5.0, cycles=2, follow_up_days=20.0)()
    >>> s.breakpoints().tolist(), s.withdrawal_day()
    ([0.0, 10.0, 15.0, 25.0, 45.0], 25.0)
    """
    slots = {
        "on_days": on_days,
        "off_days": off_days,
        "cycles": cycles,
        "tamoxifen_um": tamoxifen_um,
        "follow_up_days": follow_up_days,
    }
    template = ScheduleTemplate(_intermittent_tamoxifen_schedule, slots, "intermittent_tamoxifen")
    template()
    return template
