"""The ``tolsim`` command run in-process: a sweep file gives the same store as tolsim.sweep,
--resume continues or leaves a finished store alone, and every mistake exits with status 2
and a message naming the TOML key or option."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import tolsim
from tolsim.cli import ConfigError, load_sweep, main
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


def test_existing_store_without_resume_is_an_error(tmp_path, capsys):
    store = tmp_path / "out.zarr"
    store.mkdir()
    assert main(["sweep", write(tmp_path), "--store", str(store)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "store exists; pass --resume to continue it" in err
    assert "Traceback" not in err


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
        ("chunk_size = 2", 'device = "gpu"', "`run.device` = 'gpu' in {file}: expected one of"),
        ("chunk_size = 2", "chunks = 2", "`run.chunks` in {file} is not a known key"),
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
    assert not bool(xr.open_zarr(store, consolidated=False).chunk_done.any())


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
