"""Measurement tables for fitting: read tidy or PEtab-style tables into one checked form.

A measurement table has one row per measurement and the canonical columns
:data:`CANONICAL_COLUMNS`. Files and data frames may use the tidy names or the names of a
PEtab measurement table (``simulationConditionId``, ``observableId``, ``measurement``, ...).
Every check happens once, in :func:`read_measurements`; an error names the source, the column,
the offending values and their rows (0-based table rows and, for a file, its line numbers).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CANONICAL_COLUMNS", "REQUIRED_COLUMNS", "Measurements", "read_measurements"]

CANONICAL_COLUMNS = (
    "condition", "observable", "time", "value", "replicate", "sigma", "censored", "left_censored",
)  # fmt: skip
REQUIRED_COLUMNS = ("condition", "observable", "time", "value")

# PEtab measurement-table column -> canonical column ("time" is the same in both).
_PETAB_NAMES = {
    "simulationConditionId": "condition",
    "observableId": "observable",
    "measurement": "value",
    "noiseParameters": "sigma",
    "replicateId": "replicate",
}
_PETAB_IGNORED = ("preequilibrationConditionId", "observableParameters", "datasetId")
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_SHOWN = 10  # offending rows and values listed in a message; the rest are counted


@dataclass(frozen=True, eq=False)
class Measurements:
    """A checked measurement table; build it with :func:`read_measurements`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per measurement, index 0..n-1, columns :data:`CANONICAL_COLUMNS`:
        ``condition``, ``observable``, ``replicate`` (str), ``time`` (float, days), ``value``
        (float), ``sigma`` (float noise standard deviation; NaN where not given per row),
        ``censored`` (bool: the true value is above ``value``) and ``left_censored`` (bool: below
        a limit of detection, which ``value`` holds).
    source : str
        The file path read, or ``"<DataFrame>"``.
    extra_columns : tuple of str
        Columns of the source that are neither canonical nor PEtab names; they were ignored.
    file_lines : tuple of int or None
        For a file, the line on which each row starts (the header is line 1); None for a
        data frame. Errors about rows quote these lines.
    """

    table: pd.DataFrame
    source: str
    extra_columns: tuple[str, ...] = ()
    file_lines: tuple[int, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.table, pd.DataFrame):
            raise TypeError(f"`table` = {type(self.table).__name__}: expected a pandas.DataFrame")
        if tuple(self.table.columns) != CANONICAL_COLUMNS:
            raise ValueError(
                f"`table` has columns {list(self.table.columns)}: expected "
                f"{list(CANONICAL_COLUMNS)} (use `read_measurements` to build Measurements)"
            )
        if self.file_lines is not None and len(self.file_lines) != len(self.table):
            raise ValueError(
                f"`file_lines` has {len(self.file_lines)} entries: expected one per row "
                f"({len(self.table)})"
            )

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        """A summary: rows per condition and observable, their days and replicates, censored
        rows and given sigmas (``table`` has the rows)."""

        def count(n: int, word: str) -> str:
            return f"{n} {word}{'s' * (n != 1)}"

        t = self.table
        lines = [
            f"<tolsim Measurements from {self.source}: {count(len(t), 'row')}, "
            f"{count(len(self.conditions), 'condition')}, "
            f"{count(len(self.observables), 'observable')}>"
        ]
        for (condition, observable), group in t.groupby(["condition", "observable"], sort=False):
            parts = [
                count(len(group), "row"),
                f"days {group['time'].min():g} to {group['time'].max():g}",
                count(group["replicate"].nunique(), "replicate"),
            ]
            if group["censored"].any():
                parts.append(f"{int(group['censored'].sum())} censored")
            if group["left_censored"].any():
                parts.append(f"{int(group['left_censored'].sum())} below a detection limit")
            if group["sigma"].notna().any():
                parts.append(f"{int(group['sigma'].notna().sum())} with sigma")
            lines.append(f"  {condition} / {observable}: {', '.join(parts)}")
        if self.extra_columns:
            lines.append(f"  ignored columns: {', '.join(self.extra_columns)}")
        return "\n".join(lines)

    @property
    def conditions(self) -> tuple[str, ...]:
        """Condition names, each once, in order of first appearance."""
        return tuple(dict.fromkeys(self.table["condition"]))

    @property
    def observables(self) -> tuple[str, ...]:
        """Observable names, each once, in order of first appearance."""
        return tuple(dict.fromkeys(self.table["observable"]))

    def check(
        self, *, conditions: Iterable[str] | None = None, observables: Iterable[str] | None = None
    ) -> None:
        """Raise if a row names a condition or observable outside the given names.

        Parameters
        ----------
        conditions, observables : iterable of str, optional
            The valid names (e.g. the conditions a schedule table defines and the observables
            a model provides). None skips that check.

        Raises
        ------
        ValueError
            Naming each unknown value, its rows (and file lines) and the valid names.
        """
        problems = []
        for argument, column, valid in (
            ("conditions", "condition", conditions),
            ("observables", "observable", observables),
        ):
            if valid is None:
                continue
            if isinstance(valid, str):
                raise TypeError(
                    f"`{argument}` = {valid!r}: expected an iterable of names, not one string"
                )
            valid = list(dict.fromkeys(valid))
            allowed = set(valid)
            unknown: dict[str, list[int]] = {}
            for row, name in enumerate(self.table[column]):
                if name not in allowed:
                    unknown.setdefault(name, []).append(row)
            for name, rows in unknown.items():
                problems.append(
                    f"{column} {name!r} at {_where(rows, self.file_lines)} is not in "
                    f"`{argument}` = {valid}"
                )
        if problems:
            prefix = f"measurements from {_shown(self.source)}"
            raise ValueError(_problems_message(prefix, problems))

    def for_condition(self, name: str) -> pd.DataFrame:
        """The rows of one condition (a copy), indexed by their row numbers in :attr:`table`."""
        if name not in self.conditions:
            raise ValueError(
                f"`name` = {name!r}: no measurements of this condition in {_shown(self.source)}; "
                f"expected one of {list(self.conditions)}"
            )
        return self.table[self.table["condition"] == name].copy()


def read_measurements(
    path_or_frame: str | os.PathLike | pd.DataFrame, *, ignore: Sequence[str] = ()
) -> Measurements:
    """Read and check a measurement table: tidy or PEtab column names, CSV, TSV or a DataFrame.

    Parameters
    ----------
    path_or_frame : str, os.PathLike or pandas.DataFrame
        A CSV file (tab-separated when the name ends in ``.tsv``, as PEtab writes them), or a
        data frame, which is read and never modified. Columns, by tidy name (PEtab name):

        - ``condition`` (``simulationConditionId``): required, the experimental condition;
        - ``observable`` (``observableId``): required, what was measured;
        - ``time`` (``time``): required, days, finite and >= 0;
        - ``value`` (``measurement``): required, any finite number (a censored value is a
          bound, e.g. an event time not yet reached);
        - ``replicate`` (``replicateId``): optional, default ``"0"``; a whole number is one
          label however written (``1``, ``1.0`` and ``01`` are ``"1"``, from a file as from a
          data frame's numbers);
        - ``sigma`` (``noiseParameters``): optional noise standard deviation, a number > 0 or
          empty (NaN: not given per row); PEtab parameter names are not supported;
        - ``censored``: optional, ``true/false``, ``yes/no`` or ``1/0`` in any case; empty
          or absent means False. True: right-censored, the true value is above ``value``
          (e.g. no recurrence by the last visit, on that day);
        - ``left_censored``: optional, read as ``censored``. True: the measurement was below a
          limit of detection or quantification, which ``value`` holds (the true value is at
          most ``value``). A row cannot be censored both ways.

        ``datasetId`` is ignored, ``preequilibrationConditionId`` and
        ``observableParameters`` must be empty (a silently dropped value could mislead), and
        other columns are ignored and listed in ``extra_columns``, except those whose name
        reads as something tolsim would otherwise not see (:data:`LOOKALIKES`: a censoring
        flag such as ``right_censored``, a detection limit such as ``LOD``, units such as
        ``time_unit``, a noise scale such as ``sd`` or ``SEM``): they are an error unless
        named in ``ignore``. In a file, blank lines (and lines of empty fields) are skipped
        and cells are stripped of surrounding whitespace; so are the names (cells) of a data
        frame's ``condition``, ``observable`` and ``replicate`` columns.
    ignore : sequence of str
        Columns to ignore although their names read as censoring, limits, units or noise.

    Returns
    -------
    Measurements
        ``table`` with the canonical columns in :data:`CANONICAL_COLUMNS` order.

    Raises
    ------
    ValueError
        Naming the source and, where rows are at fault, their 0-based row numbers and, for a
        file, their line numbers (the header is line 1), for: missing required columns, a
        column given by both its tidy and its PEtab name, an empty table, empty required
        cells, non-numeric or non-finite numbers, negative times, sigma <= 0, non-numeric
        noise parameters, pre-equilibration, unreadable ``censored`` or ``left_censored``
        values, rows censored both ways and duplicated (condition, observable, time,
        replicate) rows.
    TypeError
        If `path_or_frame` is neither a path nor a DataFrame.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame(
    ...     {
    ...         "simulationConditionId": ["control", "control", "tamoxifen"],
    ...         "observableId": ["cells", "cells", "cells"],
    ...         "time": [0, 7, 7],
    ...         "measurement": [1.0, 2.1, 1.2],
    ...     }
    ... )
    >>> measurements = read_measurements(frame)
    >>> measurements.conditions, len(measurements)
    (('control', 'tamoxifen'), 3)
    >>> measurements.table
       condition observable  time  value replicate  sigma  censored  left_censored
    0    control      cells   0.0    1.0         0    NaN     False          False
    1    control      cells   7.0    2.1         0    NaN     False          False
    2  tamoxifen      cells   7.0    1.2         0    NaN     False          False
    """
    if isinstance(path_or_frame, pd.DataFrame):
        source = "<DataFrame>"
        header = [label if isinstance(label, str) else str(label) for label in path_or_frame]
        cells = [path_or_frame.iloc[:, i].tolist() for i in range(path_or_frame.shape[1])]
        n_rows, lines = path_or_frame.shape[0], None
    elif isinstance(path_or_frame, str | os.PathLike):
        source = os.fspath(path_or_frame)
        header, cells, lines = _read_text_table(source)
        n_rows = len(lines)
    else:
        raise TypeError(
            f"`path_or_frame` = {type(path_or_frame).__name__}: expected a path (str or "
            f"pathlib.Path) to a CSV/TSV file, or a pandas.DataFrame"
        )

    if isinstance(ignore, str) or not all(isinstance(name, str) for name in ignore):
        raise TypeError(f"`ignore` = {ignore!r}: expected a sequence of column names")
    where_column, ignored, extra = _map_columns(header, source)
    absent = [name for name in ignore if name not in header]
    if absent:
        raise ValueError(
            f"`ignore` = {list(ignore)!r} names {absent}, which {_shown(source)} does not have; "
            f"its columns are {header}"
        )
    lookalikes = [
        (name, meaning) for name in extra if name not in ignore for meaning in _lookalike(name)
    ]
    if lookalikes:
        shown = "; ".join(f"`{name}` reads as {meaning}" for name, meaning in lookalikes)
        names = [name for name, _ in lookalikes]
        raise ValueError(
            f"{_prefix(source)}: columns tolsim would ignore: {shown}. Rename or convert them, "
            f"or read the table with read_measurements(..., ignore={names!r}) (the command "
            f"line: `data.ignore_columns = {names!r}`)"
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in where_column]
    if missing:
        raise ValueError(
            f"{_prefix(source)}: missing required columns {missing}; found columns {header}; "
            f"expected {', '.join(REQUIRED_COLUMNS)} (the PEtab names simulationConditionId, "
            f"observableId, time, measurement are accepted too)"
        )
    if n_rows == 0:
        raise ValueError(f"{_prefix(source)}: the table has no rows; expected measurements")

    problems: list[str] = []
    unsupported = {
        "preequilibrationConditionId": "pre-equilibration is not supported",
        "observableParameters": "observable parameters are fitted by name in tolsim (e.g. "
        "`luminescence.alpha`), not set per row",
    }
    for name, why in unsupported.items():
        if name in ignored:
            column = cells[ignored[name]]
            rows = [row for row, cell in enumerate(column) if not _is_empty(cell)]
            if rows:
                problems.append(
                    f"column `{name}` is set at {_where(rows, lines)}; {why} (leave the "
                    "column empty)"
                )

    def column_of(name: str) -> tuple[str, list | None]:
        if name not in where_column:
            return f"column `{name}`", None
        index = where_column[name]
        given = header[index]
        label = f"column `{given}`" if given == name else f"column `{given}` ({name})"
        return label, cells[index]

    parsed: dict[str, np.ndarray | list] = {}
    for name in ("condition", "observable", "replicate"):
        label, column = column_of(name)
        parsed[name] = _parse_names(column, name, label, n_rows, lines, problems)
    for name in ("time", "value", "sigma"):
        label, column = column_of(name)
        parsed[name] = _parse_numbers(column, name, label, n_rows, lines, problems)
    for name in ("censored", "left_censored"):
        label, column = column_of(name)
        parsed[name] = _parse_flags(column, label, n_rows, lines, problems)
    both = [
        row for row in range(n_rows) if parsed["censored"][row] and parsed["left_censored"][row]
    ]
    if both:
        problems.append(
            f"{_where(both, lines)}: marked both `censored` (the true value is above "
            "`value`) and `left_censored` (at most `value`); expected one or neither"
        )
    if problems:
        raise ValueError(_problems_message(_prefix(source), problems))

    table = pd.DataFrame(
        {
            "condition": pd.Series(parsed["condition"], dtype=str),
            "observable": pd.Series(parsed["observable"], dtype=str),
            "time": pd.Series(parsed["time"], dtype=np.float64),
            "value": pd.Series(parsed["value"], dtype=np.float64),
            "replicate": pd.Series(parsed["replicate"], dtype=str),
            "sigma": pd.Series(parsed["sigma"], dtype=np.float64),
            "censored": pd.Series(parsed["censored"], dtype=bool),
            "left_censored": pd.Series(parsed["left_censored"], dtype=bool),
        }
    )
    _check_duplicates(table, source, lines)
    return Measurements(
        table=table,
        source=source,
        extra_columns=tuple(extra),
        file_lines=None if lines is None else tuple(lines),
    )


# ---------------------------------------------------------------------------------------------
# reading and column names


def _read_text_table(path: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, columns of stripped cells, and the file line on which each kept row starts."""
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    ragged: list[str] = []
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file, delimiter=delimiter)
        start = 1
        try:
            for record in reader:
                record = [cell.strip() for cell in record]
                if any(record):
                    if header is None:
                        header = record
                    elif len(record) != len(header):
                        ragged.append(f"line {start} has {len(record)}")
                    else:
                        rows.append(record)
                        lines.append(start)
                start = reader.line_num + 1
        except UnicodeDecodeError:
            raise ValueError(f"{_prefix(path)}: {_not_utf8(path)}") from None
    if header is None:
        raise ValueError(f"{_prefix(path)}: the file is empty; expected a header line")
    if ragged:
        more = f" and {len(ragged) - _SHOWN} more" if len(ragged) > _SHOWN else ""
        raise ValueError(
            f"{_prefix(path)}: {', '.join(ragged[:_SHOWN])}{more} fields, but the header has "
            f"{len(header)} ({'tab' if delimiter == chr(9) else 'comma'}-separated); expected "
            f"the same number of fields on every line"
        )
    cells = [[row[i] for row in rows] for i in range(len(header))]
    return header, cells, lines


def _not_utf8(path: str) -> str:
    """Where a file first fails to decode as UTF-8 (the text of the error)."""
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return (
                    f"line {number} holds byte(s) {line[error.start : error.end]!r}, which are "
                    "not UTF-8; expected a UTF-8 text file (save it as UTF-8, e.g. 'CSV UTF-8' "
                    "in a spreadsheet)"
                )
    return "not UTF-8; expected a UTF-8 text file"


# a whole number written as a file might ("1", "01", "+1", "1.0"; not "1_2" or "1e3")
_WHOLE_NUMBER = re.compile(r"([+-]?\d+)(?:\.0*)?")

# extra columns whose names read as something tolsim reads from other columns, or not at all:
# ignored silently, they would change the fit without a trace (a right-censored row read as
# a value, hours read as days)
LOOKALIKES = (
    (
        ("censor",),
        (),
        "a censoring flag (tolsim reads `censored`, true where the true value is above "
        "`value`, and `left_censored`, below it)",
    ),
    (
        ("detectionlimit", "limitofdetection", "quantificationlimit", "limitofquantification"),
        ("lod", "loq", "lloq", "uloq", "llod"),
        "a detection limit (give such a row the limit as its `value`, with `left_censored` true)",
    ),
    (
        (),
        ("unit", "units"),
        "units (tolsim reads `time` in days and `value` in the observable's unit: convert)",
    ),
    (
        ("stdev", "stddev", "deviation", "uncertainty"),
        ("sd", "std", "sem", "se", "stderr", "sigma"),
        "a noise scale (tolsim reads a row's standard deviation from `sigma`)",
    ),
)


# the columns whose units tolsim fixes: a units column names one of them, or nothing else
_UNIT_OF = {"unit", "units", "time", "times", "value", "values", "measurement", "day", "days"}


def _lookalike(name: str) -> list[str]:
    """What ``name`` reads as among :data:`LOOKALIKES` (none: an unrelated column)."""
    joined = re.sub(r"[^a-z0-9]", "", name.lower())
    words = set(re.findall(r"[a-z]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()))
    found = []
    for parts, tokens, meaning in LOOKALIKES:
        hit = any(part in joined for part in parts) or bool(words & set(tokens))
        if hit and "units" in tokens:  # `dose_unit`, `imaging_unit`: other quantities' units
            hit = words <= _UNIT_OF
        if hit:
            found.append(meaning)
    return found


def _map_columns(
    header: Sequence[str], source: str
) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Canonical name -> column index, ignored PEtab name -> index, and unknown names."""
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(
            f"{_prefix(source)}: columns {repeated} appear more than once; expected unique "
            f"column names"
        )
    where_column: dict[str, int] = {}
    ignored: dict[str, int] = {}
    extra: list[str] = []
    for index, name in enumerate(header):
        if name in _PETAB_IGNORED:
            ignored[name] = index
            continue
        canonical = _PETAB_NAMES.get(name, name if name in CANONICAL_COLUMNS else None)
        if canonical is None:
            extra.append(name)
        elif canonical in where_column:
            raise ValueError(
                f"{_prefix(source)}: columns `{header[where_column[canonical]]}` and `{name}` "
                f"both give `{canonical}`; expected either the tidy or the PEtab name, not both"
            )
        else:
            where_column[canonical] = index
    return where_column, ignored, extra


# ---------------------------------------------------------------------------------------------
# cells


def _is_empty(cell: object) -> bool:
    if isinstance(cell, str):
        return not cell.strip()
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return True
    return isinstance(cell, float | np.floating) and math.isnan(cell)


def _parse_names(column, name, label, n_rows, lines, problems) -> list[str]:
    if column is None:  # only `replicate` is optional
        return ["0"] * n_rows
    names, empty = [], []
    for row, cell in enumerate(column):
        if _is_empty(cell):
            if name != "replicate":
                empty.append(row)
            names.append("0")
        elif isinstance(cell, str):
            names.append(cell.strip())
            whole = _WHOLE_NUMBER.fullmatch(names[-1])
            if name == "replicate" and whole:  # as a data frame's numbers read: 1.0 is "1"
                names[-1] = str(int(whole[1]))
        elif isinstance(cell, float | np.floating) and float(cell).is_integer():
            names.append(str(int(cell)))  # a numeric column with gaps is float: 1.0 is "1"
        else:
            names.append(str(cell))
    if empty:
        problems.append(
            f"{label} is empty at {_where(empty, lines)}; every measurement needs a {name}"
        )
    return names


def _parse_numbers(column, name, label, n_rows, lines, problems) -> np.ndarray:
    numbers = np.full(n_rows, np.nan)
    if column is None:  # only `sigma` is optional
        return numbers
    empty, non_numeric, non_finite, nan = [], [], [], []
    for row, cell in enumerate(column):
        if _is_empty(cell):
            empty.append(row)
            continue
        try:
            if isinstance(cell, bool | np.bool_):
                raise TypeError
            number = float(cell.strip() if isinstance(cell, str) else cell)
        except (TypeError, ValueError):
            non_numeric.append(row)
            continue
        if math.isnan(number):
            nan.append(row)
        elif math.isinf(number):
            non_finite.append(row)
        else:
            numbers[row] = number
    if empty and name != "sigma":
        problems.append(
            f"{label} is empty at {_where(empty, lines)}; every measurement needs a {name}"
        )
    if nan and name != "sigma":
        problems.append(
            f"{label} is NaN at {_where(nan, lines)}; every measurement needs a {name} (leave "
            "a missing measurement out of the table)"
        )
    if non_numeric:
        values = _values([column[row] for row in non_numeric])
        if "`noiseParameters`" in label:
            expected = (
                "only numeric noise parameters are supported (one number per row, the noise "
                "standard deviation), not parameter names or formulas"
            )
        else:
            expected = "expected numbers"
        problems.append(
            f"{label} has non-numeric values {values} at {_where(non_numeric, lines)}; {expected}"
        )
    if non_finite:
        values = _values([column[row] for row in non_finite])
        problems.append(
            f"{label} has non-finite values {values} at {_where(non_finite, lines)}; "
            f"expected finite numbers"
        )
    if name == "time":
        negative = np.flatnonzero(numbers < 0).tolist()
        if negative:
            problems.append(
                f"{label} has negative values {_values(numbers[negative].tolist())} at "
                f"{_where(negative, lines)}; expected times >= 0 days"
            )
    elif name == "sigma":
        not_positive = np.flatnonzero(numbers <= 0).tolist()
        if not_positive:
            problems.append(
                f"{label} has values <= 0 {_values(numbers[not_positive].tolist())} "
                f"at {_where(not_positive, lines)}; expected a noise standard deviation > 0 "
                f"(leave the cell empty where it is not given)"
            )
    return numbers


def _parse_flags(column, label, n_rows, lines, problems) -> list[bool]:
    if column is None:
        return [False] * n_rows
    flags, unreadable = [], []
    for row, cell in enumerate(column):
        flag = _flag(cell)
        if flag is None:
            unreadable.append(row)
        flags.append(bool(flag))
    if unreadable:
        values = _values([column[row] for row in unreadable])
        problems.append(
            f"{label} has values {values} at {_where(unreadable, lines)}; expected "
            f"true/false, yes/no or 1/0 (any case), or empty for false"
        )
    return flags


def _flag(cell: object) -> bool | None:
    """True, False, or None where the cell cannot be read as a flag."""
    if _is_empty(cell):
        return False
    if isinstance(cell, bool | np.bool_):
        return bool(cell)
    if isinstance(cell, str):
        text = cell.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    if isinstance(cell, int | float | np.integer | np.floating) and cell in (0, 1):
        return bool(cell)
    return None


def _check_duplicates(table: pd.DataFrame, source: str, lines) -> None:
    keys = ["condition", "observable", "time", "replicate"]
    rows_of: dict[tuple, list[int]] = {}
    for row, key in enumerate(zip(*(table[name].tolist() for name in keys), strict=True)):
        rows_of.setdefault(key, []).append(row)
    repeated = [(key, rows) for key, rows in rows_of.items() if len(rows) > 1]
    if repeated:
        listed = "; ".join(f"{_where(rows, lines)} {key}" for key, rows in repeated[:_SHOWN]) + (
            f"; and {len(repeated) - _SHOWN} more" if len(repeated) > _SHOWN else ""
        )
        raise ValueError(
            f"{_prefix(source)}: duplicated measurements (same condition, observable, time and "
            f"replicate): {listed}; expected one row per key (give repeats their own "
            f"`replicate`)"
        )


# ---------------------------------------------------------------------------------------------
# messages


def _shown(source: str) -> str:
    return source if source == "<DataFrame>" else repr(source)


def _prefix(source: str) -> str:
    return f"`path_or_frame` = {_shown(source)}"


def _problems_message(prefix: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{prefix}: {problems[0]}"
    return f"{prefix}: {len(problems)} problems:" + "".join(f"\n  - {p}" for p in problems)


def _where(rows: Sequence[int], lines: Sequence[int] | None) -> str:
    """``row 3 (file line 5)`` or ``rows [3, 7] (file lines 5, 9)``, the first few of many."""
    shown = list(rows[:_SHOWN])
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    if len(rows) == 1:
        text = f"row {shown[0]}"
        return text if lines is None else f"{text} (file line {lines[shown[0]]})"
    text = f"rows {shown}"
    if lines is not None:
        text += f" (file lines {', '.join(str(lines[row]) for row in shown)})"
    return text + more


def _values(values: list) -> str:
    shown = [value.strip() if isinstance(value, str) else value for value in values[:_SHOWN]]
    return repr(shown) + (", ..." if len(values) > _SHOWN else "")
