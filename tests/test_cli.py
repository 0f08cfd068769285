"""The ``tolsim`` command run in-process: a sweep file gives the same store as tolsim.sweep,
--resume continues or leaves a finished store alone; simulate, fit, predict and optimize write
what the library returns for the same inputs, experiment runs scripts; every mistake exits
with status 2 and a message naming the TOML key, file or option, and writes nothing."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import tolsim
from tolsim.cli import (
    ConfigError,
    load_fit,
    load_optimize,
    load_prediction,
    load_simulate,
    load_sweep,
    main,
)
from tolsim.design import Design, grid
from tolsim.sweep import METRICS, sweep

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "sweep_inhibitor.toml"

SMALL = """\
[model]
name = "TwoState"
crowding = "logistic"

[model.params]
K = 1e6

[schedule]
phases = [{ days = 30, tamoxifen = 1.0 }, { days = 30 }]

[design]
kind = "grid"

[design.values]
kappa_T = [0.1, 0.3, 0.5]
lambda_T = [0.15, 0.25]

[outputs]
kind = "metrics"

[run]
chunk_size = 2
"""


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # 8787 may be taken
    )
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def client(cluster):
    from distributed import Client

    with Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def direct(client, tmp_path_factory):
    """The small sweep by tolsim.sweep, with its design built independently of the CLI."""
    swept = grid(kappa_T=[0.1, 0.3, 0.5], lambda_T=[0.15, 0.25])
    design = Design({**swept.columns, "K": np.full(6, 1e6)}, "grid")
    schedule = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}, {"days": 30}])
    store = tmp_path_factory.mktemp("direct") / "direct.zarr"
    return sweep(
        tolsim.models.TwoState(crowding="logistic"),
        design,
        schedule,
        store=store,
        client=client,
        chunk_size=6,
    ).load()


def write(tmp_path, text=SMALL, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_same_results(ds, expected):
    for name in (*METRICS, "kappa_T", "lambda_T", "K"):
        np.testing.assert_array_equal(ds[name].values, expected[name].values, err_msg=name)


def test_sweep_on_the_gpu_from_the_file(tmp_path, direct):
    """``device = "cuda"`` in [run] (numba's CUDA simulator here): the same metrics."""
    path = write(tmp_path, SMALL.replace("chunk_size = 2", 'chunk_size = 2\ndevice = "cuda"'))
    store = tmp_path / "gpu.zarr"
    assert main(["sweep", path, "--store", str(store), "--workers", "1", "--no-progress"]) == 0
    ds = xr.open_zarr(store, consolidated=False)
    assert ds.attrs["device"] == "cuda"
    for name in METRICS:
        np.testing.assert_allclose(ds[name].values, direct[name].values, rtol=1e-9)


def test_sweep_writes_the_store_tolsim_sweep_writes(tmp_path, direct, capsys):
    store = tmp_path / "out.zarr"
    assert main(["sweep", write(tmp_path), "--store", str(store), "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("tolsim sweep: 6 samples, 3/3 chunks done (3 computed now) in ")
    assert out.rstrip().endswith(f"store {store}") and out.count("\n") == 1
    assert "3/3" in err  # the progress bar
    ds = xr.open_zarr(store, consolidated=False)
    assert ds.sizes == {"sample": 6, "chunk": 3} and bool(ds.chunk_done.all())
    assert_same_results(ds, direct)
    assert np.all(ds.status.values == 0)
    assert np.all(ds.K.values == 1e6)  # the fixed parameter is recorded
    assert '"fixed_params": {"K": 1000000.0}' in ds.attrs["design"]

    # --resume on a finished store computes nothing and starts no cluster
    before = ds.attrs["tolsim_sweep_fingerprint"]
    args = ["sweep", write(tmp_path), "--store", str(store), "--resume", "--no-progress"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "6 samples, 3/3 chunks done (0 computed now)" in out and err == ""
    again = xr.open_zarr(store, consolidated=False)
    assert again.attrs["tolsim_sweep_fingerprint"] == before
    assert_same_results(again, direct)


def test_resume_finishes_an_interrupted_store_on_a_scheduler(
    tmp_path, cluster, client, direct, capsys
):
    path = write(tmp_path)
    config = load_sweep(path)
    store = tmp_path / "part.zarr"
    part = sweep(
        config.model,
        config.design,
        config.schedule,
        store=store,
        client=client,
        max_chunks=1,
        **config.sweep_kwargs(),
    )
    assert int(part.chunk_done.sum()) == 1
    args = ["sweep", path, "--store", str(store), "--resume", "--no-progress"]
    assert main([*args, "--scheduler", cluster.scheduler_address]) == 0
    assert "3/3 chunks done (2 computed now)" in capsys.readouterr().out
    assert_same_results(xr.open_zarr(store, consolidated=False), direct)
    assert len(cluster.workers) == 2  # a scheduler the command did not start stays up


def test_a_store_made_before_the_cluster_failed_is_taken_up_by_the_same_command(
    tmp_path, capsys, monkeypatch
):
    """An unreachable --scheduler (30 s to fail; a stand-in here): the store this command had
    just created, with no chunk computed, blocked the rerun ("store exists"). It was then
    deleted, which lost the chunks another run (`--resume`) computed into it meanwhile; it is
    now kept, and the same command, without --resume, takes it up while no chunk is done."""
    import tolsim.cli

    def unreachable(args):
        raise tolsim.cli._UsageError("`--scheduler` = 'tcp://nowhere:1': cannot connect")

    monkeypatch.setattr(tolsim.cli, "_connect", unreachable)
    store = tmp_path / "new.zarr"
    args = ["sweep", write(tmp_path), "--store", str(store), "--no-progress"]
    assert main(args) == 2
    assert "cannot connect" in capsys.readouterr().err
    assert store.exists() and tolsim.cli._chunks_done(store) == 0
    marker = zarr.open_array(str(store / "chunk_done"), mode="r+")
    marker[0] = True  # as if another run had computed a chunk meanwhile
    assert main(args) == 2  # then it is not taken up without --resume, and not deleted
    assert "store exists; pass --resume" in capsys.readouterr().err
    assert tolsim.cli._chunks_done(store) == 1
    marker[0] = False
    monkeypatch.undo()  # the same command then runs (a local cluster)
    assert main(args) == 0 and tolsim.cli._chunks_done(store) == 3
    # a chunk marked done whose data was never written (an edited store) is not a success
    zarr.open_array(str(store / "status"), mode="r+")[:2] = -99
    capsys.readouterr()
    assert main([*args, "--resume"]) == 3
    assert "2 samples of chunks marked done" in capsys.readouterr().err


def test_existing_store_without_resume_is_an_error(tmp_path, capsys):
    store = tmp_path / "out.zarr"
    args = ["sweep", write(tmp_path), "--store", str(store), "--no-progress"]
    store.mkdir()  # an empty folder: not a store, whether --resume is given or not
    for extra in ([], ["--resume"]):
        assert main([*args, *extra]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "exists but is not a tolsim sweep store" in err
        assert "Traceback" not in err
    store.rmdir()
    assert main(args) == 0
    zarr.open_array(str(store / "chunk_done"), mode="r+")[:] = False
    zarr.open_array(str(store / "chunk_done"), mode="r+")[0] = True
    assert main(args) == 2
    assert "store exists; pass --resume to continue it" in capsys.readouterr().err


def test_a_store_path_in_a_missing_folder_or_on_a_file_is_an_error(tmp_path, capsys):
    """As `--out`: a typo in the folder does not make a store elsewhere; a plain file is
    said to be one (the advice was --resume, which then failed)."""
    missing = tmp_path / "nodir" / "x.zarr"
    assert main(["sweep", write(tmp_path), "--store", str(missing)]) == 2
    assert "no such folder" in capsys.readouterr().err and not missing.parent.exists()
    plain = tmp_path / "afile"
    plain.write_text("kept")
    for extra in ([], ["--resume"]):
        assert main(["sweep", write(tmp_path), "--store", str(plain), *extra]) == 2
        assert "is a file, not a Zarr store" in capsys.readouterr().err
    assert plain.read_text() == "kept"


def test_resume_of_another_sweeps_store_is_refused(tmp_path, capsys):
    other = write(tmp_path, SMALL.replace("K = 1e6", "K = 2e6"), "other.toml")
    store = tmp_path / "out.zarr"
    config = load_sweep(other)
    sweep(
        config.model,
        config.design,
        config.schedule,
        store=store,
        max_chunks=0,  # creates the store, computes nothing
        **config.sweep_kwargs(),
    )
    assert main(["sweep", write(tmp_path), "--store", str(store), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "holds a different sweep" in err and "Traceback" not in err
    # a changed chunk size is refused too, with sweep()'s advice
    args = ["sweep", other, "--store", str(store), "--resume", "--chunk-size", "4"]
    assert main(args) == 2
    assert "pass the same `chunk_size`" in capsys.readouterr().err


def test_a_directory_that_is_no_store_is_an_error(tmp_path, capsys):
    store = tmp_path / "out.zarr"
    store.mkdir()
    (store / "notes.txt").write_text("not zarr")
    assert main(["sweep", write(tmp_path), "--store", str(store), "--resume"]) == 2
    assert "is not a tolsim sweep store" in capsys.readouterr().err


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('kind = "grid"', 'kind = "grid2"', "`design.kind` = 'grid2' in {file}: expected one of"),
        ('name = "TwoState"', 'name = "FourState"', "`model.name` = 'FourState' in {file}"),
        ('crowding = "logistic"', 'crowding = "cubic"', "`model.crowding` = 'cubic'"),
        ("K = 1e6", "K_cells = 1e6", "`model.params.K_cells` in {file}: 'K_cells' is not a"),
        ("K = 1e6", "K = -1.0", "`model.params.K` = -1.0 cells: expected a value within"),
        ("K = 1e6", "K = 'big'", "`model.params.K` = 'big' in {file}: expected a number"),
        ("kappa_T = [0.1", "kappa_X = [0.1", "`design.values.kappa_X` in {file}"),
        ("kappa_T = [0.1, 0.3, 0.5]", "kappa_T = [20.0]", "`design.kappa_T[0]` = 20.0"),
        ("lambda_T = [0.15, 0.25]", "K = [1e5]", "`model.params.K` in {file}: 'K' is also swept"),
        ('kind = "metrics"', 'kind = "all"', "`outputs.kind` = 'all' in {file}"),
        ('kind = "metrics"', 'kind = "both"', "lacks the key `outputs.times`"),
        ('kind = "metrics"', 'kind = "both"\ntimes = [0, 90]', "`outputs.times` = [0, 90]"),
        ('kind = "metrics"', "recurrence_threshold = -5", "`outputs.recurrence_threshold`"),
        ("chunk_size = 2", "chunk_size = 0", "`run.chunk_size` = 0 in {file}: expected an int"),
        ("chunk_size = 2", 'method = "rk4"', "`run.method` = 'rk4' in {file}: expected one of"),
        ("chunk_size = 2", "rtol = true", "`run.rtol` = True in {file}"),
        ("chunk_size = 2", "rtol = 1e-20", "`run.rtol` = 1e-20 in {file}: expected a relative"),
        ("chunk_size = 2", 'device = "gpu"', "`run.device` = 'gpu' in {file}: expected one of"),
        ("chunk_size = 2", "chunks = 2", "`run.chunks` in {file} is not a known key"),
        ("chunk_size = 2", "lockstep = 1", "`run.lockstep` = 1 in {file}: expected true or"),
        ("[run]", "[runs]", "{file} has unknown table [runs]"),
        ("tamoxifen = 1.0", "tamoxifen = -1.0", "`schedule` in {file}: `phases[0].tamoxifen`"),
        ("tamoxifen = 1.0", "tamoxifin = 1.0", "`schedule` in {file}: the schedule gives"),
        ("[design.values]", "[design.values]\nx = 1", "`design.values.x` in {file}"),
        ("chunk_size = 2", "chunk_size = = 2", "{file} is not valid TOML"),
    ],
)
def test_a_bad_key_or_value_names_it(tmp_path, capsys, old, new, message):
    assert old in SMALL
    path = write(tmp_path, SMALL.replace(old, new, 1))
    assert main(["sweep", path, "--store", str(tmp_path / "out.zarr")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("tolsim sweep: error: ")
    assert message.format(file=path) in err
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize(
    "design, message",
    [
        ('kind = "lhs"\nn = 8\nseed = 1\n[design.ranges]\nmu_E = [1e-5, 1e-2, "lg"]', "lg"),
        ('kind = "lhs"\nn = 8\nseed = 1\n[design.ranges]\nmu_E = [0.0, 1e-2, "log"]', "low > 0"),
        (
            'kind = "lhs"\nn = 8\n[design.ranges]\nmu_E = [0.0, 1e-2]',
            "lacks the key `design.seed`",
        ),
        ('kind = "lhs"\nn = 8\nseed = 1\nvalues = {}', "`design.values` in {file} is not a known"),
        ('kind = "sobol"\nn = 10\nseed = 1\n[design.ranges]\nmu_E = [0.0, 1.0]', "powers of 2"),
        ('kind = "csv"\npath = "missing.csv"', "`design.path` in {file}: `path` ="),
        ("n = 8", "lacks the key `design.kind`"),
    ],
)
def test_a_bad_design_names_its_key(tmp_path, capsys, design, message):
    text = SMALL.split("[design]")[0] + "[design]\n" + design + "\n"
    path = write(tmp_path, text)
    assert main(["sweep", path, "--store", str(tmp_path / "out.zarr")]) == 2
    err = capsys.readouterr().err
    assert message.format(file=path) in err and "Traceback" not in err


def test_csv_design_path_is_relative_to_the_toml_file(tmp_path, monkeypatch):
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "points.csv").write_text("kappa_T,mu_E\n0.1,1e-4\n0.2,1e-3\n")
    text = SMALL.split("[design]")[0] + '[design]\nkind = "csv"\npath = "points.csv"\n'
    path = write(folder, text)
    monkeypatch.chdir(tmp_path)
    config = load_sweep(path)
    assert config.design.names == ("kappa_T", "mu_E", "K")
    assert config.design.columns["mu_E"].tolist() == [1e-4, 1e-3]
    bad = folder / "bad.csv"
    bad.write_text("kappa_T,volume\n0.1,2\n")
    with pytest.raises(ConfigError, match="'volume' is not a parameter of model 'TwoState'"):
        load_sweep(write(folder, text.replace("points.csv", "bad.csv")))


def test_schedule_as_schedule_to_toml_writes_it(tmp_path):
    schedule = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}, {"days": 30}])
    table = "\n".join(
        line.replace("[", "[schedule.", 1) if line.startswith("[") else line
        for line in schedule.to_toml().splitlines()
    )
    head, tail = SMALL.split("[schedule]\n")
    text = head + "[schedule]\n" + table + "\n\n" + tail.split("\n", 1)[1]
    assert load_sweep(write(tmp_path, text)).schedule == schedule


def test_missing_file_and_usage_errors(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml"), "--store", "x.zarr"]) == 2
    assert "no such file" in capsys.readouterr().err
    both = ["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"]
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", write(tmp_path), "--store", "x.zarr", *both])
    assert exit_.value.code == 2
    assert "--workers sizes the local cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", write(tmp_path), "--store", "x.zarr", "--chunk-size", "0"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2


def test_a_sweep_with_failed_solves_warns_and_exits_3(tmp_path, capsys, client):
    """Every sample's solve stops at ``max_steps``: the store is written, the failures are
    counted on stderr, and the exit status says so."""
    path = write(tmp_path, SMALL.replace("chunk_size = 2", "chunk_size = 2\nmax_steps = 3"))
    store = tmp_path / "failed.zarr"
    args = ["sweep", path, "--store", str(store), "--no-progress"]
    assert main([*args, "--scheduler", client.scheduler.address]) == 3
    out, err = capsys.readouterr()
    assert "3/3 chunks done" in out
    ds = xr.open_zarr(store, consolidated=False)
    assert bool(ds.chunk_done.all()) and np.all(ds.status.values == -2)  # max_steps reached
    meanings = json.loads(ds.status.attrs["flag_meanings"])
    assert meanings["0"] == "success" and meanings["-99"].startswith("not computed")
    assert err.strip() == (
        "tolsim sweep: warning: 6 of 6 samples failed (the first: sample 0, status -2: "
        f"maximum number of steps reached (raise `max_steps`)); see `status` in {store}"
    )


def test_a_cancelled_gather_is_not_reported_by_asyncio():
    """Ctrl-C during a sweep cancels the client's gather; asyncio's "Task exception was
    never retrieved" for it is dropped, any other record kept."""
    from distributed.client import AllExit

    from tolsim.cli import _CancelledGather

    def record(error):
        info = (type(error), error, None)
        return logging.LogRecord("asyncio", logging.ERROR, "", 0, "Task exception", (), info)

    assert not _CancelledGather().filter(record(AllExit()))
    assert _CancelledGather().filter(record(RuntimeError("lost")))
    assert _CancelledGather().filter(logging.LogRecord("asyncio", 40, "", 0, "x", (), None))


@pytest.mark.parametrize(
    "error, status, message",
    [
        (RuntimeError("worker lost"), 1, "RuntimeError: worker lost"),
        (KeyboardInterrupt(), 130, "interrupted; finished chunks are kept"),
    ],
)
def test_unexpected_errors_and_interrupts(tmp_path, capsys, monkeypatch, error, status, message):
    def fail(args):
        raise error

    monkeypatch.setattr("tolsim.cli._connect", fail)  # fails once the store is made
    store = tmp_path / "out.zarr"
    assert main(["sweep", write(tmp_path), "--store", str(store), "--no-progress"]) == status
    assert message in capsys.readouterr().err
    # made by this command, nothing computed: kept (never deleted: another run may be filling
    # it), and the same command takes it up
    assert tolsim.cli._chunks_done(store) == 0


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "sweep" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("SWEEP.toml", "--store", "--resume", "--scheduler", "--workers"):
        assert option in out
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"tolsim {tolsim.__version__}"


def test_sweep_file_lockstep_reaches_tolsim_sweep(tmp_path):
    config = load_sweep(write(tmp_path, SMALL.replace("chunk_size = 2", "lockstep = true")))
    kwargs = config.sweep_kwargs()
    assert kwargs["lockstep"] is True
    ds = sweep(config.model, config.design, config.schedule, store=None, **kwargs)
    assert json.loads(ds.attrs["settings"])["lockstep"] is True
    assert load_sweep(write(tmp_path, SMALL)).sweep_kwargs()["lockstep"] is False


def test_sweep_file_gpu_specialise_reaches_tolsim_sweep(tmp_path):
    text = SMALL.replace("chunk_size = 2", 'device = "cuda"\ngpu_specialise = true')
    kwargs = load_sweep(write(tmp_path, text)).sweep_kwargs()
    assert kwargs["gpu_specialise"] is True and kwargs["device"] == "cuda"
    assert load_sweep(write(tmp_path, SMALL)).sweep_kwargs()["gpu_specialise"] is False
    bad = write(tmp_path, SMALL.replace("chunk_size = 2", "gpu_specialise = 'yes'"))
    with pytest.raises(ConfigError, match="`run.gpu_specialise` = 'yes' in .*expected true or"):
        load_sweep(bad)
    unused = write(tmp_path, SMALL.replace("chunk_size = 2", "gpu_specialise = true"))
    with pytest.raises(ConfigError, match=r"`run.gpu_specialise` = true .* `run.device` = 'cpu'"):
        load_sweep(unused)


def test_example_sweep_file_is_valid():
    config = load_sweep(EXAMPLE)
    assert config.model.name == "TwoState"
    assert config.model.describe()["options"] == {"crowding": "logistic"}
    assert len(config.design) == 4096 and config.design.kind == "lhs"
    assert config.design.spec["ranges"] == {
        "kappa_T": [0.0, 0.6, "linear"],
        "mu_E": [1e-5, 1e-2, "log"],
        "lambda_T": [0.1, 0.3, "linear"],
    }
    schedule = config.schedule
    assert schedule.duration_days == 360.0 and schedule.withdrawal_day("tamoxifen") == 120.0
    assert schedule.concentrations([60.0, 130.0, 200.0]).tolist() == [
        [0.0, 1.0],
        [5.0, 0.0],
        [0.0, 0.0],
    ]  # drugs in sorted order: inhibitor, tamoxifen
    assert config.outputs == "metrics" and config.chunk_size == 1024
    assert config.sweep_kwargs()["chunk_size"] == 1024


# --------------------------------------------------------------------------------------------
# tolsim simulate, fit, predict, optimize and experiment

PNG = b"\x89PNG\r\n\x1a\n"

RUN = """\
[model]
name = "TwoState"
crowding = "none"

[model.params]
lambda_S = 0.3

[schedule]
phases = [{ days = 20, tamoxifen = 1.0 }, { days = 20 }]

[times]
step_days = 2.0

[run]
rtol = 1e-8
"""

FIT = """\
[model]
name = "TwoState"
crowding = "none"

[data]
path = "measurements.csv"

[schedules.control]
phases = [{ days = 20 }]

[schedules.tamoxifen]
phases = [{ days = 20, tamoxifen = 1.0 }]

[fit]
free = ["lambda_S", "eps_S"]
fixed = { "total_cells.sigma" = 0.1 }
bounds = { lambda_S = [0.05, 1.0], eps_S = [0.05, 1.0] }
noise = "lognormal"
starts = 2
seed = 3
"""

NEW_SCHEDULE = """\
[schedule]
phases = [{ days = 30, tamoxifen = 1.0 }, { days = 40 }]

[predict]
draws = 50
threshold = 1e8
seed = 1
"""

OPT = """\
[model]
name = "TwoState"
crowding = "none"

[template]
name = "inhibitor_course"
tamoxifen_days = 60
follow_up_days = 120

[space]
inhibitor_start_day = [0, 30, 60]
inhibitor_days = { low = 0, high = 28 }

[optimize]
budget = 14
candidates = 4
threshold = 1e6
seed = 2
"""

FAKE_EXPERIMENT = '''"""Write a file: a fake experiment
for the command line's tests.

More about it.
"""

import argparse
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--size", type=int, default=3)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fake.txt").write_text(f"quick={args.quick} size={args.size}")
    if args.size < 0:
        raise RuntimeError("a negative size")
'''

SCRIPT_EXPERIMENT = '''"""An older experiment: main(out, size), arguments parsed under __main__."""

import argparse
from pathlib import Path


def main(out, size):
    out.mkdir(parents=True, exist_ok=True)
    (out / "script.txt").write_text(f"size={size}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--size", type=int, default=1)
    args = parser.parse_args()
    main(args.out, args.size)
'''


def run_cli(capsys, *args):
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def outputs_in(folder: Path) -> list[str]:
    """Files a command may have written (results, figures, temporary parts)."""
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.suffix in (".nc", ".png", ".svg", ".part") or path.name.endswith(".part")
    )


def open_nc(path, group=None) -> xr.Dataset:
    with xr.open_dataset(path, group=group) as ds:
        return ds.load()


def assert_same_variables(ds, expected, names=None):
    for name in names or expected.data_vars:
        np.testing.assert_array_equal(ds[name].values, expected[name].values, err_msg=name)


def measurements(folder: Path) -> Path:
    """Total cells of a control and a tamoxifen arm every 4 days, 10% log-normal noise."""
    model = tolsim.models.TwoState(crowding="none")
    params = model.default_params(lambda_S=0.3, eps_S=0.9)
    rng = np.random.default_rng(7)
    rows = ["condition,observable,time,value"]
    for condition, phases in (
        ("control", [{"days": 20}]),
        ("tamoxifen", [{"days": 20, "tamoxifen": 1.0}]),
    ):
        days = np.arange(0.0, 21.0, 4.0)
        cells = tolsim.simulate(model, params, tolsim.Schedule.from_phases(phases), days).N
        noisy = cells.values * np.exp(0.1 * rng.standard_normal(days.size))
        rows += [
            f"{condition},total_cells,{d:g},{float(v)!r}" for d, v in zip(days, noisy, strict=True)
        ]
    path = folder / "measurements.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def direct_fit(folder: Path):
    """The fit of FIT by tolsim.fit, its inputs built here, not by the command line."""
    return tolsim.fit(
        tolsim.models.TwoState(crowding="none"),
        folder / "measurements.csv",
        {
            "control": tolsim.Schedule.from_phases([{"days": 20}]),
            "tamoxifen": tolsim.Schedule.from_phases([{"days": 20, "tamoxifen": 1.0}]),
        },
        free=["lambda_S", "eps_S"],
        fixed={"total_cells.sigma": 0.1},
        bounds={"lambda_S": (0.05, 1.0), "eps_S": (0.05, 1.0)},
        noise=tolsim.observe.LogNormal(),
        starts=2,
        seed=3,
    )


def test_a_failed_simulation_is_written_reported_and_exits_3(tmp_path, capsys):
    text = RUN.replace('crowding = "none"', 'crowding = "logistic"')
    path = write(tmp_path, text.replace("rtol = 1e-8", "rtol = 1e-8\nmax_steps = 2"), "run.toml")
    status, out, err = run_cli(capsys, "simulate", path, "--out", tmp_path / "run.nc")
    assert status == 3
    assert "tolsim simulate: warning: 1 of 1 solve(s) failed (" in err
    ds = open_nc(tmp_path / "run.nc")  # written, with what the solver reached
    assert int(ds.status) != 0 and "max_steps" in str(ds.message.values)
    assert "wrote" in out


@pytest.mark.parametrize(
    "run, figure, expected_options",
    [
        ("[run]\nrtol = 1e-8\n", "run.png", {"rtol": 1e-8}),
        (
            '[run]\nmethod = "ssa"\npaths = 3\nseed = 11\n',
            "run.svg",
            {"method": "ssa", "paths": 3, "seed": 11},
        ),
        (
            '[run]\nmethod = "dopri5"\nlockstep = true\n',
            "run.png",
            {"method": "dopri5", "lockstep": True},
        ),
    ],
)
def test_simulate_writes_what_tolsim_simulate_returns(
    tmp_path, capsys, run, figure, expected_options
):
    text = RUN.replace("[run]\nrtol = 1e-8\n", run)
    if "ssa" in run:  # few cells: exact stochastic simulation is quick
        text = text.replace("lambda_S = 0.3", "lambda_S = 0.3\nS0 = 50.0\nT0 = 5.0")
    path = write(tmp_path, text, "run.toml")
    status, out, err = run_cli(
        capsys, "simulate", path, "--out", tmp_path / "run.nc", "--figure", tmp_path / figure
    )
    assert status == 0, err
    assert out.startswith("tolsim simulate: TwoState (") and "wrote" in out
    ds = open_nc(tmp_path / "run.nc")
    model = tolsim.models.TwoState(crowding="none")
    params = {"lambda_S": 0.3, **({"S0": 50.0, "T0": 5.0} if "ssa" in run else {})}
    schedule = tolsim.Schedule.from_phases([{"days": 20, "tamoxifen": 1.0}, {"days": 20}])
    expected = tolsim.simulate(
        model, params, schedule, np.arange(0.0, 41.0, 2.0), throw=False, **expected_options
    )
    assert_same_variables(ds, expected)
    assert {k: v for k, v in ds.attrs.items() if not k.startswith("config_")} == expected.attrs
    assert ds.attrs["config_toml"] == text and ds.attrs["config_file"] == path
    head = (tmp_path / figure).read_bytes()[:200]
    assert head.startswith(PNG) if figure.endswith(".png") else b"<svg" in head


def test_fit_writes_the_fit_tolsim_fit_finds(tmp_path, capsys):
    measurements(tmp_path)
    path = write(tmp_path, FIT, "fit.toml")
    status, out, err = run_cli(
        capsys,
        "fit",
        path,
        "--out",
        tmp_path / "fit.nc",
        "--figure",
        tmp_path / "fit.png",
        "--profile",
        "--sample",
        "40",
    )
    assert status == 0, err
    assert out.startswith("tolsim fit: nllh ") and "\n  lambda_S = 0.29" in out
    assert "profiles: 100%" in err and "fit: 100%" in err  # the progress bars
    assert "tolsim fit: warning: The chain is shorter than 50 times" in err  # emcee's log
    direct = direct_fit(tmp_path)
    root = open_nc(tmp_path / "fit.nc")
    assert root.parameter.values.tolist() == ["lambda_S", "eps_S"]
    assert root.value.values.tolist() == [direct.params["lambda_S"], direct.params["eps_S"]]
    assert float(root.nllh) == direct.nllh and bool(root.converged) == direct.converged
    assert json.loads(root.attrs["params"]) == direct.all_params
    assert root.attrs["config_toml"] == FIT
    assert_same_variables(open_nc(tmp_path / "fit.nc", "starts"), direct.starts)
    assert_same_variables(open_nc(tmp_path / "fit.nc", "predictions"), direct.predictions)
    profiles = direct.profile()
    assert_same_variables(open_nc(tmp_path / "fit.nc", "profiles"), profiles)
    np.testing.assert_array_equal(root.ci_low.values, profiles.ci_low.values)
    posterior = direct.sample(steps=40, seed=0)
    assert_same_variables(open_nc(tmp_path / "fit.nc", "posterior"), posterior)
    assert (tmp_path / "fit.png").read_bytes().startswith(PNG)


def test_predict_refits_and_predicts_as_fit_result_predict(tmp_path, capsys):
    measurements(tmp_path)
    fit_path = write(tmp_path, FIT, "fit.toml")
    schedule_path = write(tmp_path, NEW_SCHEDULE, "new.toml")
    args = ["predict", fit_path, "--schedule", schedule_path, "--out", tmp_path / "p.nc"]
    status, out, err = run_cli(
        capsys, *args, "--figure", tmp_path / "p.png", "--draws", 16, "--no-progress"
    )
    assert status == 0, err
    assert out.startswith("tolsim predict: recurrence ") and "days after withdrawal" in out
    assert err == ""
    schedule = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}, {"days": 40}])
    expected = direct_fit(tmp_path).predict(schedule, draws=16, seed=1, threshold=1e8)
    ds = open_nc(tmp_path / "p.nc")
    assert_same_variables(ds, expected)
    assert ds.attrs["draws"] == 16 and ds.attrs["seed"] == 1
    assert ds.attrs["config_toml"] == NEW_SCHEDULE and ds.attrs["fit_config_toml"] == FIT
    assert (tmp_path / "p.png").read_bytes().startswith(PNG)


def test_optimize_finds_the_best_optimize_schedule_finds(tmp_path, capsys):
    path = write(tmp_path, OPT, "opt.toml")
    status, out, err = run_cli(
        capsys, "optimize", path, "--out", tmp_path / "o.nc", "--figure", tmp_path / "o.svg"
    )
    assert status == 0, err
    assert "candidates: 100%" in err
    model = tolsim.models.TwoState(crowding="none")
    expected = tolsim.optimize_schedule(
        model,
        model.default_params(),
        tolsim.design.inhibitor_course(tamoxifen_days=60.0, follow_up_days=120.0),
        {"inhibitor_start_day": [0.0, 30.0, 60.0], "inhibitor_days": (0.0, 28.0)},
        budget=14.0,
        candidates=4,
        threshold=1e6,
        seed=2,
    )
    ds = open_nc(tmp_path / "o.nc")
    assert_same_variables(ds, expected)
    best = int(expected.best)
    assert best >= 0 and ds.attrs["best_schedule"] == expected.attrs["best_schedule"]
    start, days = float(expected.inhibitor_start_day[best]), float(expected.inhibitor_days[best])
    assert (
        f"best of 12 candidates: inhibitor_start_day = {start:g}, inhibitor_days = {days:g}" in out
    )
    assert tolsim.Schedule.from_json(expected.attrs["best_schedule"]).describe() in out
    assert b"<svg" in (tmp_path / "o.svg").read_bytes()[:400]


def test_experiment_lists_and_runs_scripts(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "fake.py").write_text(FAKE_EXPERIMENT)
    (folder / "older.py").write_text(SCRIPT_EXPERIMENT)
    (folder / "helpers.py").write_text('"""No main here."""\n')
    (folder / "_private.py").write_text("def main(argv=None):\n    pass\n")
    status, out, _ = run_cli(capsys, "experiment", "--list", "--path", folder)
    assert status == 0
    assert out.splitlines() == [
        "fake   Write a file: a fake experiment for the command line's tests.",
        "older  An older experiment: main(out, size), arguments parsed under __main__.",
    ]

    out_dir = tmp_path / "out"
    args = ["experiment", "fake", "--path", folder, "--out", out_dir, "--quick"]
    status, out, err = run_cli(capsys, *args, "--", "--size", "5")
    assert status == 0, err
    assert (out_dir / "fake.txt").read_text() == "quick=True size=5"
    assert out.startswith("tolsim experiment: fake finished in ")
    # a folder with results is not written into again without --overwrite
    status, _, err = run_cli(capsys, *args)
    assert status == 2 and "is not empty; pass --overwrite" in err
    assert run_cli(capsys, *args, "--overwrite")[0] == 0
    assert (out_dir / "fake.txt").read_text() == "quick=True size=3"

    # a script without main(argv) runs as `python older.py ARGS` would; by default into
    # results/NAME under the working directory
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(capsys, "experiment", "older", "--path", folder, "--", "--size", 2)
    assert status == 0, err
    assert (tmp_path / "results" / "older" / "script.txt").read_text() == "size=2"

    # failures leave no half-written folder behind
    quick = ["experiment", "older", "--path", folder, "--out", tmp_path / "quick", "--quick"]
    status, _, err = run_cli(capsys, *quick)
    assert status == 2 and "unrecognized arguments: --quick" in err
    assert "experiment 'older' exited with status 2" in err
    status, _, err = run_cli(
        capsys,
        "experiment",
        "fake",
        "--path",
        folder,
        "--out",
        tmp_path / "bad",
        "--",
        "--size=-1",
    )
    assert status == 1 and "RuntimeError: a negative size" in err
    assert not (tmp_path / "bad").exists() and not (tmp_path / "quick").exists()


def test_unknown_experiment_lists_the_valid_ones(tmp_path, capsys):
    (tmp_path / "fake.py").write_text(FAKE_EXPERIMENT)
    status, out, err = run_cli(capsys, "experiment", "fakes", "--path", tmp_path)
    assert status == 2 and out == "" and "Traceback" not in err
    assert err.startswith("tolsim experiment: error: `NAME` = 'fakes': no experiment")
    assert "expected one of 'fake'" in err
    status, _, err = run_cli(capsys, "experiment", "fake", "--path", tmp_path / "none")
    assert status == 2 and "`--path` = " in err and "no such folder" in err
    status, _, err = run_cli(capsys, "experiment", "--path", tmp_path)
    assert status == 2 and "name an experiment, or pass --list" in err


@pytest.mark.parametrize(
    "command, tables",
    [
        ("simulate", ("RUN.toml", "[model]", "[model.params]", "[schedule]", "[times]", "[run]")),
        (
            "fit",
            ("FIT.toml", "[model]", "[data]", "[schedules.control]", "[fit]", "[profile]"),
        ),
        ("predict", ("FIT.toml", "SCHEDULE.toml", "[schedule]", "[predict]", "--draws")),
        ("optimize", ("OPT.toml", "[model]", "[template]", "[space]", "[optimize]")),
        ("experiment", ("NAME", "--list", "--path", "--quick", "main(argv=None)")),
        ("sweep", ("SWEEP.toml", "[design]", "[design.ranges]", "[outputs]", "Zarr store")),
    ],
)
def test_help_of_each_command_shows_its_file(capsys, command, tables):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for table in tables:
        assert table in out
    if command not in ("experiment", "sweep"):
        for option in ("--out", "--figure", "--overwrite", "--no-progress", "Writes FILE.nc"):
            assert option in out


def inputs(tmp_path, command):
    """The input files of a command and its arguments (outputs in tmp_path)."""
    out = ["--out", tmp_path / "out.nc", "--figure", tmp_path / "out.png"]
    if command == "simulate":
        return ["simulate", write(tmp_path, RUN, "run.toml"), *out]
    if command in ("fit", "predict"):
        measurements(tmp_path)
        fit = ["fit", write(tmp_path, FIT, "fit.toml"), *out]
        if command == "fit":
            return fit
        return ["predict", fit[1], "--schedule", write(tmp_path, NEW_SCHEDULE, "new.toml"), *out]
    return ["optimize", write(tmp_path, OPT, "opt.toml"), *out]


def assert_refused(capsys, tmp_path, args, message):
    """Exit status 2, one error line naming the problem, no traceback, nothing written."""
    status, out, err = run_cli(capsys, *args)
    assert status == 2
    assert out == "" and "Traceback" not in err
    assert err.startswith(f"tolsim {args[0]}: error: ") and err.count("\n") == 1, err
    assert message.format(tmp=tmp_path) in err
    assert outputs_in(tmp_path) == []
    return err


@pytest.mark.parametrize("command", ["simulate", "fit", "predict", "optimize"])
def test_missing_and_invalid_files(tmp_path, capsys, command):
    args = inputs(tmp_path, command)
    given = args[1]
    args[1] = str(tmp_path / "none.toml")
    assert_refused(capsys, tmp_path, args, "= '{tmp}/none.toml': no such file")
    args[1] = given
    text = Path(given).read_text().replace("[model]\nname", "[model]\nname =", 1)
    Path(given).write_text(text)
    err = assert_refused(capsys, tmp_path, args, "is not valid TOML: ")
    assert "(at line 2, column " in err


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("[run]", "[params]", "has unknown table [params]: expected 'model', 'schedule', "),
        ("[run]", "[params]", "(parameter values go in [model.params])"),
        ("[times]\nstep_days = 2.0\n", "", None),  # no [times]: daily output, fine
        ('[model]\nname = "TwoState"\n', "[model]\n", "lacks the key `model.name`"),
        ("[schedule]\nphases", "[schedules]\nphases", "has unknown table [schedules]"),
        ("[schedule]\nphases = [{", "phases = [{", "{file} lacks the table [schedule]"),
        ("step_days = 2.0", "step_days = -2.0", "`times.step_days` = -2.0 in {file}: expected"),
        ("step_days = 2.0", "days = [0, 50]", "`times.days` = [0, 50] in {file}: expected a"),
        ("step_days = 2.0", "step = 2.0", "`times.step` in {file} is not a known key"),
        ("rtol = 1e-8", "rtol = '1e-8'", "`run.rtol` = '1e-8' in {file}: expected a tolerance"),
        ("rtol = 1e-8", 'method = "euler"', "`run.method` = 'euler' in {file}: expected one of"),
        ("rtol = 1e-8", "paths = 5", "`run.paths` in {file} applies to stochastic methods"),
        ("rtol = 1e-8", "lockstep = 'no'", "`run.lockstep` = 'no' in {file}: expected true or"),
        ("rtol = 1e-8", 'method = "ssa"', "lacks the key `run.seed`: `run.method` = 'ssa'"),
        (
            "rtol = 1e-8",
            'rtol = 1e-8\nmethod = "ssa"\nseed = 1',
            "`run.rtol` in {file} applies to",
        ),
        ("lambda_S = 0.3", "lambda_S = -0.3", "`model.params.lambda_S` = -0.3 1/day"),
        ("tamoxifen = 1.0", "tamoxifen = true", "`schedule` in {file}: "),
        (
            "rtol = 1e-8",
            'method = "ssa"\nseed = 1\ndevice = "cuda"',
            "`run.device` = 'cuda' in {file}: the GPU runs `run.method` 'auto' or 'dopri5' (ODE)"
            " or 'tau' (paths), not 'ssa'",
        ),
    ],
)
def test_bad_simulation_file_names_the_key(tmp_path, capsys, old, new, message):
    assert old in RUN
    path = write(tmp_path, RUN.replace(old, new, 1), "run.toml")
    args = ["simulate", path, "--out", tmp_path / "out.nc"]
    if message is None:
        assert load_simulate(path).times.tolist() == list(range(41))
        return
    assert_refused(capsys, tmp_path, args, message.format(file=path))


def test_a_stochastic_run_names_a_fractional_cell_count_by_its_key(tmp_path, capsys):
    text = RUN.replace("lambda_S = 0.3", "lambda_S = 0.3\nT0 = 2.5").replace(
        "rtol = 1e-8", 'method = "ssa"\nseed = 1'
    )
    path = write(tmp_path, text, "run.toml")
    args = ["simulate", path, "--out", tmp_path / "out.nc"]
    assert_refused(capsys, tmp_path, args, f"`model.params` in {path}: `params.T0` = 2.5")


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('free = ["lambda_S", "eps_S"]', 'free = ["lambda_S", "eps"]', "`fit.free[1]` = 'eps'"),
        ('free = ["lambda_S", "eps_S"]', 'free = "lambda_S"', "`fit.free` = 'lambda_S' in"),
        ('"total_cells.sigma" = 0.1', "sigma = 0.1", "`fit.fixed.sigma` in {file}: 'sigma' is"),
        ('"total_cells.sigma" = 0.1', '"total_cells.sigma" = -1', 'fit.fixed."total_cells.s'),
        ("eps_S = [0.05, 1.0]", "mu_E = [0.05, 1.0]", "`fit.bounds.mu_E` in {file}: bounds are"),
        ("eps_S = [0.05, 1.0]", "eps_S = [1.0, 0.05]", "`fit.bounds.eps_S` = [1.0, 0.05]"),
        ('noise = "lognormal"', 'noise = "poisson"', "`fit.noise` = 'poisson' in {file}"),
        ('noise = "lognormal"', "noise = { cells = 'normal' }", "`fit.noise.cells` in {file}"),
        ("starts = 2", "starts = 0", "`fit.starts` = 0 in {file}: expected an integer >= 1"),
        ("seed = 3", "seeds = 3", "`fit.seeds` in {file} is not a known key"),
        ("[schedules.tamoxifen]", "[schedules.tamoxifen_1uM]", "`schedules.tamoxifen_1uM` in"),
        ("[schedules.tamoxifen]", "[schedules.tamoxifen_1uM]", "conditions are 'control', 'tam"),
        ("phases = [{ days = 20 }]", "phases = [{ days = 10 }]", "measurements up to day 20"),
        ('path = "measurements.csv"', 'path = "data.csv"', "`data.path` = 'data.csv' in {file}"),
        ("[fit]", "[fits]", "{file} has unknown table [fits]: expected 'model', 'data', "),
        ("[fit]\n", "[profile]\npoints = 0\n[fit]\n", "`profile.points` = 0 in {file}"),
        (
            '"total_cells.sigma" = 0.1',
            '"total_cells.sigma" = 0.1, lambda_S = 0.3',
            "`fit.fixed.lambda_S` in {file}: 'lambda_S' is also in `fit.free`",
        ),
    ],
)
def test_bad_fit_file_names_the_key(tmp_path, capsys, old, new, message):
    measurements(tmp_path)
    assert old in FIT
    path = write(tmp_path, FIT.replace(old, new, 1), "fit.toml")
    args = ["fit", path, "--out", tmp_path / "out.nc"]
    assert_refused(capsys, tmp_path, args, message.format(file=path))


@pytest.mark.parametrize(
    "table, message",
    [
        ("condition,observable,time\ncontrol,total_cells,0\n", "missing required columns"),
        ("condition,observable,time,value\ncontrol,total_cells,0,many\n", "line 2"),
        ("condition,observable,time,value\ncontrol,total_cells,0,1e5,7\n", "line 2"),
        ("condition,observable,time,value\ncontrol,cells,0,1e5\n", "observable 'cells' is not"),
        (
            "condition,observable,time,value\ncontrol,total_cells,0,-5\ntamoxifen,total_cells,0,9\n",
            "'lognormal' noise needs positive values",
        ),
    ],
)
def test_bad_measurement_table_names_the_data_file(tmp_path, capsys, table, message):
    (tmp_path / "measurements.csv").write_text(table)
    path = write(tmp_path, FIT, "fit.toml")
    status, _, err = run_cli(capsys, "fit", path, "--out", tmp_path / "out.nc")
    assert status == 2 and "Traceback" not in err
    assert err.startswith("tolsim fit: error: ")
    assert "`data.path`" in err or "`fit.noise`" in err
    assert message in err and "measurements.csv" in err
    assert outputs_in(tmp_path) == []


def test_a_lookalike_column_is_named_and_can_be_ignored(tmp_path, capsys):
    table = "condition,observable,time,value,sd\ncontrol,total_cells,0,1e5,3\n"
    (tmp_path / "measurements.csv").write_text(table)
    path = write(tmp_path, FIT, "fit.toml")
    status, _, err = run_cli(capsys, "fit", path, "--out", tmp_path / "out.nc")
    assert status == 2 and "`sd` reads as a noise scale" in err
    assert "`data.ignore_columns = ['sd']`" in err
    ignoring = FIT.replace(
        'path = "measurements.csv"', 'path = "measurements.csv"\nignore_columns = ["sd"]'
    )
    path = write(tmp_path, ignoring, "fit.toml")
    status, _, err = run_cli(capsys, "fit", path, "--out", tmp_path / "out.nc")
    assert "`sd`" not in err and "ignore" not in err  # (refused later: one condition's data)
    bad = FIT.replace(
        'path = "measurements.csv"', 'path = "measurements.csv"\nignore_columns = "sd"'
    )
    path = write(tmp_path, bad, "fit.toml")
    status, _, err = run_cli(capsys, "fit", path, "--out", tmp_path / "out.nc")
    assert status == 2 and "`data.ignore_columns` = 'sd' in" in err


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("tamoxifen = 1.0 }, { days = 40 }", "inhibitor = 1.0 }, { days = 40 }", "never gives"),
        ("draws = 50", "draws = 0", "`predict.draws` = 0 in {file}: expected an integer >= 1"),
        ("seed = 1", "seed = 1\n[predict.params]\nlambda_S = 0.2", "'lambda_S' is free"),
        ("draws = 50", 'uncertainty = "bayes"', "`predict.uncertainty` = 'bayes' in {file}"),
        ("seed = 1", "horizon_days = 100", "`predict.horizon_days` = 100 in {file}"),
        ("[predict]", "[prediction]", "{file} has unknown table [prediction]"),
        (
            "draws = 50",
            'draws = 50\ndemographic = "none"\npaths = 5',
            "`predict.paths` in {file} applies to `predict.demographic` = 'paths'",
        ),
    ],
)
def test_bad_prediction_file_names_the_key(tmp_path, capsys, old, new, message):
    measurements(tmp_path)
    fit_path = write(tmp_path, FIT, "fit.toml")
    assert old in NEW_SCHEDULE
    path = write(tmp_path, NEW_SCHEDULE.replace(old, new, 1), "new.toml")
    args = ["predict", fit_path, "--schedule", path, "--out", tmp_path / "out.nc"]
    assert_refused(capsys, tmp_path, args, message.format(file=path))


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('name = "inhibitor_course"', 'name = "pulses"', "`template.name` = 'pulses' in {file}"),
        ("tamoxifen_days = 60", "tamoxifen_weeks = 8", "`template.tamoxifen_weeks` in {file}"),
        ("tamoxifen_days = 60", "tamoxifen_days = -60", "`template` in {file}: `tamoxifen_days`"),
        ("inhibitor_start_day = [0, 30, 60]", "start = [0]", "`space.start` in {file}: 'start'"),
        ("inhibitor_start_day = [0, 30, 60]", "inhibitor_start_day = 30", "`space.inhibitor_st"),
        ("{ low = 0, high = 28 }", "{ low = 28, high = 0 }", "expected low < high"),
        ("[0, 30, 60]", "[-30, 0]", "candidate 0 (inhibitor_start_day = -30, inhibitor_day"),
        ("follow_up_days = 120", "inhibitor_days = 7", "also searched by [space]"),
        ("candidates = 4", "candidates = 5", "`optimize.candidates` = 5 in {file}: expected a po"),
        ("budget = 14", 'burden = "aspirin_days"', "`optimize.burden` = 'aspirin_days' in"),
        ("budget = 14", "budget = -1", "`optimize.budget` = -1.0 in {file}: expected a number"),
        ("seed = 2", "seed = 2.5", "`optimize.seed` = 2.5 in {file}: expected an integer"),
        (
            "seed = 2",
            'seed = 2\nobjective = "eradication_probability"',
            "`optimize.threshold` in {file} applies to the recurrence objectives, not",
        ),
        (
            "threshold = 1e6",
            'horizon_days = 30\nobjective = "eradication_probability"',
            "`optimize.horizon_days` in {file} applies to the recurrence objectives",
        ),
        (  # (the default is no option given, as in the API: then the space is checked)
            "threshold = 1e6",
            'threshold = "size_at_withdrawal"\nobjective = "eradication_probability"\n'
            "eradication_day = -1",
            "`optimize.eradication_day` = -1",
        ),
        ("[space]", "[search]", "{file} has unknown table [search]: expected 'model', 'template'"),
    ],
)
def test_bad_optimisation_file_names_the_key(tmp_path, capsys, old, new, message):
    assert old in OPT
    path = write(tmp_path, OPT.replace(old, new, 1), "opt.toml")
    args = ["optimize", path, "--out", tmp_path / "out.nc"]
    assert_refused(capsys, tmp_path, args, message.format(file=path))


@pytest.mark.parametrize("command", ["simulate", "optimize"])
def test_outputs_are_checked_first_and_never_half_written(tmp_path, capsys, monkeypatch, command):
    args = inputs(tmp_path, command)
    out, figure = tmp_path / "out.nc", tmp_path / "out.png"
    for option, value, message in (
        ("--figure", tmp_path / "out.jpg", "`--figure` = '{tmp}/out.jpg': expected a file name"),
        ("--out", tmp_path / "out.zarr", "`--out` = '{tmp}/out.zarr': expected a NetCDF file"),
        ("--out", tmp_path / "no" / "out.nc", "no such folder '{tmp}/no'"),
    ):
        changed = list(args)
        changed[changed.index(option) + 1] = value
        assert_refused(capsys, tmp_path, changed, message)
    # an existing output is kept unless --overwrite is given
    figure.write_bytes(b"old figure")
    status, _, err = run_cli(capsys, *args)
    assert status == 2 and f"`--figure` = '{figure}' exists; pass --overwrite to replace" in err
    assert outputs_in(tmp_path) == ["out.png"] and figure.read_bytes() == b"old figure"
    figure.unlink()

    # a failure after the work (here: drawing the figure) writes nothing
    def fail(*_):
        raise RuntimeError("no figure today")

    draw = "_draw_simulation" if command == "simulate" else "_draw_tradeoff"
    monkeypatch.setattr(f"tolsim.cli.{draw}", fail)
    status, _, err = run_cli(capsys, *args, "--no-progress")
    assert status == 1 and "RuntimeError: no figure today" in err
    assert outputs_in(tmp_path) == []
    monkeypatch.undo()

    assert run_cli(capsys, *args, "--no-progress")[0] == 0
    first = out.read_bytes()
    assert run_cli(capsys, *args, "--no-progress")[0] == 2  # both exist now
    assert run_cli(capsys, *args, "--no-progress", "--overwrite")[0] == 0
    assert outputs_in(tmp_path) == ["out.nc", "out.png"] and len(first) > 0


def test_interrupt_writes_nothing(tmp_path, capsys, monkeypatch):
    def interrupt(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr("tolsim.simulate", interrupt)
    status, _, err = run_cli(capsys, *inputs(tmp_path, "simulate"))
    assert status == 130 and "tolsim simulate: interrupted; no output was written" in err
    assert outputs_in(tmp_path) == []


def test_step_days_add_the_withdrawal_day_and_drug_level_steps(tmp_path):
    """Every 2 days over a course stopping on day 21.5, an inhibitor from 30.25: the file
    holds those days too, so recurrence read from it is located as in a sweep (it was 11%
    off, with a warning only when read)."""
    text = RUN.replace(
        "phases = [{ days = 20, tamoxifen = 1.0 }, { days = 20 }]",
        "phases = [{ days = 21.5, tamoxifen = 1.0 }, { days = 8.75 }, "
        "{ days = 9.75, inhibitor = 5.0 }]",
    )
    times = load_simulate(write(tmp_path, text, "run.toml")).times
    assert set(np.arange(0.0, 40.0, 2.0)) | {21.5, 30.25, 40.0} == set(times.tolist())


def test_a_simulation_file_may_run_tau_paths_on_the_gpu(tmp_path):
    text = RUN.replace("rtol = 1e-8", 'method = "tau"\nseed = 1\npaths = 3\ndevice = "cuda"', 1)
    config = load_simulate(write(tmp_path, text, "run.toml"))
    assert config.options["method"] == "tau" and config.options["device"] == "cuda"


def test_example_files_are_valid():
    folder = EXAMPLE.parent / "cli"
    run = load_simulate(folder / "simulate.toml")
    assert run.schedule.withdrawal_day("tamoxifen") == 120.0 and run.times[-1] == 360.0
    fit = load_fit(folder / "fit.toml")
    assert fit.free == ("lambda_S", "eps_S") and fit.measurements.conditions == (
        "control",
        "tamoxifen",
    )
    assert fit.profile == {"level": 0.95, "points": 12} and fit.sample is None
    prediction = load_prediction(folder / "predict.toml", fit)
    assert prediction.options["threshold"] == 1e8
    opt = load_optimize(folder / "optimize.toml")
    assert opt.template.name == "inhibitor_course" and opt.space["inhibitor_days"] == (0.0, 56.0)


def test_info_prints_the_versions_of_this_installation(capsys):
    import numba

    import tolsim.cuda

    assert main(["info", "--no-cuda"]) == 0
    lines = dict(
        (part.strip() for part in line.split(" : ", 1))
        for line in capsys.readouterr().out.splitlines()
    )
    assert lines["tolsim"] == tolsim.__version__
    assert lines["numpy"] == np.__version__ and lines["numba"] == numba.__version__
    assert lines["xarray"] == xr.__version__
    assert "cuda" not in lines  # --no-cuda: no driver loaded
    cuda = tolsim.info.versions(cuda=True)["cuda"]  # the GPUs' names, or why there are none
    assert cuda and cuda.startswith("unavailable: ") != tolsim.cuda.is_available()


def test_cache_lists_and_clears_the_kernel_copies(tmp_path, monkeypatch, capsys):
    from tolsim.kernels import specialise

    monkeypatch.setenv("TOLSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(specialise, "_LOADED", {})
    assert main(["cache"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'kernels'}: 0 kernel copies")
    copy = Path(specialise.specialised("ode_template", tolsim.models.TwoState().rates).__file__)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert ": 1 kernel copies" in out and copy.stem in out
    assert main(["cache", "--clear"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 kernel copies")
    assert not copy.exists()


def test_the_sweep_help_example_is_a_valid_sweep_file(tmp_path):
    from tolsim.cli import _SWEEP_HELP

    example = _SWEEP_HELP.split("\n\n")[1]  # the indented TOML between the two paragraphs
    path = tmp_path / "sweep.toml"
    path.write_text("\n".join(line[2:] for line in example.splitlines()) + "\n")
    config = load_sweep(path)
    assert len(config.design) == 4096 and config.model.name == "TwoState"


def test_every_listed_experiment_has_the_quick_mode_the_help_offers():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1] / "experiments"
    scripts = sorted(p for p in root.glob("*.py") if not p.name.startswith("_"))
    assert len(scripts) >= 6
    for script in scripts:
        run = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0 and "--quick" in run.stdout, script.name
