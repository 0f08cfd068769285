"""Kernel building blocks: the Runge-Kutta tableau, and per-model kernel copies."""

import importlib
import os
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

import tolsim
from tolsim.kernels.specialise import specialised


@pytest.fixture(scope="module")
def kernels():
    return specialised("ode_template", tolsim.models.TwoState().rates)


def test_dormand_prince_tableau_satisfies_order_conditions(kernels):
    a, c, e, dense = kernels.DP_A, kernels.DP_C, kernels.DP_E, kernels.DENSE_P
    np.testing.assert_allclose(a.sum(axis=1), c, atol=1e-15)  # row sums are the nodes
    b = a[6]
    for k in range(5):  # quadrature order 5: sum b c^k = 1 / (k + 1)
        assert np.dot(b, c[:6] ** k) == pytest.approx(1.0 / (k + 1), abs=1e-14)
    assert np.dot(b, a[:6, :6] @ c[:6]) == pytest.approx(1 / 6, abs=1e-14)
    assert e.sum() == pytest.approx(0.0, abs=1e-15)  # the error estimate of a constant is 0
    # the dense output at s = 1 is the fifth-order solution
    np.testing.assert_allclose(dense.sum(axis=1), np.r_[b, 0.0], atol=1e-14)


@pytest.mark.parametrize("method", ["exact", "auto"])
def test_an_ode_copy_compiles_its_own_solver_alone(method):
    """The exact and the adaptive solvers live in separate copies of the ODE kernels: after
    numba's branch pruning (which runs before typing) a copy's entry points call one solver
    alone, so a first call compiles only the code it runs; and a copy refuses a method code it
    does not solve instead of running the wrong solver."""
    from numba.core import analysis, compiler, ir

    from tolsim.simulate import _METHOD_CODES, ode_kernels

    model = tolsim.models.TwoState(crowding="none")
    code = _METHOD_CODES[method]
    kernels = ode_kernels(model, code)
    exact = method == "exact"
    assert kernels.SOLVER == (kernels.SOLVER_EXACT if exact else kernels.SOLVER_ADAPTIVE)
    # the front door's method codes are the kernels' own
    assert {name: getattr(kernels, f"METHOD_{name.upper()}") for name in _METHOD_CODES} == (
        _METHOD_CODES
    )

    def called(func):
        func_ir = compiler.run_frontend(func.py_func)
        analysis.dead_branch_prune(func_ir, [numba.types.int64] * func_ir.arg_count)
        return {
            stmt.value.name
            for block in func_ir.blocks.values()
            for stmt in block.body
            if isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Global)
        }

    solvers = {"integrate_exact", "integrate_adaptive", "solve_one"}
    assert called(kernels.solve_one) & solvers == (
        {"integrate_exact"} if exact else {"integrate_adaptive"}
    )
    assert called(kernels.solve_batch) & solvers == (
        {"integrate_exact"} if exact else {"integrate_adaptive"}
    )
    # the template itself solves nothing
    template = specialised("ode_template", model.rates)
    assert template.SOLVER == -1 and called(template.solve_one) & solvers == set()

    schedule = tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}])
    packed = model.pack(model.default_params())[None, :]
    t_out = np.array([0.0, 10.0])
    other = _METHOD_CODES["dopri5" if exact else "exact"]
    with pytest.raises(ValueError, match="not solved by the solver compiled into this copy"):
        kernels.solve_batch(
            packed, model.initial_state(packed), tuple(schedule.compile(model.drugs)),
            model.stoichiometry.astype(np.float64), t_out, 1e-6, 1e-6, 1000, other,
            np.empty((1, 2, 2)), np.empty((1, 2)), np.zeros((1, kernels.N_STATS), np.int64),
            np.zeros(0, np.int64), np.empty((0, 2)), np.empty((0, 2)),
        )  # fmt: skip
    with pytest.raises(ValueError, match="`code` = 7"):
        ode_kernels(model, 7)


def test_copies_are_per_rate_function_and_follow_source_edits(tmp_path, monkeypatch):
    monkeypatch.setenv("TOLSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    module_file = tmp_path / "edited_model.py"
    template = """
        from numba import njit

        @njit(cache=True)
        def rates(t, x, p, c, out):
            out[0] = {factor} * x[0]
    """
    module_file.write_text(textwrap.dedent(template.format(factor=1.0)))
    first = specialised("ode_template", importlib.import_module("edited_model").rates)
    assert specialised("ode_template", sys.modules["edited_model"].rates) is first
    copy = Path(first.__file__).read_text()
    assert "model_rates = _TOLSIM_RATES  # TOLSIM-RATES" in copy
    assert first.model_rates is sys.modules["edited_model"].rates
    # editing the model's source gives a new copy (numba's cache ignores dependencies)
    module_file.write_text(textwrap.dedent(template.format(factor=2.0)))
    edited = specialised("ode_template", importlib.reload(sys.modules["edited_model"]).rates)
    assert edited.__file__ != first.__file__
    # the previous copy stays until it is an hour old (another process may be using it)
    assert (tmp_path / "cache" / "kernels").exists()
    del sys.modules["edited_model"]


def test_a_copy_holds_its_own_function_not_one_of_the_same_name(tmp_path, monkeypatch):
    """Two functions named ``rates`` in one file (a script redefining it), an edited helper in
    another module, a changed global constant: each is another kernel. Before, the copy's
    hash saw only the file's text and the name, and the copy imported ``rates`` by name, so
    a model ran another model's kernel (numba's cache of the first, or the name's current
    binding)."""
    monkeypatch.setenv("TOLSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "twice_helpers.py").write_text(
        "from numba import njit\n\n@njit\ndef growth(b):\n    return 1.0 * b\n"
    )
    (tmp_path / "twice.py").write_text(
        textwrap.dedent(
            """
            from numba import njit
            import twice_helpers

            GAIN = 1.0

            @njit
            def rates(t, x, p, c, out):
                out[0] = 0.3 * x[0]

            slow = rates

            @njit
            def rates(t, x, p, c, out):
                out[0] = 0.6 * x[0]

            @njit
            def helped(t, x, p, c, out):
                out[0] = GAIN * twice_helpers.growth(p[0]) * x[0]
            """
        )
    )
    module = importlib.import_module("twice")
    slow = specialised("ode_template", module.slow)
    fast = specialised("ode_template", module.rates)
    assert slow.__file__ != fast.__file__
    assert slow.model_rates is module.slow and fast.model_rates is module.rates
    helped = Path(specialised("ode_template", module.helped).__file__).name
    module.GAIN = 2.0  # a global the function reads
    monkeypatch.setattr(tolsim.kernels.specialise, "_LOADED", {})  # as a new process
    assert Path(specialised("ode_template", module.helped).__file__).name != helped
    module.GAIN = 1.0
    (tmp_path / "twice_helpers.py").write_text(
        "from numba import njit\n\n@njit\ndef growth(b):\n    return 2.0 * b\n"
    )
    importlib.reload(sys.modules["twice_helpers"])
    monkeypatch.setattr(tolsim.kernels.specialise, "_LOADED", {})
    assert Path(specialised("ode_template", module.helped).__file__).name != helped
    del sys.modules["twice"], sys.modules["twice_helpers"]


def test_loading_a_copy_again_leaves_it_untouched(tmp_path, monkeypatch):
    """numba's disk cache is keyed on the source file's modification time: a later process
    that loads an existing copy must neither rewrite nor touch it, or numba compiles every
    kernel again (seconds per process)."""
    from tolsim.kernels import specialise

    monkeypatch.setenv("TOLSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(specialise, "_LOADED", {})  # this process has loaded no copy yet
    rates = tolsim.models.TwoState().rates
    path = Path(specialised("ode_template", rates).__file__)
    stamp = path.stat().st_mtime_ns - 10**9  # as if written a second ago
    os.utime(path, ns=(stamp, stamp))
    monkeypatch.setattr(specialise, "_LOADED", {})  # a new process
    again = specialised("ode_template", rates)
    assert Path(again.__file__) == path and path.stat().st_mtime_ns == stamp


def test_rewriting_a_copy_removes_only_older_versions_of_the_same_kernel(tmp_path, monkeypatch):
    """A new copy deletes the hour-old copies it replaces: the same template, rates and
    constants with older source. Copies with other constants (another stochastic method, a
    GPU variant) are other kernels and stay, whatever their age, with their numba caches."""
    from tolsim.kernels import specialise

    monkeypatch.setenv("TOLSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(specialise, "_LOADED", {})
    rates = tolsim.models.TwoState().rates
    ssa = Path(specialised("stochastic_template", rates, {"METHOD": "0"}).__file__)
    tau = Path(specialised("stochastic_template", rates, {"METHOD": "1"}).__file__)
    folder, name = ssa.parent, ssa.stem
    stem, variant, tag = name[: -(16 + 1 + 8)], name[-(16 + 1 + 8) : -17], name[-16:]
    assert tau.stem.startswith(stem) and not tau.stem.startswith(stem + variant)
    other_tag = ("0" if tag[0] != "0" else "1") + tag[1:]
    (folder / "__pycache__").mkdir(exist_ok=True)
    files = {
        "other method": tau,
        "other method's numba cache": folder / "__pycache__" / f"{tau.stem}.run-90.py311.nbi",
        "older source": folder / f"{stem}{variant}_{other_tag}.py",
        "older source's numba cache": folder
        / "__pycache__"
        / f"{stem}{variant}_{other_tag}.run-90.py311.nbi",
        "named before constants were": folder / f"{stem}{other_tag}.py",
        "a rate function named longer": folder / f"{stem}v2_{variant}_{tag}.py",
        "older source, just written": folder / f"{stem}{variant}_{'f' * 16}.py",
    }
    for label, path in files.items():
        path.touch()
        if label != "older source, just written":
            old = path.stat().st_mtime_ns - 2 * 3600 * 10**9
            os.utime(path, ns=(old, old))
    ssa.unlink()  # the next load writes the copy again
    monkeypatch.setattr(specialise, "_LOADED", {})
    assert Path(specialised("stochastic_template", rates, {"METHOD": "0"}).__file__) == ssa
    left = {label for label, path in files.items() if path.exists()}
    assert left == {
        "other method",
        "other method's numba cache",
        "a rate function named longer",
        "older source, just written",
    }


def test_cache_dir_falls_back_to_a_temporary_folder(tmp_path, monkeypatch):
    from tolsim.kernels.specialise import cache_dir

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("TOLSIM_CACHE_DIR", str(blocker))  # mkdir below a file fails
    path = cache_dir()
    assert path.is_dir() and "tolsim-kernels-" in path.name
    monkeypatch.setenv("TOLSIM_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own" / "kernels"


def test_the_cache_lists_and_clears_kernel_copies_with_their_numba_files(tmp_path, monkeypatch):
    from tolsim.kernels import specialise

    monkeypatch.setenv("TOLSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(specialise, "_LOADED", {})
    rates = tolsim.models.TwoState().rates
    ode = Path(specialised("ode_template", rates, {"SOLVER": "SOLVER_EXACT"}).__file__)
    ssa = Path(specialised("stochastic_template", rates, {"METHOD": "0"}).__file__)
    folder = ode.parent
    (folder / "__pycache__").mkdir(exist_ok=True)
    numba_file = folder / "__pycache__" / f"{ode.stem}.solve_batch-770.py311.1.nbc"
    numba_file.write_bytes(b"\0" * 1000)
    half_written = folder / "tmpab12.tmp"
    half_written.write_text("from")
    mine = folder / "notes.txt"
    mine.write_text("not tolsim's")

    def size_of(copy):  # the copy, and whatever its name leads in __pycache__
        return copy.stat().st_size + sum(
            p.stat().st_size for p in (folder / "__pycache__").glob(f"{copy.stem}.*")
        )

    copies = {copy["name"]: copy for copy in specialise.cached_copies()}
    assert set(copies) == {ode.stem, ssa.stem}
    assert copies[ode.stem]["template"] == "ode_template"
    assert copies[ssa.stem]["template"] == "stochastic_template"
    assert copies[ode.stem]["bytes"] == size_of(ode) >= ode.stat().st_size + 1000
    assert copies[ssa.stem]["bytes"] == size_of(ssa)

    removed, n_bytes = specialise.clear_cache()
    assert removed == 2
    assert n_bytes == copies[ode.stem]["bytes"] + copies[ssa.stem]["bytes"] + 4
    assert specialise.cached_copies() == []
    assert not ode.exists() and not numba_file.exists() and not half_written.exists()
    assert mine.read_text() == "not tolsim's"
    monkeypatch.setattr(specialise, "_LOADED", {})  # a new process writes the copy again
    assert Path(specialised("ode_template", rates, {"SOLVER": "SOLVER_EXACT"}).__file__) == ode


def test_an_interval_ending_at_a_derivative_jump_is_the_quadratic_of_its_left_end():
    """y = 1 + s + 2 s^2 on [0, 1], then a kink: dy stored at s = 1 is the next piece's
    (-10). With the jump marked the crossing is the quadratic's to rounding; unmarked, the
    cubic Hermite through the wrong slope finds another day."""
    from tolsim.kernels.events import first_upcrossing, hermite_value

    times = np.array([0.0, 1.0, 2.0])
    y = np.array([1.0, 4.0, 0.0])
    dy = np.array([1.0, -10.0, -4.0])
    level = 3.0
    exact = (-1.0 + np.sqrt(1.0 + 16.0)) / 4.0  # 2 s^2 + s - 2 = 0
    marked = np.array([False, True, False])
    assert first_upcrossing(times, y, dy, marked, 0.0, level) == pytest.approx(exact, abs=1e-14)
    assert hermite_value(times, y, dy, marked, 0.5) == pytest.approx(2.0, abs=1e-15)
    unmarked = np.zeros(3, dtype=np.bool_)
    assert abs(first_upcrossing(times, y, dy, unmarked, 0.0, level) - exact) > 0.05
