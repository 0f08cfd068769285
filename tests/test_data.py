"""Tests of tolsim.data: reading tidy and PEtab measurement tables, defaults, every error."""

from __future__ import annotations

import doctest
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tolsim.data
from tolsim.data import CANONICAL_COLUMNS, Measurements, read_measurements

TIDY_CSV = """\
condition,observable,time,value,replicate,sigma,censored
control,cells,0,1.0,r1,0.1,false
control,cells,7,2.1,r1,0.2,false
tamoxifen,cells,7,1.2,r2,,false
tamoxifen,recurrence,30,45,r2,,true
"""

# The same measurements with PEtab names, another column order and the PEtab columns we ignore.
PETAB_HEADER = (
    "observableId",
    "preequilibrationConditionId",
    "simulationConditionId",
    "measurement",
    "time",
    "observableParameters",
    "noiseParameters",
    "datasetId",
    "replicateId",
    "censored",
)
PETAB_ROWS = (
    ("cells", "", "control", "1.0", "0", "", "0.1", "d1", "r1", "false"),
    ("cells", "", "control", "2.1", "7", "", "0.2", "d1", "r1", "false"),
    ("cells", "", "tamoxifen", "1.2", "7", "", "", "d2", "r2", "false"),
    ("recurrence", "", "tamoxifen", "45", "30", "", "", "d2", "r2", "true"),
)


def petab_text(separator: str) -> str:
    return "".join(separator.join(row) + "\n" for row in (PETAB_HEADER, *PETAB_ROWS))


def canonical(rows) -> pd.DataFrame:
    """The canonical table of (condition, observable, time, value, replicate, sigma, censored,
    left_censored); rows without the last are not left-censored."""
    rows = [(*row, False) if len(row) == len(CANONICAL_COLUMNS) - 1 else row for row in rows]
    columns = list(zip(*rows, strict=True)) if rows else [[]] * len(CANONICAL_COLUMNS)
    dtypes = (str, str, np.float64, np.float64, str, np.float64, bool, bool)
    return pd.DataFrame(
        {
            name: pd.Series(list(values), dtype=dtype)
            for name, values, dtype in zip(CANONICAL_COLUMNS, columns, dtypes, strict=True)
        }
    )


EXPECTED = canonical(
    [
        ("control", "cells", 0.0, 1.0, "r1", 0.1, False),
        ("control", "cells", 7.0, 2.1, "r1", 0.2, False),
        ("tamoxifen", "cells", 7.0, 1.2, "r2", math.nan, False),
        ("tamoxifen", "recurrence", 30.0, 45.0, "r2", math.nan, True),
    ]
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def minimal_frame(**columns) -> pd.DataFrame:
    """Three valid rows with only the required columns, overridden or extended by `columns`."""
    data = {
        "condition": ["control", "control", "tamoxifen"],
        "observable": ["cells", "cells", "cells"],
        "time": [0.0, 7.0, 7.0],
        "value": [1.0, 2.1, 1.2],
    }
    data.update(columns)
    return pd.DataFrame(data)


# ---------------------------------------------------------------------------------------------
# reading


def test_tidy_csv_and_petab_csv_and_tsv_read_to_the_same_table(tmp_path):
    tidy = read_measurements(write(tmp_path, "tidy.csv", TIDY_CSV))
    petab_csv = read_measurements(write(tmp_path, "petab.csv", petab_text(",")))
    petab_tsv = read_measurements(str(write(tmp_path, "petab.tsv", petab_text("\t"))))
    for measurements in (tidy, petab_csv, petab_tsv):
        pd.testing.assert_frame_equal(measurements.table, EXPECTED)
        assert measurements.extra_columns == ()
        assert measurements.file_lines == (2, 3, 4, 5)
    assert petab_tsv.source == str(tmp_path / "petab.tsv")
    assert isinstance(petab_tsv.table.index, pd.RangeIndex)


def test_a_dataframe_reads_like_its_csv_and_is_not_modified(tmp_path):
    frame = pd.DataFrame(PETAB_ROWS, columns=list(PETAB_HEADER))  # all strings, as in a file
    frame["measurement"] = frame["measurement"].astype(float)
    frame.loc[0, "simulationConditionId"] = "  control "  # names are stripped, not the input
    before = frame.copy(deep=True)
    measurements = read_measurements(frame)
    pd.testing.assert_frame_equal(measurements.table, EXPECTED)
    pd.testing.assert_frame_equal(frame, before)
    assert measurements.source == "<DataFrame>"
    assert measurements.file_lines is None
    measurements.table.loc[0, "value"] = -5.0  # the table is a copy, not a view of the input
    pd.testing.assert_frame_equal(frame, before)


def test_numeric_replicates_of_a_frame_name_them_as_a_file_does(tmp_path):
    """A numeric replicate column with a gap is float in pandas: 1.0 must be replicate "1", as
    the same file's cell "1" is, and the gap the default "0"."""
    rows = {"condition": ["a", "a", "a"], "observable": ["cells"] * 3, "time": [1.0, 1.0, 1.0],
            "value": [1.0, 2.0, 3.0]}  # fmt: skip
    frame = pd.DataFrame({**rows, "replicate": [1, 2, None]})
    assert frame["replicate"].dtype == np.float64
    path = tmp_path / "m.csv"
    frame.assign(replicate=["1", "2", ""]).to_csv(path, index=False)
    from_frame, from_file = read_measurements(frame), read_measurements(path)
    assert from_frame.table["replicate"].tolist() == ["1", "2", "0"]
    pd.testing.assert_frame_equal(from_frame.table, from_file.table)
    with pytest.raises(ValueError, match="one row per key"):  # 0.0 and a gap are one replicate
        read_measurements(pd.DataFrame({**rows, "replicate": [1, 0.0, None]}))


def test_absent_optional_columns_take_their_defaults():
    measurements = read_measurements(minimal_frame())
    table = measurements.table
    assert tuple(table.columns) == CANONICAL_COLUMNS
    assert table["replicate"].tolist() == ["0", "0", "0"]
    assert table["sigma"].isna().all()
    assert table["censored"].tolist() == [False, False, False]
    assert table["censored"].dtype == bool
    assert table["time"].dtype == np.float64 and table["value"].dtype == np.float64
    assert len(measurements) == 3


def test_empty_optional_cells_take_their_defaults(tmp_path):
    text = (
        "condition,observable,time,value,replicate,sigma,censored\na,N,0,1,,,\na,N,1,2,r,0.5,yes\n"
    )
    table = read_measurements(write(tmp_path, "m.csv", text)).table
    assert table["replicate"].tolist() == ["0", "r"]
    assert math.isnan(table.loc[0, "sigma"]) and table.loc[1, "sigma"] == 0.5
    assert table["censored"].tolist() == [False, True]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("yes", True),
        ("Yes", True),
        ("1", True),
        (" 1 ", True),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("NO", False),
        ("0", False),
    ],
)
def test_censored_strings_are_read_case_insensitively(tmp_path, cell, expected):
    text = f"condition,observable,time,value,censored\na,N,0,1,{cell}\n"
    assert read_measurements(write(tmp_path, "m.csv", text)).table["censored"].tolist() == [
        expected
    ]


@pytest.mark.parametrize(
    "column",
    [[True, False, True], [1, 0, 1], [1.0, 0.0, 1.0], ["Yes", "no", "TRUE"], np.array([1, 0, 1])],
)
def test_censored_columns_of_a_dataframe(column):
    table = read_measurements(minimal_frame(censored=column)).table
    assert table["censored"].tolist() == [True, False, True]


def test_left_censored_rows_are_read_and_cannot_also_be_censored(tmp_path):
    text = (
        "condition,observable,time,value,censored,left_censored\n"
        "a,N,0,5,,\n"
        "a,N,7,0.1,no,yes\n"  # below a detection limit of 0.1
        "a,N,9,3,true,\n"
    )
    measurements = read_measurements(write(tmp_path, "m.csv", text))
    assert measurements.table["left_censored"].tolist() == [False, True, False]
    assert measurements.table["censored"].tolist() == [False, False, True]
    assert repr(measurements).splitlines()[1] == (
        "  a / N: 3 rows, days 0 to 9, 1 replicate, 1 censored, 1 below a detection limit"
    )
    frame = minimal_frame(censored=[True, False, False], left_censored=[True, False, True])
    with pytest.raises(ValueError, match=r"row 0: marked both `censored`.*and `left_censored`"):
        read_measurements(frame)
    both = text.replace("a,N,9,3,true,", "a,N,9,3,true,1")
    with pytest.raises(ValueError, match=r"row 2 \(file line 4\): marked both `censored`"):
        read_measurements(write(tmp_path, "both.csv", both))
    unreadable = text.replace("no,yes", "no,below")
    with pytest.raises(ValueError, match=r"column `left_censored` has values \['below'\]"):
        read_measurements(write(tmp_path, "bad.csv", unreadable))


def test_numbers_given_as_strings_or_integers_are_floats():
    frame = minimal_frame(time=["0", " 7 ", "7.0"], value=[1, 2, 3], replicate=[1, 1, 2])
    table = read_measurements(frame).table
    assert table["time"].tolist() == [0.0, 7.0, 7.0]
    assert table["value"].tolist() == [1.0, 2.0, 3.0]
    assert table["replicate"].tolist() == ["1", "1", "2"]


def test_replicates_written_as_whole_numbers_are_one_label_from_a_file_or_a_frame(tmp_path):
    # from a file "1" and "1.0" were two replicates, from pandas.read_csv one (a duplicate)
    text = "condition,observable,time,value,replicate\na,N,0,1,1\na,N,7,2,1.0\na,N,7,3,02\n"
    path = write(tmp_path, "m.csv", text)
    assert read_measurements(path).table["replicate"].tolist() == ["1", "1", "2"]
    assert read_measurements(pd.read_csv(path)).table["replicate"].tolist() == ["1", "1", "2"]
    clash = write(tmp_path, "c.csv", text.replace("a,N,7,3,02", "a,N,7,3,1"))
    with pytest.raises(ValueError, match="duplicate"):
        read_measurements(clash)
    with pytest.raises(ValueError, match="duplicate"):
        read_measurements(pd.read_csv(clash))
    labels = "condition,observable,time,value,replicate\n" + "".join(
        f"a,N,0,{i},{label}\n" for i, label in enumerate(["r1", "1.5", "1_2", "12", "1e3", "+7"])
    )  # (float() read "1_2" as 12 and "1e3" as 1000)
    table = read_measurements(write(tmp_path, "l.csv", labels)).table
    assert table["replicate"].tolist() == ["r1", "1.5", "1_2", "12", "1e3", "7"]


def test_unknown_columns_are_ignored_and_recorded():
    frame = minimal_frame(notes=["x", "y", "z"], plate=[1, 2, 3], datasetId=["d", "d", "d"])
    measurements = read_measurements(frame)
    assert measurements.extra_columns == ("notes", "plate")
    assert tuple(measurements.table.columns) == CANONICAL_COLUMNS


@pytest.mark.parametrize(
    ("column", "meaning"),
    [
        ("right_censored", "a censoring flag"),
        ("isCensored", "a censoring flag"),
        ("LOD", "a detection limit"),
        ("detection_limit", "a detection limit"),
        ("time_unit", "units"),
        ("timeUnit", "units"),
        ("sd", "a noise scale"),
        ("SEM", "a noise scale"),
        ("value_std", "a noise scale"),
        ("standard_deviation", "a noise scale"),
    ],
)
def test_columns_that_read_as_censoring_limits_units_or_noise_are_refused(column, meaning):
    """Ignored, they changed the fit without a trace: a `right_censored` row was read as a
    value (its nllh 101 instead of ~0), a `time_unit` of hours as days."""
    frame = minimal_frame(**{column: ["h", "h", "h"]})
    message = (
        rf"columns tolsim would ignore: `{column}` reads as {meaning} .*read the table with "
        rf"read_measurements\(\.\.\., ignore=\['{column}'\]\)"
    )
    with pytest.raises(ValueError, match=message):
        read_measurements(frame)
    measurements = read_measurements(frame, ignore=[column])
    assert measurements.extra_columns == (column,)


def test_unrelated_columns_are_not_taken_for_lookalikes():
    names = ["notes", "plate", "sex", "series", "cell_line", "description", "seeding", "dose"]
    # other quantities' units and limits (a review found these refused)
    names += ["dose_unit", "imaging_unit", "detection_method", "seeding_density_limit"]
    frame = minimal_frame(**{name: ["x", "y", "z"] for name in names})
    assert read_measurements(frame).extra_columns == tuple(names)
    with pytest.raises(TypeError, match=r"`ignore` = 'sd': expected a sequence of column"):
        read_measurements(frame, ignore="sd")
    with pytest.raises(ValueError, match=r"`ignore` = \['sd'\] names \['sd'\], which <DataF"):
        read_measurements(frame, ignore=["sd"])


def test_blank_lines_are_skipped_and_file_lines_stay_exact(tmp_path):
    text = "condition,observable,time,value\n\na,N,0,1\n,,,\na,N,-1,1\n"
    with pytest.raises(ValueError, match=re.escape("at row 1 (file line 5)")):
        read_measurements(write(tmp_path, "m.csv", text))
    text = 'condition,observable,time,value\n"a\nb",N,0,1\na,N,1,2\n'  # a quoted line break
    measurements = read_measurements(write(tmp_path, "n.csv", text))
    assert measurements.conditions == ("a\nb", "a")
    assert measurements.file_lines == (2, 4)


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("condition,observable,time,value\na,N,0,1\n", encoding="utf-8-sig")
    assert read_measurements(path).conditions == ("a",)


def test_a_file_not_in_utf8_is_refused_naming_its_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "condition,observable,time,value\na,N,0,1\ncontrôle,N,1,2\n".encode("latin-1")
    )
    with pytest.raises(ValueError, match=r"latin1.csv.*line 3 holds byte\(s\) b'\\xf4'.*UTF-8"):
        read_measurements(path)


# ---------------------------------------------------------------------------------------------
# errors


def test_missing_required_columns_are_listed_with_the_columns_found():
    frame = pd.DataFrame({"simulationConditionId": ["a"], "observable": ["N"], "v": [1.0]})
    message = (
        r"`path_or_frame` = <DataFrame>: missing required columns \['time', 'value'\]; "
        r"found columns \['simulationConditionId', 'observable', 'v'\].*PEtab names"
    )
    with pytest.raises(ValueError, match=message):
        read_measurements(frame)


@pytest.mark.parametrize(
    "text",
    [
        "condition,observable,time,value\n",
        "condition,observable,time,value\n\n\n",
    ],
)
def test_an_empty_table_is_an_error(tmp_path, text):
    path = write(tmp_path, "m.csv", text)
    with pytest.raises(ValueError, match=re.escape(f"`path_or_frame` = {str(path)!r}: the table")):
        read_measurements(path)


def test_an_empty_file_and_an_empty_frame_are_errors(tmp_path):
    with pytest.raises(ValueError, match="the file is empty; expected a header line"):
        read_measurements(write(tmp_path, "m.csv", "\n"))
    with pytest.raises(ValueError, match="the table has no rows"):
        read_measurements(minimal_frame().iloc[:0])


@pytest.mark.parametrize("column", ["condition", "observable", "time", "value"])
def test_empty_required_cells_are_errors_with_rows_and_lines(tmp_path, column):
    rows = [["a", "N", "0", "1"], ["a", "N", "1", "2"], ["b", "N", "2", "3"], ["b", "N", "3", "4"]]
    index = ["condition", "observable", "time", "value"].index(column)
    rows[1][index] = ""
    rows[3][index] = "  "
    text = "condition,observable,time,value\n" + "".join(",".join(r) + "\n" for r in rows)
    message = f"column `{column}` is empty at rows [1, 3] (file lines 3, 5)"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.csv", text))


@pytest.mark.parametrize("missing", [None, math.nan, pd.NA])
def test_missing_values_in_a_frame_are_errors_with_rows(missing):
    frame = minimal_frame(condition=["a", missing, "b"], value=[missing, 1.0, 2.0])
    with pytest.raises(ValueError, match="2 problems") as error:
        read_measurements(frame)
    assert "column `condition` is empty at row 1; every measurement needs a condition" in str(
        error.value
    )
    assert "column `value` is empty at row 0;" in str(error.value)
    assert "file line" not in str(error.value)


@pytest.mark.parametrize(
    ("column", "bad"),
    [("time", "seven"), ("value", "1,5"), ("sigma", "high"), ("value", "nan?")],
)
def test_non_numeric_numbers_are_errors_with_rows_and_lines(tmp_path, column, bad):
    cells = {"time": "1", "value": "2", "sigma": "0.1"} | {column: bad}
    text = "condition\tobservable\ttime\tvalue\tsigma\na\tN\t0\t1\t0.1\n"
    text += "a\tN\t{time}\t{value}\t{sigma}\n".format(**cells)
    message = f"column `{column}` has non-numeric values [{bad!r}] at row 1 (file line 3)"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.tsv", text))


def test_booleans_are_not_numbers():
    with pytest.raises(ValueError, match=re.escape("non-numeric values [True] at row 2")):
        read_measurements(minimal_frame(time=[0.0, 1.0, True]))


@pytest.mark.parametrize("column", ["time", "value", "sigma"])
def test_infinite_numbers_are_errors(column):
    frame = minimal_frame(sigma=[0.1, 0.1, 0.1])
    frame[column] = [0.1, math.inf, -math.inf]
    message = f"column `{column}` has non-finite values [inf, -inf] at rows [1, 2]"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(frame)


def test_negative_times_are_errors_with_rows_lines_and_values(tmp_path):
    text = "condition,observable,time,value\n" + "".join(
        f"a,N,{t},1\n" for t in ["0", "1", "2", "-3", "4", "5", "6", "-0.5", "8"]
    )
    message = (
        "column `time` has negative values [-3.0, -0.5] at rows [3, 7] (file lines 5, 9); "
        "expected times >= 0 days"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.csv", text))


def test_negative_values_are_allowed():
    assert read_measurements(minimal_frame(value=[-1.0, 0.0, 1e300])).table["value"].iloc[0] == -1


@pytest.mark.parametrize("name", ["sigma", "noiseParameters"])
def test_sigma_at_or_below_zero_is_an_error(name):
    frame = minimal_frame(**{name: [0.1, 0.0, -2.0]})
    label = "`sigma`" if name == "sigma" else "`noiseParameters` (sigma)"
    message = f"column {label} has values <= 0 [0.0, -2.0] at rows [1, 2]; expected a noise"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(frame)


def test_non_numeric_noise_parameters_are_not_supported(tmp_path):
    text = petab_text("\t").replace("\t0.2\t", "\tsd_cells\t")
    message = (
        "column `noiseParameters` (sigma) has non-numeric values ['sd_cells'] at row 1 "
        "(file line 3); only numeric noise parameters are supported"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.tsv", text))


def test_observable_parameters_per_row_are_refused(tmp_path):
    text = petab_text(",").replace("2.1,7,,0.2", "2.1,7,scale,0.2")
    message = (
        "column `observableParameters` is set at row 1 (file line 3); observable parameters "
        "are fitted by name"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.csv", text))


def test_preequilibration_is_not_supported(tmp_path):
    text = petab_text(",").replace("cells,,tamoxifen", "cells,steady,tamoxifen")
    message = (
        "column `preequilibrationConditionId` is set at row 2 (file line 4); "
        "pre-equilibration is not supported"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.csv", text))


@pytest.mark.parametrize(
    ("tidy", "petab"),
    [
        ("condition", "simulationConditionId"),
        ("observable", "observableId"),
        ("value", "measurement"),
        ("sigma", "noiseParameters"),
        ("replicate", "replicateId"),
    ],
)
def test_tidy_and_petab_names_for_one_column_are_an_error(tidy, petab):
    frame = minimal_frame(**{tidy: ["x", "y", "z"], petab: ["x", "y", "z"]})
    message = f"columns `{tidy}` and `{petab}` both give `{tidy}`"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(frame)


def test_repeated_column_names_are_an_error(tmp_path):
    text = "condition,observable,time,value,time\na,N,0,1,2\n"
    with pytest.raises(ValueError, match=re.escape("columns ['time'] appear more than once")):
        read_measurements(write(tmp_path, "m.csv", text))


def test_lines_with_the_wrong_number_of_fields_are_an_error(tmp_path):
    text = "condition,observable,time,value\na,N,0,1\na,N,1\na,N,2,3,4\n"
    message = "line 3 has 3, line 4 has 5 fields, but the header has 4 (comma-separated)"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.csv", text))


def test_unreadable_censored_values_are_errors(tmp_path):
    text = "condition,observable,time,value,censored\na,N,0,1,yes\na,N,1,2,maybe\na,N,2,3,2\n"
    message = "column `censored` has values ['maybe', '2'] at rows [1, 2] (file lines 3, 4)"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.csv", text))


def test_duplicated_measurements_are_listed(tmp_path):
    text = (
        "condition,observable,time,value,replicate\n"
        "a,N,0,1,r1\n"
        "a,N,0,2,r2\n"
        "a,N,7,3,r1\n"
        "a,N,0,4,r1\n"
        "b,N,7,5,r1\n"
        "a,N,7.0,6,r1\n"
    )
    with pytest.raises(ValueError, match="duplicated measurements") as error:
        read_measurements(write(tmp_path, "m.csv", text))
    assert "rows [0, 3] (file lines 2, 5) ('a', 'N', 0.0, 'r1')" in str(error.value)
    assert "rows [2, 5] (file lines 4, 7) ('a', 'N', 7.0, 'r1')" in str(error.value)
    assert "row 1" not in str(error.value) and "row 4" not in str(error.value)


def test_duplicates_by_default_replicate_are_an_error():
    with pytest.raises(ValueError, match=re.escape("rows [1, 2] ('control', 'cells', 7.0, '0')")):
        read_measurements(minimal_frame(condition=["control"] * 3))


def test_long_lists_of_rows_are_cut_short():
    frame = minimal_frame(
        condition=["a"] * 30, observable=["N"] * 30, time=[-1.0] * 30, value=np.arange(30.0)
    )
    with pytest.raises(ValueError, match=re.escape("rows [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] and 20")):
        read_measurements(frame)


def test_several_problems_are_reported_together(tmp_path):
    text = "condition,observable,time,value,sigma\n,N,-1,x,0\n"
    with pytest.raises(ValueError, match="4 problems") as error:
        read_measurements(write(tmp_path, "m.csv", text))
    for column in ("condition", "time", "value", "sigma"):
        assert f"column `{column}`" in str(error.value)


def test_other_inputs_are_a_type_error():
    with pytest.raises(TypeError, match=r"`path_or_frame` = dict: expected a path"):
        read_measurements({"condition": ["a"]})


def test_a_missing_file_is_reported_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        read_measurements(tmp_path / "absent.csv")


# ---------------------------------------------------------------------------------------------
# Measurements


def test_conditions_and_observables_in_order_of_first_appearance():
    frame = minimal_frame(
        condition=["z", "a", "z", "m"],
        observable=["y", "y", "b", "c"],
        time=[0.0, 1.0, 2.0, 3.0],
        value=[1.0, 2.0, 3.0, 4.0],
    )
    measurements = read_measurements(frame)
    assert measurements.conditions == ("z", "a", "m")
    assert measurements.observables == ("y", "b", "c")


def test_check_names_unknown_conditions_and_observables_with_rows(tmp_path):
    measurements = read_measurements(write(tmp_path, "m.csv", TIDY_CSV))
    measurements.check(conditions=["tamoxifen", "control"], observables=("cells", "recurrence"))
    measurements.check()
    with pytest.raises(ValueError) as error:
        measurements.check(conditions={"control": 1}, observables=["cells"])
    message = str(error.value)
    assert message.startswith(f"measurements from {str(tmp_path / 'm.csv')!r}: 2 problems")
    assert (
        "condition 'tamoxifen' at rows [2, 3] (file lines 4, 5) is not in "
        "`conditions` = ['control']" in message
    )
    assert (
        "observable 'recurrence' at row 3 (file line 5) is not in `observables` = ['cells']"
        in message
    )
    with pytest.raises(ValueError, match=re.escape("observable 'cells' at rows [0, 1, 2] is")):
        read_measurements(minimal_frame()).check(observables=iter(["N"]))


def test_check_wants_names_not_one_string():
    with pytest.raises(TypeError, match="`conditions` = 'control': expected an iterable"):
        read_measurements(minimal_frame()).check(conditions="control")


def test_for_condition_gives_its_rows_with_their_row_numbers():
    measurements = read_measurements(minimal_frame(condition=["b", "a", "b"]))
    rows = measurements.for_condition("b")
    assert rows.index.tolist() == [0, 2]
    assert rows["value"].tolist() == [1.0, 1.2]
    rows.loc[0, "value"] = 99.0
    assert measurements.table.loc[0, "value"] == 1.0
    with pytest.raises(ValueError, match=re.escape("`name` = 'c': no measurements")):
        measurements.for_condition("c")


def test_measurements_must_hold_a_canonical_table():
    with pytest.raises(ValueError, match="use `read_measurements`"):
        Measurements(table=minimal_frame(), source="<DataFrame>")


def test_docstring_examples():
    result = doctest.testmod(tolsim.data, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# ---------------------------------------------------------------------------------------------
# property: a valid table written by pandas reads back to itself

names = st.text(st.characters(exclude_categories=("C", "Z")), min_size=1, max_size=6)
finite = st.floats(allow_nan=False, allow_infinity=False)
rows = st.tuples(
    st.sampled_from(["control", "tamoxifen", "withdrawal"]) | names,
    st.sampled_from(["cells", "tolerant_fraction"]) | names,
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False) | st.integers(0, 100).map(float),
    finite,
    st.sampled_from(["0", "1"]) | names,
    st.just(math.nan) | st.floats(min_value=0.0, exclude_min=True, allow_infinity=False),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(
    table_rows=st.lists(rows, min_size=1, max_size=12, unique_by=lambda row: row[:3] + row[4:5]),
    separator=st.sampled_from([",", "\t"]),
)
def test_valid_tables_round_trip_through_csv(table_rows, separator):
    expected = canonical(table_rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("m.tsv" if separator == "\t" else "m.csv")
        expected.to_csv(path, sep=separator, index=False)
        from_file = read_measurements(path)
    pd.testing.assert_frame_equal(from_file.table, expected)
    pd.testing.assert_frame_equal(read_measurements(expected).table, expected)
    assert from_file.file_lines == tuple(range(2, len(table_rows) + 2))


def test_measurements_show_a_summary_per_condition_and_observable(tmp_path):
    lines = TIDY_CSV.splitlines()
    text = "\n".join([lines[0] + ",operator", *(line + ",kb" for line in lines[1:])]) + "\n"
    path = write(tmp_path, "m.csv", text)
    assert repr(read_measurements(path)).splitlines() == [
        f"<tolsim Measurements from {path}: 4 rows, 2 conditions, 2 observables>",
        "  control / cells: 2 rows, days 0 to 7, 1 replicate, 2 with sigma",
        "  tamoxifen / cells: 1 row, days 7 to 7, 1 replicate",
        "  tamoxifen / recurrence: 1 row, days 30 to 30, 1 replicate, 1 censored",
        "  ignored columns: operator",
    ]
    assert repr(read_measurements(minimal_frame())).splitlines()[0] == (
        "<tolsim Measurements from <DataFrame>: 3 rows, 2 conditions, 1 observable>"
    )


def test_a_nan_written_in_a_file_is_named_as_such(tmp_path):
    text = "condition,observable,time,value\na,N,3,NaN\na,N,4,1\n"
    message = "column `value` is NaN at row 0 (file line 2); every measurement needs a value"
    with pytest.raises(ValueError, match=re.escape(message)):
        read_measurements(write(tmp_path, "m.csv", text))
