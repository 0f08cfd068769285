"""Sweeps on a real Dask cluster into Zarr: metrics equal simulate(), chunk and worker
invariance, resuming an interrupted sweep, refusing a different sweep's store; and in memory
(``store=None``), equal to a store."""

import json

import numpy as np
import pytest
import xarray as xr
import zarr
from user_models import GrowthSwitch

import tolsim
from tolsim.design import grid, inhibitor_course, lhs
from tolsim.sweep import StoreMismatchError, sweep

MODEL = tolsim.models.TwoState()
SCHEDULE = tolsim.Schedule.from_phases([{"days": 56, "tamoxifen": 1.0}, {"days": 60}])
DESIGN = lhs(40, seed=3, kappa_T=(0.0, 0.6), mu_E=(1e-5, 1e-2, "log"), lambda_T=(0.1, 0.3))


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with Client(cluster) as c:
        yield c
    cluster.close()


def test_metrics_equal_direct_simulation(client, tmp_path):
    # (a threshold in cells: these samples grow from withdrawal on, so regrowth to the size
    # at withdrawal is 0 days for every one, and would compare nothing)
    ds = sweep(
        MODEL, DESIGN, SCHEDULE, store=tmp_path / "s.zarr", client=client, chunk_size=16,
        recurrence_threshold=1e6,
    )  # fmt: skip
    assert ds.sizes["sample"] == 40 and bool(ds.chunk_done.all())
    grid_days = np.union1d(np.arange(0.0, 116.0), [116.0])
    direct = tolsim.simulate(MODEL, dict(DESIGN.columns), SCHEDULE, grid_days)
    expected = tolsim.time_to_recurrence(direct, threshold=1e6)
    np.testing.assert_array_equal(ds.time_to_recurrence.values, expected.values)
    regrowing = (expected.values > 0) & np.isfinite(expected.values)
    assert regrowing.sum() >= 15  # (the rest start above 1e6 cells at withdrawal: 0 days)
    np.testing.assert_array_equal(ds.burden_at_withdrawal.values, direct.N.sel(time=56.0).values)
    np.testing.assert_array_equal(ds.nadir_cells.values, direct.N.min("time").values)
    assert np.all(ds.status.values == 0)
    assert ds.attrs["tolsim_version"] == tolsim.__version__
    np.testing.assert_array_equal(ds.kappa_T.values, DESIGN.columns["kappa_T"])


def test_bit_identical_whatever_chunks_and_workers(client, tmp_path):
    a = sweep(MODEL, DESIGN, SCHEDULE, store=tmp_path / "a.zarr", client=client, chunk_size=7)
    b = sweep(MODEL, DESIGN, SCHEDULE, store=tmp_path / "b.zarr", client=client, chunk_size=40)
    for name in ("time_to_recurrence", "burden_at_withdrawal", "nadir_cells", "nadir_day"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_a_store_notices_an_edited_model(client, tmp_path):
    """A changed default of a parameter outside the design (the same name, states and
    transitions) is another sweep; the store records the values it used."""
    import dataclasses

    store = tmp_path / "s.zarr"
    sweep(MODEL, DESIGN, SCHEDULE, store=store, client=client, chunk_size=20, max_chunks=1)
    faster = tuple(
        dataclasses.replace(p, default=2.0 * p.default) if p.name == "lambda_S" else p
        for p in MODEL.parameters
    )
    edited = dataclasses.replace(MODEL, parameters=faster)
    assert edited.describe() == MODEL.describe()
    with pytest.raises(StoreMismatchError, match="holds a different sweep"):
        sweep(edited, DESIGN, SCHEDULE, store=store, client=client, chunk_size=20)
    recorded = json.loads(xr.open_zarr(store, consolidated=False).attrs["params"])
    assert recorded["lambda_S"] == MODEL.parameter("lambda_S").default
    assert set(recorded) == set(MODEL.parameter_names) - set(DESIGN.names)


def test_interrupted_sweep_resumes_to_the_same_store(client, tmp_path):
    full = sweep(
        MODEL, DESIGN, SCHEDULE, store=tmp_path / "full.zarr", client=client, chunk_size=8
    )
    store = tmp_path / "part.zarr"
    part = sweep(MODEL, DESIGN, SCHEDULE, store=store, client=client, chunk_size=8, max_chunks=2)
    assert int(part.chunk_done.sum()) == 2
    assert np.isnan(part.time_to_recurrence.values[-1])  # not computed yet
    # a half-written chunk: data present but the marker unset -> it is redone
    done = xr.open_zarr(store, consolidated=False)
    assert not bool(done.chunk_done.values[2])
    resumed = sweep(MODEL, DESIGN, SCHEDULE, store=store, client=client, chunk_size=8)
    assert bool(resumed.chunk_done.all())
    for name in ("time_to_recurrence", "burden_at_withdrawal", "nadir_cells", "status"):
        np.testing.assert_array_equal(resumed[name].values, full[name].values)


def test_a_lost_status_chunk_reads_not_computed_not_success(tmp_path):
    """A chunk file of `status` deleted from a finished store read as 0 (success) beside NaN
    metrics; its samples read as not computed now."""
    import shutil

    store = tmp_path / "s.zarr"
    sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=8)
    chunk_files = sorted((store / "status" / "c").iterdir())
    assert len(chunk_files) == -(-len(DESIGN) // 8)
    shutil.rmtree(chunk_files[1]) if chunk_files[1].is_dir() else chunk_files[1].unlink()
    status = xr.open_zarr(store, consolidated=False).status.values
    np.testing.assert_array_equal(status[8:16], -99)
    assert np.all(status[:8] == 0) and np.all(status[16:] == 0)


def test_store_of_another_sweep_is_refused(client, tmp_path):
    store = tmp_path / "s.zarr"
    sweep(MODEL, DESIGN, SCHEDULE, store=store, client=client, chunk_size=20, max_chunks=1)
    other = grid(kappa_T=[0.1, 0.2])
    with pytest.raises(StoreMismatchError, match="holds a different sweep"):
        sweep(MODEL, other, SCHEDULE, store=store, client=client, chunk_size=20)
    with pytest.raises(StoreMismatchError, match="pass the same `chunk_size`"):
        sweep(MODEL, DESIGN, SCHEDULE, store=store, client=client, chunk_size=10)
    before = xr.open_zarr(store, consolidated=False).chunk_done.values
    assert before.sum() == 1  # nothing was overwritten


def test_a_refused_resume_says_what_differs_and_equal_numbers_are_the_same(tmp_path):
    """The refusal names the settings and records that differ (it said only "model,
    schedule, design, outputs or settings differ"); 1000 and 1000.0, or np.int64(100000) and
    100000, are the same sweep (they were refused as different ones), and numpy numbers in
    the settings are recorded as plain JSON (an in-memory sweep raised on them after it had
    computed everything)."""
    store = tmp_path / "s.zarr"
    first = dict(recurrence_threshold=1000.0, max_steps=100_000)
    sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20, max_chunks=0, **first)
    with pytest.raises(StoreMismatchError, match=r"it differs in rtol 1e-06 there, 1e-07 here"):
        sweep(
            MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20, max_chunks=0, rtol=1e-7, **first
        )
    with pytest.raises(StoreMismatchError, match=r"it differs in model; outputs"):
        sweep(tolsim.models.TwoState(crowding="none"), DESIGN, SCHEDULE, store=store,
              chunk_size=20, max_chunks=0, outputs="both", times=[0.0, 50.0], **first)  # fmt: skip
    same = dict(recurrence_threshold=1000, max_steps=np.int64(100_000))
    sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20, max_chunks=0, **same)
    times = dict(outputs="both", chunk_size=20, max_chunks=0, **first)
    both = tmp_path / "both.zarr"
    sweep(MODEL, DESIGN, SCHEDULE, store=both, times=[0.0, 50.0], **times)
    with pytest.raises(StoreMismatchError, match=r"it differs in times\)"):
        sweep(MODEL, DESIGN, SCHEDULE, store=both, times=[0.0, 60.0], **times)
    long = tmp_path / ("x" * 245 + ".zarr")  # the longest names are stores too
    sweep(MODEL, DESIGN, SCHEDULE, store=long, chunk_size=20, max_chunks=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["s.zarr", "both.zarr", long.name])
    memory = sweep(MODEL, DESIGN, SCHEDULE, store=None, max_steps=np.int64(100_000),
                   recurrence_threshold=np.float32(1000.0))  # fmt: skip
    assert json.loads(memory.attrs["settings"])["max_steps"] == 100_000


def test_stores_made_before_numbers_were_made_plain_still_resume(tmp_path):
    """A store fingerprinted with the settings as given (an int threshold, before
    2026-11-27) is taken up by the same sweep."""
    from tolsim.sweep import _design_points, _fingerprint_fields, _fingerprint_of

    store = tmp_path / "s.zarr"
    sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20, max_chunks=0,
          recurrence_threshold=1000)  # fmt: skip
    group = zarr.open_group(str(store), mode="r+")
    given = json.loads(group.attrs["settings"]) | {"recurrence_threshold": 1000}  # an int
    old = _fingerprint_of(
        _fingerprint_fields(MODEL, SCHEDULE, DESIGN, "metrics", None, given),
        _design_points(DESIGN),
    )
    assert group.attrs["tolsim_sweep_fingerprint"] != old  # the plain settings' differs
    group.attrs["tolsim_sweep_fingerprint"] = old
    sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20, max_chunks=0,
          recurrence_threshold=1000)  # fmt: skip
    with pytest.raises(StoreMismatchError, match="recurrence_threshold"):
        sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20, max_chunks=0,
              recurrence_threshold=2000)  # fmt: skip


def test_a_resume_is_refused_for_other_points_another_device_or_an_edited_store(tmp_path):
    """The same design spec with other points (made again by another scipy, say), another
    device, or a store missing a variable or its chunk size: refused before any work, the
    store untouched (they were accepted, mixing two sweeps, or crashed after the compute)."""
    from tolsim.design import Design

    store = tmp_path / "s.zarr"
    sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20, max_chunks=1)
    moved = {k: v.copy() for k, v in DESIGN.columns.items()}
    moved["mu_E"][33] *= 1.5
    lookalike = Design(moved, DESIGN.kind, DESIGN.spec)
    assert lookalike.to_dict() == DESIGN.to_dict()
    with pytest.raises(StoreMismatchError, match=r"other design points .*'mu_E', first at "
                       r"sample 33"):  # fmt: skip
        sweep(MODEL, lookalike, SCHEDULE, store=store, chunk_size=20)
    group = zarr.open_group(str(store), mode="r+")
    group.attrs["device"] = "cuda"
    with pytest.raises(StoreMismatchError, match=r"computed with `device` = 'cuda', not 'cpu'"):
        sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20)
    group.attrs["device"] = "cpu"
    del group.attrs["chunk_size"]
    with pytest.raises(StoreMismatchError, match="records no `chunk_size`"):
        sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20)
    group.attrs["chunk_size"] = 20
    del group["nadir_day"]
    with pytest.raises(StoreMismatchError, match="has no variable 'nadir_day'"):
        sweep(MODEL, DESIGN, SCHEDULE, store=store, chunk_size=20)
    assert int(xr.open_zarr(store, consolidated=False).chunk_done.sum()) == 1


def test_resuming_with_another_chunk_size_of_the_same_chunk_count_is_refused(client, tmp_path):
    """10 samples in chunks of 5 or of 6 are both 2 chunks: resuming the first with the second
    marked chunk 0 (samples 0-4) done for samples 0-5, and sample 5 was never computed."""
    store = tmp_path / "s.zarr"
    design = grid(kappa_T=np.linspace(0.0, 0.5, 10))
    sweep(MODEL, design, SCHEDULE, store=store, client=client, chunk_size=5, max_chunks=1)
    with pytest.raises(StoreMismatchError, match="chunks of 5 samples .*`chunk_size` = 6"):
        sweep(MODEL, design, SCHEDULE, store=store, client=client, chunk_size=6)
    done = sweep(MODEL, design, SCHEDULE, store=store, client=client, chunk_size=5)
    assert np.all(done.status.values == 0)


def test_trajectories_at_chosen_times(client, tmp_path):
    times = [0.0, 28.0, 56.0, 100.0]
    ds = sweep(
        MODEL,
        DESIGN,
        SCHEDULE,
        store=tmp_path / "t.zarr",
        client=client,
        outputs="trajectories",
        times=times,
        chunk_size=25,
    )
    direct = tolsim.simulate(MODEL, dict(DESIGN.columns), SCHEDULE, times)
    np.testing.assert_allclose(ds.N.values, direct.N.values, rtol=1e-12)
    assert "time_to_recurrence" not in ds


def test_bad_settings_are_refused_before_any_work(tmp_path):
    bad = [
        ({"rtol": -1.0}, ValueError, "`rtol` = -1.0"),
        ({"atol": 0.0}, ValueError, "`atol` = 0.0"),
        ({"rtol": "x"}, TypeError, "`rtol` = 'x'"),
        ({"max_steps": 0}, ValueError, "`max_steps` = 0"),
        ({"recurrence_threshold": "abc"}, ValueError, "`recurrence_threshold` = 'abc'"),
        ({"recurrence_threshold": -5.0}, ValueError, "`recurrence_threshold` = -5.0"),
        ({"method": "tau", "seed": 1, "threshold": 0.0}, ValueError, "`threshold` = 0.0"),
        ({"method": "ssa", "seed": 1, "max_events": 0}, ValueError, "`max_events` = 0"),
        ({"outputs": "trajectories", "times": [0.0, np.nan]}, ValueError, "NaN"),
        ({"paths": 10}, ValueError, "`paths` = 10 with `method` = 'auto'"),
        ({"seed": 1}, ValueError, "`seed` = 1 with `method` = 'auto'"),
        ({"times": [0.0, 10.0]}, ValueError, "`times` is given with `outputs` = 'metrics'"),
    ]
    for kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            sweep(MODEL, DESIGN, SCHEDULE, store=None, **kwargs)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.zarr").write_text("not a store")
    for path in (tmp_path / "empty", tmp_path / "file.zarr"):
        with pytest.raises(StoreMismatchError, match="exists but is not a Zarr store"):
            sweep(MODEL, DESIGN, SCHEDULE, store=path)
        assert path.exists()  # left as it was
    with pytest.raises(ValueError, match="`max_chunks` = -1"):  # it ran all chunks but one
        sweep(MODEL, DESIGN, SCHEDULE, store="never.zarr", max_chunks=-1)


def test_a_bad_design_row_is_named_by_its_row_in_the_design(tmp_path):
    design = grid(kappa_T=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, -1.0])
    with pytest.raises(ValueError, match=r"`design.kappa_T\[7\]` = -1.0"):
        sweep(MODEL, design, SCHEDULE, store=None, chunk_size=4)
    with pytest.raises(ValueError, match=r"`design.kappa_T\[7\]` = -1.0"):
        sweep(MODEL, design, SCHEDULE, store=tmp_path / "x.zarr", chunk_size=4)
    assert not (tmp_path / "x.zarr").exists()  # refused before the store is made
    template = inhibitor_course(tamoxifen_days=10.0, follow_up_days=15.0, inhibitor_days=4.0)
    slots = grid(inhibitor_start_day=[0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, -3.0])
    with pytest.raises(ValueError, match=r"`design` row 7 \(inhibitor_start_day=-3.0\)"):
        sweep(MODEL, slots, template, store=None, chunk_size=4)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`outputs` = 'all'"):
        sweep(MODEL, DESIGN, SCHEDULE, store=tmp_path / "x.zarr", outputs="all")
    with pytest.raises(ValueError, match="`chunk_size` = 0"):
        sweep(MODEL, DESIGN, SCHEDULE, store=tmp_path / "x.zarr", chunk_size=0)
    with pytest.raises(ValueError, match="`times` is required"):
        sweep(MODEL, DESIGN, SCHEDULE, store=tmp_path / "x.zarr", outputs="trajectories")
    with pytest.raises(ValueError, match="unknown parameter"):
        sweep(MODEL, grid(kappa=[0.1]), SCHEDULE, store=tmp_path / "x.zarr")


def test_schedule_slots_are_sweep_dimensions(client, tmp_path):
    from tolsim.design import inhibitor_course

    template = inhibitor_course(tamoxifen_days=56.0, follow_up_days=60.0, inhibitor_days=14.0)
    design = grid(inhibitor_start_day=[0.0, 28.0, 42.0], kappa_T=[0.1, 0.5])
    ds = sweep(
        MODEL, design, template, store=tmp_path / "slots.zarr", client=client, chunk_size=4,
        recurrence_threshold=3e6,
    )  # fmt: skip
    for i in range(len(design)):
        row = design.row(i)
        schedule = template(inhibitor_start_day=row["inhibitor_start_day"])
        days = np.union1d(np.arange(0.0, 116.0), np.append(schedule.breakpoints(), 116.0))
        direct = tolsim.simulate(MODEL, {"kappa_T": row["kappa_T"]}, schedule, days)
        expected = float(tolsim.time_to_recurrence(direct, threshold=3e6))
        assert ds.time_to_recurrence.values[i] == expected and 20.0 < expected < 30.0
        assert ds.burden_at_withdrawal.values[i] == float(direct.N.sel(time=56.0))
    assert len(set(ds.burden_at_withdrawal.values.tolist())) == len(design)  # all differ


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_killed_worker_is_recovered(tmp_path):
    """One of two worker processes is killed (SIGKILL) mid-sweep: the nanny restarts it, Dask
    reruns its lost chunk, and every sample is there exactly once, equal to an undisturbed
    sweep."""
    import os
    import signal
    import threading
    import time

    from distributed import Client, LocalCluster

    big = lhs(20_000, seed=5, kappa_T=(0.0, 0.6), mu_E=(1e-5, 1e-2, "log"))
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster) as c:
            # rtol 1e-10: chunks slow enough (~30 ms) for the kill to land mid-sweep
            run = dict(client=c, chunk_size=500, rtol=1e-10)
            reference = sweep(MODEL, big, SCHEDULE, store=tmp_path / "ref.zarr", **run)
            victim = next(iter(c.run(os.getpid).values()))
            store = tmp_path / "killed.zarr"
            progress = {}

            def done_chunks():
                try:
                    # chunks=None: read here with numpy, not as a dask task queued behind the
                    # sweep on the same cluster
                    done = xr.open_zarr(store, consolidated=False, chunks=None).chunk_done
                    return int(done.values.sum())
                except Exception:  # the store is still being created (zarr raises several kinds)
                    return 0

            def kill_when_started():  # as soon as the first chunk is in: mid-sweep
                while done_chunks() == 0:
                    time.sleep(0.005)
                progress["done_at_kill"] = done_chunks()
                os.kill(victim, signal.SIGKILL)

            killer = threading.Thread(target=kill_when_started)
            killer.start()
            ds = sweep(MODEL, big, SCHEDULE, store=store, **run)
            killer.join()
            # the sweep can end before the nanny has replaced the killed process: ask the
            # live workers until two answer (a dead one's comm is skipped, not an error)
            deadline = time.monotonic() + 60.0
            survivors = set()
            while len(survivors) < 2 and time.monotonic() < deadline:
                survivors = set(c.run(os.getpid, on_error="ignore").values())
                time.sleep(0.1)
    assert victim not in survivors  # the kill happened (a new worker process replaced it)
    assert progress["done_at_kill"] < 40  # ... before the sweep had finished
    assert bool(ds.chunk_done.all())
    for name in ("time_to_recurrence", "burden_at_withdrawal", "nadir_cells", "status"):
        np.testing.assert_array_equal(ds[name].values, reference[name].values)


def test_stochastic_sweep_matches_simulate_and_ignores_chunking(client, tmp_path):
    linear = tolsim.models.TwoState(crowding="none")
    schedule = tolsim.Schedule.from_phases(
        [{"days": 20, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 20}]
    )
    design = grid(S0=[0.0], T0=[3.0, 6.0], kappa_T=[0.2, 0.4, 0.6])
    run = dict(method="ssa", paths=64, seed=7, client=client, recurrence_threshold=50.0)
    a = sweep(linear, design, schedule, store=tmp_path / "a.zarr", chunk_size=2, **run)
    b = sweep(linear, design, schedule, store=tmp_path / "b.zarr", chunk_size=6, **run)
    table = {name: np.asarray(values) for name, values in design.columns.items()}
    direct = tolsim.simulate(
        linear,
        table,
        schedule,
        [20.0, 40.0],
        method="ssa",
        paths=64,
        seed=7,
        recurrence_threshold=50.0,
    )
    extinct = (direct.N.sel(time=40.0) == 0).mean("path").values
    for name in ("extinction_probability", "recurrence_probability", "time_to_recurrence"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    np.testing.assert_array_equal(a.extinction_probability.values, extinct)
    assert 0 < a.tolerant_extinction_probability.values.mean() < 1
    with pytest.raises(ValueError, match="`seed` = None"):
        sweep(linear, design, schedule, store=tmp_path / "c.zarr", method="tau", client=client)


def test_a_stochastic_sample_with_a_failed_path_has_nan_metrics():
    """An event budget of 30 stops the growing sample's paths part-way (status -2): its counts
    are not an estimate of anything (the mean burden was -2, the -1 'missing' markers)."""
    linear = tolsim.models.TwoState(crowding="none")
    schedule = tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}, {"days": 10}])
    design = {"S0": [0.0, 0.0], "T0": [50.0, 0.0], "lambda_T": [0.5, 0.5]}  # sample 1: none
    ds = sweep(linear, design, schedule, store=None, method="hybrid", paths=20, seed=1,
               max_events=30, recurrence_threshold=60.0)  # fmt: skip
    assert ds.status.values.tolist()[0] == -2
    for name in ("extinction_probability", "recurrence_probability", "time_to_recurrence",
                 "burden_at_withdrawal"):  # fmt: skip
        assert np.isnan(ds[name].values[0]), name
    assert ds.status.values[1] == 0 and ds.extinction_probability.values[1] == 1.0


def test_failing_samples_are_marked_and_the_sweep_goes_on(client, tmp_path):
    """A step budget too small for fast-growing samples: those fail, the rest succeed, and
    the failures are marked in `status` with NaN metrics."""
    design = grid(lambda_S=[0.05, 3.0], lambda_T=[0.1])
    ds = sweep(
        MODEL,
        design,
        SCHEDULE,
        store=tmp_path / "f.zarr",
        client=client,
        chunk_size=1,
        max_steps=60,
    )
    status = ds.status.values
    assert status[0] == 0 and status[1] == -2  # max steps reached
    assert bool(ds.chunk_done.all())
    assert np.isfinite(ds.nadir_cells.values[0]) and np.isnan(ds.nadir_cells.values[1])


def test_in_memory_sweep_equals_the_store(client, tmp_path):
    """``store=None``: the same numbers as a store (metrics, trajectories, schedule slots), in
    memory, with the same attrs and units, whatever the batch size."""
    from tolsim.design import inhibitor_course

    template = inhibitor_course(tamoxifen_days=56.0, follow_up_days=60.0, inhibitor_days=14.0)
    design = grid(inhibitor_start_day=[0.0, 28.0, 42.0], kappa_T=[0.1, 0.3, 0.5])
    run = dict(outputs="both", times=[0.0, 56.0, 116.0])
    stored = sweep(MODEL, design, template, store=tmp_path / "s.zarr", client=client, **run)
    memory = sweep(MODEL, design, template, store=None, chunk_size=4, **run)
    whole = sweep(MODEL, design, template, store=None, chunk_size=100, **run)
    assert set(stored.data_vars) - set(memory.data_vars) == {"chunk_done"}
    assert set(memory.data_vars) <= set(stored.data_vars)
    for name in memory.data_vars:
        np.testing.assert_array_equal(memory[name].values, stored[name].values)
        np.testing.assert_array_equal(whole[name].values, stored[name].values)
        assert memory[name].attrs == stored[name].attrs
    assert (
        memory.N.attrs["units"] == "cells" and memory.time_to_recurrence.attrs["units"] == "days"
    )
    same = ("model", "schedule", "design", "outputs", "settings", "tolsim_sweep_fingerprint")
    assert all(memory.attrs[key] == stored.attrs[key] for key in same)
    assert memory.attrs["chunk_size"] == 4 and memory.attrs["device"] == "cpu"
    assert memory.N.dims == ("sample", "time") and memory.sizes["sample"] == len(design)


def test_a_table_designs_points_give_the_same_fingerprint_in_memory_and_in_a_store(
    client, tmp_path
):
    """A table built directly (no spec to rebuild it) is fingerprinted by its points: the
    in-memory sweep hashes them while its samples run, the store before any work; the two
    agree, and a nudged point changes both."""
    from tolsim.design import Design

    columns = {"kappa_T": np.array([0.1, 0.2, 0.3]), "lambda_T": np.array([0.2, 0.25, 0.3])}
    design = Design(columns, "table")
    assert design.spec.get("sha256") is None  # the points are what identifies it
    schedule = tolsim.Schedule.from_phases([{"days": 20, "tamoxifen": 1.0}, {"days": 20}])
    stored = sweep(MODEL, design, schedule, store=tmp_path / "s.zarr", client=client)
    memory = sweep(MODEL, design, schedule, store=None)
    key = "tolsim_sweep_fingerprint"
    assert memory.attrs[key] == stored.attrs[key]
    nudged = Design({**columns, "lambda_T": np.array([0.2, 0.25, 0.3000001])}, "table")
    assert sweep(MODEL, nudged, schedule, store=None).attrs[key] != memory.attrs[key]
    with pytest.raises(StoreMismatchError):
        sweep(MODEL, nudged, schedule, store=tmp_path / "s.zarr", client=client)


def test_in_memory_stochastic_sweep_equals_the_store(client, tmp_path):
    linear = tolsim.models.TwoState(crowding="none")
    schedule = tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}, {"days": 10}])
    design = grid(S0=[0.0], T0=[3.0, 6.0], kappa_T=[0.2, 0.6])
    run = dict(method="tau", paths=16, seed=3, recurrence_threshold=20.0)
    stored = sweep(linear, design, schedule, store=tmp_path / "s.zarr", client=client, **run)
    memory = sweep(linear, design, schedule, store=None, chunk_size=3, **run)
    for name in memory.data_vars:
        np.testing.assert_array_equal(memory[name].values, stored[name].values)


def test_in_memory_sweep_refuses_what_needs_a_store():
    with pytest.raises(ValueError, match="`client` = 'tcp://x:1' with `store` = None"):
        sweep(MODEL, DESIGN, SCHEDULE, store=None, client="tcp://x:1")
    with pytest.raises(ValueError, match="`max_chunks` = 1 with `store` = None"):
        sweep(MODEL, DESIGN, SCHEDULE, store=None, max_chunks=1)


def test_lockstep_sweep_is_within_tolerance_and_keyed_to_its_chunks(client, tmp_path):
    """``lockstep=True``: values within the solver's tolerance of the default sweep, the same
    bits for chunk sizes whose groups coincide (one group and three groups a chunk, for two
    groups and 8 samples), and a store that resumes only with its own chunk size."""
    from tolsim.simulate import lane_kernels

    group = lane_kernels(MODEL).LOCKSTEP_LANES
    design = lhs(2 * group + 8, seed=3, kappa_T=(0.0, 0.6), mu_E=(1e-5, 1e-2, "log"))
    grouped = sweep(MODEL, design, SCHEDULE, store=None, chunk_size=group, lockstep=True)
    aligned = sweep(MODEL, design, SCHEDULE, store=None, chunk_size=3 * group, lockstep=True)
    independent = sweep(MODEL, design, SCHEDULE, store=None, chunk_size=3 * group)
    for name in ("burden_at_withdrawal", "tolerant_fraction_at_withdrawal", "nadir_cells"):
        np.testing.assert_array_equal(grouped[name].values, aligned[name].values)
        np.testing.assert_allclose(grouped[name].values, independent[name].values, rtol=2e-5)
        assert not np.array_equal(grouped[name].values, independent[name].values)
    settings = json.loads(grouped.attrs["settings"])
    assert settings["lockstep"] is True and settings["chunk_size"] == group
    assert "lockstep" not in json.loads(independent.attrs["settings"])
    store = tmp_path / "lockstep.zarr"
    run = dict(client=client, lockstep=True)
    sweep(MODEL, design, SCHEDULE, store=store, chunk_size=group, max_chunks=1, **run)
    with pytest.raises(StoreMismatchError, match="different sweep"):
        sweep(MODEL, design, SCHEDULE, store=store, chunk_size=20, **run)
    done = sweep(MODEL, design, SCHEDULE, store=store, chunk_size=group, **run)
    np.testing.assert_array_equal(done.nadir_cells.values, grouped.nadir_cells.values)


def test_lockstep_sweep_refuses_what_it_cannot_do():
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.1, every_days=1.0, stop_day=3.0, pk=tolsim.PK.tamoxifen_mouse()
    )
    cases = [
        (dict(method="rosenbrock"), ValueError, "method 'auto' or 'dopri5'"),
        (dict(method="tau", seed=1), ValueError, "method 'auto' or 'dopri5'"),
        (dict(model=GrowthSwitch()), ValueError, "`lane_rates`"),
        (dict(schedule=oral), ValueError, "PK dosing"),
    ]
    for options, error, match in cases:
        arguments = {"model": MODEL, "schedule": SCHEDULE, **options}
        model, schedule = arguments.pop("model"), arguments.pop("schedule")
        design = lhs(4, seed=1, kappa_T=(0.0, 0.6))
        with pytest.raises(error, match=match):
            sweep(model, design, schedule, store=None, lockstep=True, **arguments)
    with pytest.raises(TypeError, match="`lockstep` = 1"):
        sweep(MODEL, DESIGN, SCHEDULE, store=None, lockstep=1)


def test_in_memory_sweep_holds_one_chunk_of_trajectories_at_a_time():
    """The metrics kept per chunk own their memory: a column view of a chunk's (samples, days)
    totals would keep every chunk's trajectories alive until the end of the sweep."""
    import tracemalloc

    design = lhs(4000, seed=5, kappa_T=(0.0, 0.6))
    sweep(MODEL, lhs(8, seed=5, kappa_T=(0.0, 0.6)), SCHEDULE, store=None)  # compile or load
    tracemalloc.start()
    sweep(MODEL, design, SCHEDULE, store=None, chunk_size=500)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    days = SCHEDULE.duration_days + 2  # the metric grid: daily, breakpoints, the last day
    one_chunk = 500 * days * 8 * (len(MODEL.states) + 3)  # states, dN/dt, total, fraction
    assert peak < 2 * one_chunk, f"peak {peak / 2**20:.1f} MiB"


def test_a_dataframe_design_is_the_same_sweep_as_its_table_and_resumes_only_with_it(tmp_path):
    import pandas as pd

    from tolsim.design import from_table

    frame = pd.DataFrame({name: DESIGN.columns[name][:6] for name in DESIGN.names})
    memory = sweep(MODEL, frame, SCHEDULE, store=None)
    table = sweep(MODEL, from_table(frame), SCHEDULE, store=None)
    xr.testing.assert_identical(memory, table)
    direct = tolsim.simulate(MODEL, frame, SCHEDULE, np.union1d(np.arange(0.0, 116.0), [116.0]))
    np.testing.assert_array_equal(memory.nadir_cells.values, direct.N.min("time").values)
    store = tmp_path / "s.zarr"
    sweep(MODEL, frame, SCHEDULE, store=store, max_chunks=0, chunk_size=3)  # metadata only
    changed = frame.assign(kappa_T=frame.kappa_T * 1.01)
    with pytest.raises(StoreMismatchError, match="holds a different sweep"):
        sweep(MODEL, changed, SCHEDULE, store=store, chunk_size=3)
    with pytest.raises(TypeError, match="`design` is a list: expected a tolsim.design.Design"):
        sweep(MODEL, [[0.1, 1e-4]], SCHEDULE, store=None)


def test_metrics_at_an_oral_withdrawal_between_days_are_taken_on_that_day():
    """An oral regimen stopping at day 20.5 (neither a whole day nor a dose day): the metrics
    were read at day 21 and the crossing interpolated across the withdrawal."""
    mouse = tolsim.PK.tamoxifen_mouse()
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.5, every_days=1.0, stop_day=20.5, pk=mouse, duration_days=60.0
    )
    assert oral.withdrawal_day("tamoxifen") == 20.5 and 20.5 not in oral.breakpoints()
    design = {"kappa_T": [0.1, 0.4], "mu_E": [1e-3, 1e-3]}
    ds = sweep(MODEL, design, oral, store=None, recurrence_threshold=1e6)
    times = np.union1d(np.arange(61.0), oral.breakpoints())
    times = np.union1d(times, [20.5])
    direct = tolsim.simulate(MODEL, design, oral, times)
    np.testing.assert_allclose(
        ds.burden_at_withdrawal.values, direct.N.sel(time=20.5).values, rtol=1e-12
    )
    expected = tolsim.time_to_recurrence(direct, threshold=1e6).values
    np.testing.assert_allclose(ds.time_to_recurrence.values, expected, rtol=1e-12)
    assert np.all((expected > 10.0) & (expected < 20.0))


def test_an_oral_regimen_stopping_after_the_schedule_has_no_withdrawal_metrics():
    """Dosing would stop on day 40.5 of a 40.2-day schedule: no withdrawal within it, so the
    withdrawal metrics are NaN (an ODE sweep raised IndexError)."""
    oral = tolsim.Schedule.oral(
        "tamoxifen",
        dose_mg=0.5,
        every_days=1.0,
        stop_day=40.5,
        pk=tolsim.PK.tamoxifen_mouse(),
        duration_days=40.2,
    )
    assert oral.withdrawal_day() > oral.duration_days
    linear = tolsim.models.TwoState(crowding="none")
    design = {"S0": [100.0, 200.0], "T0": [10.0, 20.0]}
    for run in ({}, {"method": "tau", "paths": 4, "seed": 1}):
        ds = sweep(linear, design, oral, store=None, **run)
        for name in ("time_to_recurrence", "burden_at_withdrawal"):
            assert np.isnan(ds[name].values).all(), (run, name)
        assert np.all(ds.status.values == 0)


def test_a_stochastic_withdrawal_on_the_last_day_has_its_burden():
    """Tamoxifen to the schedule's end: the burden at withdrawal is the paths' mean burden on
    that day (it was NaN), as simulate gives it from the same streams."""
    linear = tolsim.models.TwoState(crowding="none")
    to_the_end = tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}])
    design = {"S0": [50.0, 80.0], "T0": [5.0, 9.0]}
    run = dict(method="tau", paths=16, seed=3)
    ds = sweep(linear, design, to_the_end, store=None, **run)
    paths = tolsim.simulate(linear, design, to_the_end, [10.0], **run)
    np.testing.assert_array_equal(
        ds.burden_at_withdrawal.values, paths.N.sel(time=10.0).mean("path").values
    )
    assert np.all(np.isinf(ds.time_to_recurrence.values))  # no follow-up: not by the end


def test_stores_of_other_points_or_other_templates_are_refused(tmp_path):
    from tolsim.design import Design, ScheduleTemplate

    store = tmp_path / "direct.zarr"
    first = Design({"kappa_T": np.array([0.1, 0.3])}, "table")
    sweep(MODEL, first, SCHEDULE, store=store, max_chunks=0)
    other = Design({"kappa_T": np.array([0.5, 0.6])}, "table")  # the same spec: {}
    with pytest.raises(StoreMismatchError, match="holds a different sweep"):
        sweep(MODEL, other, SCHEDULE, store=store)

    def course(dose_um):
        def build(days):
            return tolsim.Schedule.from_phases(
                [{"days": days, "tamoxifen": dose_um}, {"days": 30}]
            )

        return ScheduleTemplate(build, {"days": 20.0}, "course")

    store = tmp_path / "template.zarr"
    slots = grid(days=[10.0, 20.0])
    sweep(MODEL, slots, course(1.0), store=store, max_chunks=0)
    assert course(1.0).to_dict() == course(0.01).to_dict()  # what the attrs record
    with pytest.raises(StoreMismatchError, match="holds a different sweep"):
        sweep(MODEL, slots, course(0.01), store=store)


def test_a_store_whose_creation_was_interrupted_is_not_resumed(tmp_path, monkeypatch):
    import importlib

    module = importlib.import_module("tolsim.sweep")  # (tolsim.sweep is the function)

    def interrupted(*args, **kwargs):  # after the metadata, before the store is sealed
        raise KeyboardInterrupt

    store = tmp_path / "s.zarr"
    with monkeypatch.context() as patched:
        patched.setattr(module, "_seal_store", interrupted)
        with pytest.raises(KeyboardInterrupt):
            sweep(MODEL, DESIGN, SCHEDULE, store=store)
    # built aside and renamed into place: an interrupted creation leaves nothing behind
    assert list(tmp_path.iterdir()) == []
    assert bool(sweep(MODEL, DESIGN, SCHEDULE, store=store).chunk_done.all())


def test_stores_without_a_fingerprint_and_a_creation_race_are_named(tmp_path, monkeypatch):
    """A store without its fingerprint (made by a version that created stores in place, or
    edited) is called half-created (it was "a different sweep (fingerprint None)"), unless it
    has computed chunks; a store another process created meanwhile is resumed; a creation
    that fails for lack of space says so (it was blamed on another process)."""
    import importlib

    import zarr

    module = importlib.import_module("tolsim.sweep")
    store = tmp_path / "s.zarr"
    sweep(MODEL, DESIGN, SCHEDULE, store=store, max_chunks=0)
    del zarr.open_group(store, mode="r+").attrs["tolsim_sweep_fingerprint"]
    with pytest.raises(StoreMismatchError, match="left half-created .* remove it and run again"):
        sweep(MODEL, DESIGN, SCHEDULE, store=store)
    done = tmp_path / "done.zarr"
    sweep(MODEL, DESIGN, SCHEDULE, store=done)
    del zarr.open_group(done, mode="r+").attrs["tolsim_sweep_fingerprint"]
    with pytest.raises(StoreMismatchError, match="has computed chunks but no fingerprint"):
        sweep(MODEL, DESIGN, SCHEDULE, store=done)

    raced = tmp_path / "raced.zarr"
    create = module._create_store

    def other_process_first(store, *args, **kwargs):
        create(store, *args, **kwargs)  # the other process's creation
        create(store, *args, **kwargs)  # then this one's

    monkeypatch.setattr(module, "_create_store", other_process_first)
    # the other process's store took the path: this sweep resumes it (both failed before,
    # leaving a half-created store that neither could resume)
    assert bool(sweep(MODEL, DESIGN, SCHEDULE, store=raced).chunk_done.all())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.zarr", "raced.zarr", "s.zarr"]
    monkeypatch.undo()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "_seal_store", disk_full)
    with pytest.raises(OSError, match=r"`store` = '.*full.zarr' could not be created: .*No space"):
        sweep(MODEL, DESIGN, SCHEDULE, store=tmp_path / "full.zarr")
    assert not (tmp_path / "full.zarr").exists()  # (it was "created by another process")


def test_stochastic_counts_threshold_and_chunks_are_checked_up_front(tmp_path):
    linear = tolsim.models.TwoState(crowding="none")
    design = {"T0": [1.0, 2.0, 3.0, 4.0, 5.0, 4.5]}
    run = dict(method="tau", paths=2, seed=1)
    with pytest.raises(ValueError, match=r"`design.T0\[5\]` = 4.5 cells: stochastic methods"):
        sweep(linear, design, SCHEDULE, store=tmp_path / "s.zarr", chunk_size=2, **run)
    assert not (tmp_path / "s.zarr").exists()
    with pytest.raises(
        ValueError, match=r"`threshold` = 0.5 cells: expected a finite number >= 1"
    ):
        sweep(linear, {"T0": [1.0]}, SCHEDULE, store=None, threshold=0.5, **run)
    with pytest.raises(ValueError, match=r"`chunk_size` = True: expected an integer"):
        sweep(linear, {"T0": [1.0]}, SCHEDULE, store=None, chunk_size=True)


def test_gpu_options_are_refused_on_the_cpu():
    for kwargs, message in (
        ({"gpu_specialise": True}, r"`gpu_specialise` = True with `device` = 'cpu'"),
        ({"gpu_specialise": "yes"}, r"`gpu_specialise` = 'yes': expected True or False"),
        ({"gpu_chunk_size": 1000}, r"`gpu_chunk_size` = 1000 with `device` = 'cpu'"),
        ({"gpu_chunk_size": -5}, r"`gpu_chunk_size` = -5: expected an integer >= 1"),
        ({"gpu_chunk_size": True}, r"`gpu_chunk_size` = True: expected an integer >= 1"),
    ):
        with pytest.raises((TypeError, ValueError), match=message):
            sweep(MODEL, DESIGN, SCHEDULE, store=None, **kwargs)


def test_a_template_whose_slots_the_design_leaves_runs_at_its_defaults():
    template = inhibitor_course(tamoxifen_days=10.0, follow_up_days=15.0, inhibitor_days=4.0)
    design = grid(kappa_T=[0.1, 0.3])
    ds = sweep(MODEL, design, template, store=None)
    same = sweep(MODEL, design, template(), store=None)
    np.testing.assert_array_equal(ds.time_to_recurrence.values, same.time_to_recurrence.values)
    np.testing.assert_array_equal(ds.nadir_cells.values, same.nadir_cells.values)


def test_auto_is_the_same_method_as_in_simulate():
    """'auto' solves a linear model exactly in simulate; the sweep ran DOPRI5 (1e-6 apart)
    and accepted lockstep, which simulate refuses for it."""
    linear = tolsim.models.TwoState(crowding="none")
    design = {"kappa_T": [0.1, 0.3], "mu_E": [1e-3, 1e-2]}
    ds = sweep(linear, design, SCHEDULE, store=None, recurrence_threshold=1e7)
    direct = tolsim.simulate(linear, design, SCHEDULE, np.union1d(np.arange(116.0), [116.0]))
    assert direct.attrs["method"] == "exact"
    expected = tolsim.time_to_recurrence(direct, threshold=1e7).values
    np.testing.assert_array_equal(ds.time_to_recurrence.values, expected)
    assert np.all((expected > 2.0) & (expected < 20.0))
    np.testing.assert_array_equal(ds.burden_at_withdrawal.values, direct.N.sel(time=56.0).values)
    with pytest.raises(ValueError, match=r"`lockstep` = True needs the Dormand-Prince kernel"):
        sweep(linear, design, SCHEDULE, store=None, lockstep=True)
    sweep(linear, design, SCHEDULE, store=None, lockstep=True, method="dopri5")  # accepted
    with pytest.raises(ValueError, match=r"`method` = 'exact' needs a linear model"):
        sweep(MODEL, design, SCHEDULE, store=None, method="exact")


def test_a_sweep_describes_its_variables():
    ds = sweep(MODEL, DESIGN, SCHEDULE, store=None)
    parameters = {p.name: p for p in MODEL.parameters}
    for name in ("kappa_T", "mu_E", "lambda_T"):  # the design's columns
        assert ds[name].attrs["units"] == parameters[name].unit
    for name in ("time_to_recurrence", "burden_at_withdrawal", "nadir_day", "status"):
        assert ds[name].attrs["long_name"]
    assert ds.time_to_recurrence.attrs["units"] == "days"
    template = inhibitor_course(tamoxifen_days=10.0, follow_up_days=15.0, inhibitor_days=4.0)
    slots = sweep(MODEL, grid(inhibitor_start_day=[0.0, 5.0]), template, store=None)
    assert slots.inhibitor_start_day.attrs["units"] == "days"


@pytest.mark.parametrize(
    "method, option",
    [("dopri5", {"max_events": 5}), ("auto", {"threshold": 5.0}), ("ssa", {"rtol": 1e-8}),
     ("tau", {"atol": 1.0}), ("hybrid", {"max_steps": 10})],
)  # fmt: skip
def test_options_of_the_other_kind_of_method_are_refused_as_in_simulate(method, option):
    """An ODE sweep ran with `max_events` or `threshold`, a stochastic one with `rtol`, and
    ignored them; simulate refuses them."""
    linear = tolsim.models.TwoState(crowding="none")
    run = {"seed": 1, "paths": 2} if method in ("ssa", "tau", "hybrid") else {}
    (name,) = option
    with pytest.raises(ValueError, match=f"`{name}` = .* with `method` = '{method}'"):
        sweep(linear, {"T0": [1.0]}, SCHEDULE, store=None, method=method, **run, **option)
