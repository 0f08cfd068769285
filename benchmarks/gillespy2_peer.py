"""GillesPy2 peer for the stochastic benchmark: the two-state S/T model on GillesPy2's C++ solvers.

Importable helpers (no tolsim import) so the stochastic benchmark can time tolsim's SSA and
tau-leaping against GillesPy2's ``SSACSolver``, ``TauLeapingCSolver`` and ``TauHybridCSolver``
on the same model in the same run.

Model (rates per day, ``N = S + T``, crowding ``g = max(0, 1 - N/K)``), one phase of constant
drug exposure ``E_tam``, ``E_inh``:

- ``division_S``    S -> 2S   ``lambda_S (1 - eps_S E_tam) g S``
- ``death_S``       S -> 0    ``(delta_S + kappa_S E_tam) S``
- ``switch_S_to_T`` S -> T    ``(mu_0 + mu_E E_tam) S``
- ``division_T``    T -> 2T   ``lambda_T (1 - eps_T E_tam) (1 - iota E_inh) g T``
- ``death_T``       T -> 0    ``(delta_T + kappa_T E_inh) T``
- ``revert_T_to_S`` T -> S    ``(nu_0 + nu_off (1 - E_tam)) T``

All propensities are custom (string) propensity functions, so crowding is exact. The guard on
``g`` is written ``(g + fabs(g)) / 2``: GillesPy2's expression translator only knows the names
of Python's ``math`` module (plus ``abs`` and ``round``), not ``max``.

How the solvers are used
------------------------
- **Compile once per solver.** A GillesPy2 C solver compiles the model into an executable when
  the solver object is constructed (``SSACSolver`` ~4 s, ``TauLeapingCSolver`` ~4-7 s,
  ``TauHybridCSolver`` ~8-15 s here). Each solver is constructed once with ``variable=True``:
  every parameter (``E_tam``, ``E_inh``, ``K``, ...) and the initial populations are then
  command-line arguments of the compiled executable, so one executable serves every phase,
  path and parameter set (see ``Peer``; ``run()`` caches one ``Peer`` per solver, mode and
  flags). The construction time is reported as ``compile_s`` and excluded from the timings.
- **Optimised build.** GillesPy2 1.8.3 compiles with ``-std=c++14`` only, i.e. ``-O0``, and has
  no option for compiler flags. The timed peers are built with ``PEER_CXXFLAGS``
  (``-O3 -march=native``, the analogue of numba's LLVM ``-O3`` for the host CPU) by putting
  ``g++``/``gcc`` wrapper scripts first on PATH during the build (``cxxflags=None`` gives
  GillesPy2's own build). This makes ``SSACSolver`` ~3-4x faster here; the demo reports both.
- **Phases are chained per path by re-launching with the previous final state.** Phase 1 runs
  all ``paths`` trajectories in one ``solver.run(number_of_trajectories=paths)`` call (they
  share the initial state). Each later phase runs one call per path with
  ``number_of_trajectories=1`` and ``variables={"S": S_prev, "T": T_prev, "E_tam": ...}``.
  Every ``solver.run()`` starts a new process of the compiled executable and decodes its text
  output, so a chained run costs ``1 + paths * (n_phases - 1)`` process launches; the cost of
  one (near-empty) launch is measured and reported as ``launch_overhead_s``. The C SSA and
  tau-leaping propensities cannot depend on time (no ``t`` in their generated C++), so the
  drug switch cannot be folded into one call for those solvers.
- **Why not ``resume=``.** The C solvers read the resumed state as ``resume[species][-1]`` on
  the ``Results``; for a multi-trajectory ``Results`` that is trajectory 0's final state (with
  only a logged warning), so every resumed trajectory would restart from the same state. It
  also only sets the initial state when the solver has ``variable=True`` (otherwise the model's
  initial values are used while the time axis is still shifted), truncates the resume time
  with ``int()``, and wants ``t`` as an absolute end time. With one trajectory per call it is
  equivalent to passing the final state through ``variables``, which is what we do.
- **Output.** Only the phase end points are written (timespan ``[0, days]`` per phase); every
  output row is text streamed through a pipe and decoded in Python.
- **Seeds.** Every ``solver.run()`` gets its own explicit seed from
  ``numpy.random.SeedSequence(seed)`` (the executables take a positive C ``int``; within one call
  the trajectories follow each other on one ``mt19937_64`` stream). Without a seed the
  executables seed themselves with ``time(NULL) % pid``: calls in the same second of the same
  process would get identical streams.

Pitfalls found (gillespy2 1.8.3)
--------------------------------
- ``TauLeapingCSolver`` keeps the state in 32-bit ``int``. In ``tau_1e9`` (K = 1e10) T passes
  2**31 - 1 ~ 2.1e9 near day 65 and the executable then never finishes (checked: a 70-day run
  was still going after a 15 s timeout while a 60-day run takes ~10 ms). The scenario is
  therefore infeasible for it; ``scenario_tau_1e9`` reports that instead of hanging, and the
  demo also runs the 10x-smaller variant (S0 = 1e8, K = 1e9) where it works. ``SSACSolver``
  uses ``unsigned int`` (limit ~4.3e9).
- ``TauLeapingCSolver``'s step selection (Cao–Gillespie–Petzold) sums only reactions that
  *consume* a species, so the growth reactions S -> 2S, T -> 2T do not limit tau: with
  ``tau_tol=0.03`` the step is ~0.4 d here and the mean is biased like explicit Euler (about
  -6% on S after 10 d of growth at 0.17/d; see ``check_linear``). Compare at equal accuracy.
- ``TauHybridCSolver`` keeps the state in ``double`` (no overflow). With the default ``dynamic``
  species mode both species are large enough to be integrated as ODEs here, so it is a
  deterministic ODE solve (identical paths, no variance); ``species_mode="discrete"`` makes it a
  stochastic tau-leaping method. It writes doubles with C++'s default 6 significant digits, so
  its final counts (and the state passed on to the next phase) are rounded to ~1e-6 relative.
- The executables run in their own session (``start_new_session=True``): killing the Python
  process (e.g. an outer ``timeout``) leaves a hung executable running. Use GillesPy2's own
  ``timeout=`` option (the scenarios pass ``timeout=120``), which interrupts it cleanly.
- In a virtualenv GillesPy2 runs SCons as ``<resolved sys.executable> -m SCons``, i.e. the base
  interpreter, which lacks SCons: the environment's ``bin`` is put on PATH below so the
  ``scons`` script there is found.

Run ``python benchmarks/gillespy2_peer.py`` for the correctness check (z-scores against the
matrix-exponential mean of the linear model) and the scenario timings; ``--quick`` for fewer
paths, ``--json PATH`` to also write the figures.
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy is imported (as in the other benchmarks).
for _name in (
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ.setdefault(_name, "1")

import shlex  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

# GillesPy2 builds with ``scons`` from PATH, else ``<resolved sys.executable> -m SCons``; in a
# virtualenv the resolved executable is the base interpreter, which lacks SCons. Put the
# environment's bin directory (where pip put ``scons``) on PATH when it is not there.
if shutil.which("scons") is None:
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import gillespy2  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402
from scipy.linalg import expm  # noqa: E402

DEFAULT_PARAMS: dict[str, float] = {
    "lambda_S": 0.19,
    "lambda_T": 0.19,
    "eps_S": 0.8,
    "eps_T": 0.25,
    "delta_S": 0.02,
    "delta_T": 0.02,
    "kappa_S": 0.05,
    "kappa_T": 0.3,
    "mu_0": 1e-4,
    "mu_E": 1e-4,
    "nu_0": 1e-3,
    "nu_off": 0.05,
    "iota": 0.8,
    "K": 1e7,
}

# Tamoxifen 1 µM, EC50 0.1 µM, Hill coefficient 1.
E_TAM_1UM = 1.0 / (1.0 + 0.1 / 1.0)

SOLVERS = {
    "ssa": "SSACSolver",
    "tau": "TauLeapingCSolver",
    "hybrid": "TauHybridCSolver",
}

# Largest population each solver's C++ state type holds.
STATE_LIMIT = {"ssa": 2**32 - 1, "tau": 2**31 - 1, "hybrid": float("inf")}

# Compiler flags for the timed peers: optimised for this CPU, like numba's LLVM -O3 for the host
# (GillesPy2's own build is unoptimised, -O0; pass cxxflags=None for it).
PEER_CXXFLAGS = "-O3 -march=native"

# C-int range accepted by the executables' --seed (-1 means "seed from the clock").
_SEED_MAX = 2**31 - 1

_G = "((1 - (S + T) / K) + fabs(1 - (S + T) / K)) / 2"
PROPENSITIES = {
    "division_S": f"lambda_S * (1 - eps_S * E_tam) * {_G} * S",
    "death_S": "(delta_S + kappa_S * E_tam) * S",
    "switch_S_to_T": "(mu_0 + mu_E * E_tam) * S",
    "division_T": f"lambda_T * (1 - eps_T * E_tam) * (1 - iota * E_inh) * {_G} * T",
    "death_T": "(delta_T + kappa_T * E_inh) * T",
    "revert_T_to_S": "(nu_0 + nu_off * (1 - E_tam)) * T",
}
STOICHIOMETRY = {
    # name: (reactants, products)
    "division_S": ({"S": 1}, {"S": 2}),
    "death_S": ({"S": 1}, {}),
    "switch_S_to_T": ({"S": 1}, {"T": 1}),
    "division_T": ({"T": 1}, {"T": 2}),
    "death_T": ({"T": 1}, {}),
    "revert_T_to_S": ({"T": 1}, {"S": 1}),
}

TAMOXIFEN_OFF = (0.0, 0.0)


def gillespy2_version() -> str:
    return gillespy2.__version__


def build_model(
    params: dict,
    S0: int,
    T0: int,
    e_tam: float,
    e_inh: float,
    t_end_days: float,
    n_out: int,
    species_mode: str = "discrete",
) -> gillespy2.Model:
    """The two-state model for one phase of constant exposure, as a ``gillespy2.Model``.

    ``params`` overrides ``DEFAULT_PARAMS``; ``E_tam`` and ``E_inh`` are model parameters too.
    Timespan ``linspace(0, t_end_days, n_out)``. ``species_mode`` is GillesPy2's species mode:
    ``"discrete"`` (SSA, tau-leaping), or ``"dynamic"``/``"continuous"`` for
    ``TauHybridCSolver``.
    """
    p = {**DEFAULT_PARAMS, **params}
    model = gillespy2.Model(name="two_state")
    model.add_parameter(
        [gillespy2.Parameter(name=k, expression=repr(float(v))) for k, v in p.items()]
        + [
            gillespy2.Parameter(name="E_tam", expression=repr(float(e_tam))),
            gillespy2.Parameter(name="E_inh", expression=repr(float(e_inh))),
        ]
    )
    S = gillespy2.Species(name="S", initial_value=int(S0), mode=species_mode)
    T = gillespy2.Species(name="T", initial_value=int(T0), mode=species_mode)
    model.add_species([S, T])
    species = {"S": S, "T": T}
    for name, (reactants, products) in STOICHIOMETRY.items():
        model.add_reaction(
            gillespy2.Reaction(
                name=name,
                reactants={species[k]: v for k, v in reactants.items()},
                products={species[k]: v for k, v in products.items()},
                propensity_function=PROPENSITIES[name],
            )
        )
    model.timespan(gillespy2.TimeSpan(np.linspace(0.0, float(t_end_days), int(n_out))))
    return model


@contextmanager
def _compiler_flags(cxxflags: str | None):
    """Append ``cxxflags`` to every ``g++``/``gcc`` call GillesPy2's SCons build makes.

    GillesPy2 1.8.3 compiles with ``CXXFLAGS=['-std=c++14']`` only, i.e. unoptimised (-O0), and
    has no option for flags; SCons runs the compilers found on PATH, so wrapper scripts in a
    temporary directory put first on PATH add the flags for the duration of the build.
    """
    if not cxxflags:
        yield
        return
    old_path = os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="gillespy2_peer_cxx_") as tmp:
        for name in ("g++", "gcc"):
            real = shutil.which(name)
            if real is None:
                continue
            wrapper = os.path.join(tmp, name)
            with open(wrapper, "w") as fh:
                fh.write(f'#!/bin/sh\nexec {shlex.quote(real)} "$@" {cxxflags}\n')
            os.chmod(wrapper, 0o755)
        os.environ["PATH"] = tmp + os.pathsep + old_path
        try:
            yield
        finally:
            os.environ["PATH"] = old_path


class Peer:
    """One compiled GillesPy2 C solver of the model, reused for every phase, path and parameter.

    ``solver``: "ssa", "tau" or "hybrid". ``species_mode`` defaults to "discrete" (for
    "hybrid", "dynamic" is GillesPy2's own default; the mode is compiled in). ``cxxflags``:
    extra compiler flags (default ``PEER_CXXFLAGS``; None: GillesPy2's own -O0 build). Options of
    ``solver.run()`` (e.g. ``tau_tol=0.03``, ``timeout=60`` in whole seconds) are given per
    call to ``run``; they are command-line arguments, so they need no recompiling.
    """

    def __init__(
        self, solver: str, species_mode: str | None = None, cxxflags: str | None = PEER_CXXFLAGS
    ):
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
        self.solver_name = solver
        self.species_mode = species_mode or "discrete"
        self.cxxflags = cxxflags
        model = build_model({}, 1, 0, 0.0, 0.0, 1.0, 2, species_mode=self.species_mode)
        cls = getattr(gillespy2, SOLVERS[solver])
        t0 = time.perf_counter()
        # variable=True: parameters and initial populations are command-line arguments of the
        # compiled executable, so they change between calls without recompiling.
        with _compiler_flags(cxxflags):
            self.solver = cls(model=model, variable=True)
        self.compile_s = time.perf_counter() - t0

    @property
    def label(self) -> str:
        name = SOLVERS[self.solver_name]
        if self.solver_name == "hybrid":
            name += f"({self.species_mode})"
        return f"{name} {self.cxxflags or '-O0'}"

    def _run_once(self, params, days, e_tam, e_inh, S0, T0, n, seed, options) -> np.ndarray:
        self.solver.model.timespan(gillespy2.TimeSpan(np.array([0.0, float(days)])))
        variables = {k: float(v) for k, v in params.items()}
        variables.update(S=float(S0), T=float(T0), E_tam=float(e_tam), E_inh=float(e_inh))
        res = self.solver.run(
            number_of_trajectories=int(n), seed=int(seed), variables=variables, **options
        )
        if len(res) != n or any(traj["time"][-1] < days * (1 - 1e-12) for traj in res):
            raise RuntimeError(
                f"{self.label} stopped before t = {days} (timeout or failure; rc {self.solver.rc})"
            )
        return np.array([[traj["S"][-1], traj["T"][-1]] for traj in res], dtype=np.float64)

    def run(self, params, phases, S0, T0, paths, seed, **options) -> tuple[np.ndarray, float]:
        """Final (S, T) of ``paths`` trajectories chained through ``phases``, and wall seconds.

        ``phases``: list of ``(days, e_tam, e_inh)``. Phase 1 is one call with ``paths``
        trajectories; each later phase is one call per path from that path's final state.
        ``options`` go to every ``solver.run()`` call.
        """
        p = {**DEFAULT_PARAMS, **(params or {})}
        phases = list(phases)
        n_calls = 1 + paths * (len(phases) - 1)
        seeds = np.random.SeedSequence(seed).generate_state(n_calls, dtype=np.uint32)
        seeds = seeds % (_SEED_MAX - 1) + 1
        t0 = time.perf_counter()
        days, e_tam, e_inh = phases[0]
        state = self._run_once(p, days, e_tam, e_inh, S0, T0, paths, seeds[0], options)
        k = 1
        for days, e_tam, e_inh in phases[1:]:
            for i in range(paths):
                S, T = state[i]
                state[i] = self._run_once(p, days, e_tam, e_inh, S, T, 1, seeds[k], options)[0]
                k += 1
        return state, time.perf_counter() - t0

    def launch_overhead(self, repeats: int = 20) -> float:
        """Median seconds of one ``solver.run()`` simulating almost nothing (1 cell, 1e-9 d)."""
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            self._run_once(DEFAULT_PARAMS, 1e-9, 0.0, 0.0, 1, 0, 1, r + 1, {})
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


_PEERS: dict[tuple, Peer] = {}


def get_peer(
    solver: str, species_mode: str | None = None, cxxflags: str | None = PEER_CXXFLAGS
) -> Peer:
    """A cached ``Peer``: compiled once per process for each solver, species mode and flags."""
    key = (solver, species_mode or "discrete", cxxflags)
    if key not in _PEERS:
        _PEERS[key] = Peer(solver, species_mode, cxxflags)
    return _PEERS[key]


def run(
    solver: str,
    params,
    phases,
    S0,
    T0,
    paths,
    seed,
    *,
    species_mode: str | None = None,
    cxxflags: str | None = PEER_CXXFLAGS,
    **options,
) -> tuple[np.ndarray, float, float]:
    """Run ``paths`` trajectories of ``solver`` ("ssa", "tau", "hybrid") through ``phases``.

    ``params`` overrides ``DEFAULT_PARAMS``; ``phases`` is a list of ``(days, e_tam, e_inh)``.
    Returns ``(final, wall_s, compile_s)``: ``final`` is a ``(paths, 2)`` array of S, T at the
    end; ``wall_s`` the wall-clock seconds of the simulation, the solver already compiled;
    ``compile_s`` what building the (cached, reused) solver cost when it was first built.
    ``options`` go to every ``solver.run()`` call (e.g. ``tau_tol``, ``timeout``);
    ``species_mode`` and ``cxxflags`` as for ``Peer``.
    """
    peer = get_peer(solver, species_mode, cxxflags)
    final, wall = peer.run(params, phases, S0, T0, paths, seed, **options)
    return final, wall, peer.compile_s


# --------------------------------------------------------------------------------------------
# deterministic references, written from the model equations


def _rates(p, e_tam, e_inh):
    bS = p["lambda_S"] * (1 - p["eps_S"] * e_tam)
    dS = p["delta_S"] + p["kappa_S"] * e_tam
    mu = p["mu_0"] + p["mu_E"] * e_tam
    bT = p["lambda_T"] * (1 - p["eps_T"] * e_tam) * (1 - p["iota"] * e_inh)
    dT = p["delta_T"] + p["kappa_T"] * e_inh
    nu = p["nu_0"] + p["nu_off"] * (1 - e_tam)
    return bS, dS, mu, bT, dT, nu


def linear_mean(params, phases, S0, T0) -> np.ndarray:
    """Exact mean (S, T) of the linear model (no crowding) by matrix exponentials per phase."""
    p = {**DEFAULT_PARAMS, **params}
    x = np.array([S0, T0], dtype=np.float64)
    for days, e_tam, e_inh in phases:
        bS, dS, mu, bT, dT, nu = _rates(p, e_tam, e_inh)
        A = np.array([[bS - dS - mu, nu], [mu, bT - dT - nu]])
        x = expm(A * days) @ x
    return x


def ode_mean(params, phases, S0, T0) -> dict:
    """ODE mean through the phases, with the integral of the total propensity along it.

    Returns ``events`` (the integral: the expected number of SSA events per path; exact for the
    linear model, and with crowding it only neglects the variance term of the quadratic
    crowding propensity, relative size ~ Var(N) / (N K)), ``final`` (S, T) and ``max_count``
    (the largest S or T along the way, sampled daily). ``solve_ivp`` DOP853, rtol 1e-10.
    """
    p = {**DEFAULT_PARAMS, **params}
    y = np.array([S0, T0, 0.0], dtype=np.float64)
    max_count = max(S0, T0)
    for days, e_tam, e_inh in phases:
        bS, dS, mu, bT, dT, nu = _rates(p, e_tam, e_inh)

        def f(_t, y, bS=bS, dS=dS, mu=mu, bT=bT, dT=dT, nu=nu):
            S, T = y[0], y[1]
            g = max(0.0, 1.0 - (S + T) / p["K"])
            a = (bS * g * S, dS * S, mu * S, bT * g * T, dT * T, nu * T)
            return [a[0] - a[1] - a[2] + a[5], a[3] - a[4] + a[2] - a[5], sum(a)]

        t_eval = np.linspace(0.0, days, int(np.ceil(days)) + 1)
        sol = solve_ivp(f, (0.0, days), y, method="DOP853", rtol=1e-10, atol=1e-6, t_eval=t_eval)
        max_count = max(max_count, float(sol.y[:2].max()))
        y = sol.y[:, -1]
    return {"events": float(y[2]), "final": y[:2].copy(), "max_count": max_count}


# --------------------------------------------------------------------------------------------
# correctness check and scenarios

LINEAR_CASE = {
    "params": {"K": 1e30},  # N / K < 1e-20: g == 1.0 exactly in double precision
    "phases": [(10.0, E_TAM_1UM, 0.0), (10.0, 0.0, 0.5)],
    "S0": 1000,
    "T0": 100,
}


def check_linear(peer: Peer, paths: int = 300, seed: int = 1, **options) -> dict:
    """Mean final S, T of a short two-phase linear case against the matrix-exponential mean.

    Tamoxifen 10 d, then 10 d off with ``E_inh = 0.5`` (exercises every propensity term and the
    phase chaining), from S0 = 1000, T0 = 100. z = (mean - exact) / (sd / sqrt(paths)).
    """
    c = LINEAR_CASE
    final, wall = peer.run(c["params"], c["phases"], c["S0"], c["T0"], paths, seed, **options)
    exact = linear_mean(c["params"], c["phases"], c["S0"], c["T0"])
    mean = final.mean(axis=0)
    se = final.std(axis=0, ddof=1) / np.sqrt(paths)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (mean - exact) / se
    return {
        "solver": peer.label,
        "gillespy2": gillespy2_version(),
        "options": options,
        "paths": paths,
        "mean_S": float(mean[0]),
        "mean_T": float(mean[1]),
        "sd_S": float(final[:, 0].std(ddof=1)),
        "sd_T": float(final[:, 1].std(ddof=1)),
        "exact_S": float(exact[0]),
        "exact_T": float(exact[1]),
        "rel_err_S": float(mean[0] / exact[0] - 1),
        "rel_err_T": float(mean[1] / exact[1] - 1),
        "z_S": float(z[0]),
        "z_T": float(z[1]),
        "wall_s": wall,
        "compile_s": peer.compile_s,
    }


def _timed(peer: Peer, params, phases, S0, T0, paths, seed, repeats, **options) -> dict:
    """Median wall time of ``repeats`` runs (different seeds), per-trajectory figures, means."""
    walls, finals = [], []
    for r in range(repeats):
        final, wall = peer.run(params, phases, S0, T0, paths, seed + r, **options)
        walls.append(wall)
        finals.append(final)
    wall = statistics.median(walls)
    finals = np.concatenate(finals)
    launches = 1 + paths * (len(phases) - 1)
    overhead = peer.launch_overhead()
    return {
        "solver": peer.label,
        "gillespy2": gillespy2_version(),
        "options": options,
        "paths": paths,
        "repeats": repeats,
        "wall_s_median": wall,
        "wall_s_all": walls,
        "s_per_trajectory": wall / paths,
        "trajectories_per_s": paths / wall,
        "compile_s": peer.compile_s,
        "process_launches_per_run": launches,
        "launch_overhead_s": overhead,
        # what is left after taking off the process launches (an estimate)
        "s_per_trajectory_minus_launches": max(0.0, wall - launches * overhead) / paths,
        "mean_final_S": float(finals[:, 0].mean()),
        "mean_final_T": float(finals[:, 1].mean()),
        "sd_final_S": float(finals[:, 0].std(ddof=1)),
        "sd_final_T": float(finals[:, 1].std(ddof=1)),
        "n_final": len(finals),
    }


def _z_vs(out: dict, ref_S: float, ref_T: float) -> None:
    """Relative error and z-score of the mean final S, T (repeats pooled) against a reference."""
    n = out["n_final"]
    for sp, ref in (("S", ref_S), ("T", ref_T)):
        mean, sd = out[f"mean_final_{sp}"], out[f"sd_final_{sp}"]
        out[f"rel_err_{sp}"] = mean / ref - 1
        out[f"z_{sp}"] = (mean - ref) / (sd / np.sqrt(n)) if sd > 0 else float("nan")


def scenario_ssa_1e4(
    paths: int = 50, repeats: int = 3, seed: int = 2026, cxxflags: str | None = PEER_CXXFLAGS
) -> dict:
    """SSA from S0 = 1e4, T0 = 100 (K = 1e7): 30 d tamoxifen 1 µM, then 30 d off.

    ~2.0e6 events per path: ~0.1 s per trajectory optimised (50 paths x 3 repeats ~ 15-25 s),
    ~0.4-0.6 s with GillesPy2's unoptimised build (use ~20 paths there).
    ``events_per_s_ode_estimate`` uses the ODE estimate of the events per path; the benchmark
    may instead use the mean event count of its own exact SSA.
    """
    params = dict(DEFAULT_PARAMS)
    phases = [(30.0, E_TAM_1UM, 0.0), (30.0, *TAMOXIFEN_OFF)]
    S0, T0 = 10_000, 100
    peer = get_peer("ssa", None, cxxflags)
    out = {"scenario": "ssa_1e4", "S0": S0, "T0": T0, "K": params["K"], "phases": phases}
    out.update(_timed(peer, params, phases, S0, T0, paths, seed, repeats))
    ode = ode_mean(params, phases, S0, T0)
    out["expected_events_per_path_ode"] = ode["events"]
    out["events_per_s_ode_estimate"] = ode["events"] * paths / out["wall_s_median"]
    out["ode_final_S"], out["ode_final_T"] = (float(v) for v in ode["final"])
    _z_vs(out, out["ode_final_S"], out["ode_final_T"])
    return out


def scenario_tau_1e9(
    solver: str = "tau",
    species_mode: str | None = None,
    paths: int = 100,
    repeats: int = 3,
    seed: int = 2026,
    tau_tol: float = 0.03,
    S0: int = 10**9,
    T0: int = 100,
    K: float = 1e10,
    name: str = "tau_1e9",
    cxxflags: str | None = PEER_CXXFLAGS,
) -> dict:
    """Tau-leaping ("tau") or ``TauHybridCSolver`` ("hybrid") from S0 = 1e9, T0 = 100, K = 1e10:
    120 d tamoxifen 1 µM, then 240 d off. ``tau_tol`` is GillesPy2's default.

    Returns ``feasible: False`` (and runs nothing) when the ODE mean passes the solver's state
    limit (``TauLeapingCSolver``: 2**31 - 1; it then hangs). ``S0``, ``K``, ``name`` allow the
    10x-smaller variant (``tau_1e8``: S0 = 1e8, K = 1e9) that fits. ``rel_err_*``: mean final
    against the ODE mean (relative fluctuations are ~1e-4 here, so the ODE is the mean).
    """
    params = {**DEFAULT_PARAMS, "K": float(K)}
    phases = [(120.0, E_TAM_1UM, 0.0), (240.0, *TAMOXIFEN_OFF)]
    ode = ode_mean(params, phases, S0, T0)
    peer = get_peer(solver, species_mode, cxxflags)
    out = {
        "scenario": name,
        "S0": S0,
        "T0": T0,
        "K": params["K"],
        "phases": phases,
        "solver": peer.label,
        "gillespy2": gillespy2_version(),
        "ode_final_S": float(ode["final"][0]),
        "ode_final_T": float(ode["final"][1]),
        "ode_max_count": ode["max_count"],
    }
    if ode["max_count"] >= STATE_LIMIT[solver]:
        out["feasible"] = False
        out["reason"] = (
            f"ODE mean reaches {ode['max_count']:.3g} cells, above {peer.label}'s state limit "
            f"{STATE_LIMIT[solver]} (32-bit int state; the executable hangs, not simulated)"
        )
        return out
    out["feasible"] = True
    out.update(
        _timed(peer, params, phases, S0, T0, paths, seed, repeats, tau_tol=tau_tol, timeout=120)
    )
    _z_vs(out, out["ode_final_S"], out["ode_final_T"])
    return out


# --------------------------------------------------------------------------------------------
# demo


def _print_timing(r: dict) -> None:
    if not r.get("feasible", True):
        print(f"| {r['scenario']} | {r['solver']} | infeasible: {r['reason']} |")
        return
    extra = (
        f"mean vs ODE: S {r['rel_err_S']:+.1e} (z {r['z_S']:+.1f}), "
        f"T {r['rel_err_T']:+.1e} (z {r['z_T']:+.1f})"
    )
    if "expected_events_per_path_ode" in r:
        extra += (
            f"; ~{r['expected_events_per_path_ode']:.3g} events/path (ODE), "
            f"~{r['events_per_s_ode_estimate']:.3g} events/s"
        )
    print(
        f"| {r['scenario']} | {r['solver']} | {r['paths']} x {r['repeats']} | "
        f"{r['s_per_trajectory'] * 1e3:.2f} ms | {r['trajectories_per_s']:.3g} | "
        f"{r['launch_overhead_s'] * 1e3:.1f} ms x {r['process_launches_per_run']} | "
        f"{r['compile_s']:.1f} s | {extra} |"
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer paths and repeats")
    ap.add_argument("--json", type=str, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    logging.getLogger("GillesPy2").setLevel(logging.ERROR)
    q = args.quick
    out: dict = {
        "gillespy2": gillespy2_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    print(f"gillespy2 {gillespy2_version()}, {os.cpu_count()} CPUs")

    print(
        "\nLinear check (K = inf): 10 d tamoxifen, then 10 d E_inh = 0.5, S0 = 1000, T0 = 100;"
        " mean final against the matrix-exponential mean\n"
    )
    print("| solver | paths | mean S (exact) | z_S | mean T (exact) | z_T | rel err S, T |")
    print("|---|---|---|---|---|---|---|")
    checks = []
    for solver, mode, kw in (
        ("ssa", None, {}),
        ("tau", None, {"tau_tol": 0.03}),
        ("tau", None, {"tau_tol": 0.003}),
        ("hybrid", "discrete", {"tau_tol": 0.03}),
        ("hybrid", "dynamic", {"tau_tol": 0.03}),
    ):
        peer = get_peer(solver, mode, PEER_CXXFLAGS)
        r = check_linear(peer, paths=100 if q else 300, **kw)
        checks.append(r)
        label = f"{r['solver']} {kw}" if kw else r["solver"]
        print(
            f"| {label} | {r['paths']} | {r['mean_S']:.1f} ({r['exact_S']:.1f}) | "
            f"{r['z_S']:+.2f} | {r['mean_T']:.2f} ({r['exact_T']:.2f}) | {r['z_T']:+.2f} | "
            f"{r['rel_err_S']:+.2%}, {r['rel_err_T']:+.2%} |"
        )
    out["linear_check"] = checks

    print("\nScenarios (wall time per trajectory = median of repeats / paths, compiled solver)\n")
    print(
        "| scenario | solver | paths x repeats | s/trajectory | trajectories/s | "
        "launch overhead x launches | compile | notes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    scen = []
    reps = 2 if q else 3
    for flags, paths in ((PEER_CXXFLAGS, 10 if q else 50), (None, 3 if q else 20)):
        r = scenario_ssa_1e4(paths=paths, repeats=reps, cxxflags=flags)
        scen.append(r)
        _print_timing(r)
    n = 20 if q else 100
    runs = [
        ("tau_1e9", 10**9, 1e10, "tau", None, PEER_CXXFLAGS),
        ("tau_1e9", 10**9, 1e10, "hybrid", "discrete", PEER_CXXFLAGS),
        ("tau_1e9", 10**9, 1e10, "hybrid", "dynamic", PEER_CXXFLAGS),
        ("tau_1e8", 10**8, 1e9, "tau", None, PEER_CXXFLAGS),
        ("tau_1e8", 10**8, 1e9, "hybrid", "discrete", PEER_CXXFLAGS),
        ("tau_1e8", 10**8, 1e9, "tau", None, None),
        ("tau_1e8", 10**8, 1e9, "hybrid", "discrete", None),
    ]
    for name, S0, K, solver, mode, flags in runs:
        r = scenario_tau_1e9(
            solver, mode, paths=n, repeats=reps, S0=S0, K=K, name=name, cxxflags=flags
        )
        scen.append(r)
        _print_timing(r)
    out["loadavg_end"] = os.getloadavg()
    out["scenarios"] = scen
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2, default=float)
    return out


if __name__ == "__main__":
    main()
