"""The CUDA kernels shipped compiled (:mod:`tolsim.cuda_prebuilt`): that they are those of the
current sources, and when a launch may use one.

Unpickling a numba-cuda kernel needs numba-cuda's real CUDA target, not the simulator the
rest of the suite runs under: those checks run in a fresh process without it (no GPU
needed). ``TOLSIM_TEST_CUDA=device`` adds the check that a prebuilt kernel gives the
compiled kernel's results bit for bit on the GPU.
"""

import json
import lzma
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tolsim
from tolsim import cuda, cuda_prebuilt

MANIFEST = json.loads((cuda_prebuilt.PREBUILT_DIR / cuda_prebuilt.MANIFEST).read_text())
REBUILD = "rebuild them: python -m tolsim.cuda_prebuilt (needs the [cuda] extra, no GPU)"


def _variant_entry(model, n_channels, method, trajectories):
    constants = cuda.variant_constants(
        model, n_channels, cuda.MAX_REGISTERS, method=method, trajectories=trajectories
    )
    source = cuda_prebuilt.source_key(model.rates, constants)
    argtypes = cuda_prebuilt.launch_argument_types(model, n_channels)
    return cuda_prebuilt.entry_key(source, argtypes), source


def test_every_shipped_kernel_is_compiled_from_the_current_sources():
    """Editing the CUDA template, a kernel module it calls or a built-in model's rates makes
    the shipped kernels stale: they would then never be used (not wrong, only slow to start)."""
    kernels = MANIFEST["kernels"]
    expected = {}
    for name, model, n_channels, method, trajectories in cuda_prebuilt.variants():
        key, source = _variant_entry(model, n_channels, method, trajectories)
        expected[key] = (name, n_channels, method, trajectories)
        assert key in kernels, f"no prebuilt kernel for {expected[key]}: {REBUILD}"
        assert kernels[key]["source_sha256"] == source
    assert set(kernels) == set(expected), f"kernels of variants no longer built: {REBUILD}"
    files = {path.name for path in cuda_prebuilt.PREBUILT_DIR.glob("*.pkl.xz")}
    assert files == {entry["file"] for entry in kernels.values()}
    for entry in kernels.values():
        data = (cuda_prebuilt.PREBUILT_DIR / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"]
        raw = lzma.decompress(data)  # plain data: no Python code (its bytecode is per version)
        assert not [marker for marker in cuda_prebuilt._FOREIGN if marker in raw]
        assert entry["max_registers"] == cuda.MAX_REGISTERS
        assert [tuple(a) for a in entry["architectures"]] == list(cuda_prebuilt.ARCHITECTURES)


def test_the_kernels_were_built_with_versions_the_cuda_extra_allows():
    import tomllib

    from packaging.requirements import Requirement

    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for extra in ("cuda", "cuda12"):
        (numba_cuda,) = [Requirement(r) for r in extras[extra] if r.startswith("numba-cuda")]
        assert MANIFEST["versions"]["numba-cuda"] in numba_cuda.specifier, extra


def test_the_source_key_follows_the_constants_and_the_rates():
    two, three = tolsim.models.TwoState(), tolsim.models.ThreeState()
    constants = cuda.variant_constants(two, 1, 128, method="dopri5", trajectories=False)
    key = cuda_prebuilt.source_key(two.rates, constants)
    assert key == cuda_prebuilt.source_key(two.rates, dict(reversed(constants.items())))
    assert key != cuda_prebuilt.source_key(two.rates, constants | {"MAX_REGISTERS": "96"})
    assert key != cuda_prebuilt.source_key(three.rates, constants)
    # every crowding law of a model shares its rate function, so its kernels
    assert tolsim.models.TwoState("gompertz").rates is two.rates


def test_the_source_key_reads_the_kernel_modules_the_template_imports(tmp_path, monkeypatch):
    """Only those: a fix to the stochastic kernels, which the ODE kernel never calls, made
    every shipped kernel stale (a 9-minute rebuild). Any import form counts, through other
    modules too."""
    from tolsim.kernels import specialise

    assert cuda_prebuilt.template_modules() == ("cuda_template.py", "events.py", "tableau.py")
    tau = cuda_prebuilt.template_modules("cuda_stochastic_template")
    assert {"stochastic_template.py", "cuda_template.py", "elementary.py"} <= set(tau)
    assert "placeholder.py" not in tau  # (the rate function is fingerprinted on its own)
    for line in (
        "from tolsim.kernels import summary as s, linalg",
        "import tolsim.kernels.summary",
        "from tolsim.kernels.summary import x",
    ):
        (tmp_path / "t.py").write_text(f"{line}\n")
        (tmp_path / "summary.py").write_text("from tolsim.kernels import random\n")
        for name in ("linalg", "random"):
            (tmp_path / f"{name}.py").write_text("")
        monkeypatch.setattr(specialise, "_KERNEL_DIR", tmp_path)
        found = set(cuda_prebuilt.template_modules("t"))
        assert {"summary.py", "random.py"} <= found, line


def test_the_launch_types_of_solve_are_those_the_kernels_were_built_for(monkeypatch):
    """:func:`cuda.solve` launches with the argument types the prebuilt kernels declare
    (numpy arrays stand in for device arrays, which numba types alike)."""
    import numba

    seen = []
    monkeypatch.setattr(cuda, "_kernel_source", lambda k, args, s: seen.append(args) or "x")
    pk = tolsim.PK.tamoxifen_human()
    schedule = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=20.0, every_days=7.0, stop_day=21.0, pk=pk, duration_days=40.0
    )
    table = cuda.schedule_table(MODEL, [schedule], [np.array([10.0, 40.0])])
    cuda.solve(MODEL, MODEL.pack({})[None], table, np.zeros(1, np.int32))
    if cuda._simulated():  # the simulator's device arrays wrap numpy arrays
        seen = [[a.copy_to_host() if hasattr(a, "copy_to_host") else a for a in seen[0]]]
    typed = tuple(numba.typeof(a) for a in seen[0])
    assert typed == cuda_prebuilt.launch_argument_types(MODEL, table.n_channels)


MODEL = tolsim.models.TwoState()


def test_the_source_key_changes_with_every_file_and_function_the_kernel_is_built_from(
    monkeypatch, tmp_path
):
    """An edit to the template, to any kernel module it calls or to the model's module, or a
    jitted helper of the rates rebound at run time, gives another key: the shipped kernel is
    then not used."""
    import numba

    from tolsim.kernels import specialise
    from tolsim.models import tolerance

    constants = cuda.variant_constants(MODEL, 1, 128, method="dopri5", trajectories=False)
    key = cuda_prebuilt.source_key(MODEL.rates, constants)
    edited = tmp_path / "kernels"
    for name in (*cuda_prebuilt.template_modules(), "stochastic_template.py"):
        shutil.copytree(specialise._KERNEL_DIR, edited, dirs_exist_ok=True)
        with open(edited / name, "a") as handle:
            handle.write("\n# an edit\n")
        monkeypatch.setattr(specialise, "_KERNEL_DIR", edited)
        changed = cuda_prebuilt.source_key(MODEL.rates, constants) != key
        assert changed == (name != "stochastic_template.py"), name  # (never imported)
        monkeypatch.undo()
    assert cuda_prebuilt.source_key(MODEL.rates, constants) == key
    original = specialise._rates_source
    monkeypatch.setattr(specialise, "_rates_source", lambda rates: original(rates) + "# edit")
    assert cuda_prebuilt.source_key(MODEL.rates, constants) != key
    monkeypatch.undo()

    @numba.njit
    def other_hill(c, ec50, h):
        return 0.0

    monkeypatch.setattr(tolerance, "hill", other_hill)
    assert cuda_prebuilt.source_key(MODEL.rates, constants) != key
    monkeypatch.undo()
    assert cuda_prebuilt.source_key(MODEL.rates, constants) == key


def test_the_device_architecture_is_named_as_numba_cuda_compiles_for_it(monkeypatch):
    import numba.cuda

    for cc, expected in (((8, 6), (8, 6, "")), ((9, 0), (9, 0, "a")), ((12, 0), (12, 0, "a"))):
        device = type("Device", (), {"compute_capability": cc})
        monkeypatch.setattr(numba.cuda, "get_current_device", lambda d=device: d, raising=False)
        assert cuda_prebuilt._device_architecture() == expected


class _Library:
    def __init__(self):
        self._cubin_cache = {(8, 0, ""): "sm_80 code", (9, 0, "a"): "sm_90a code"}


class _Loaded:
    def __init__(self, args):
        self.signature = type("Signature", (), {"args": args})
        self._codelibrary = _Library()


def _manifest_for(directory, source, argtypes, **entry):
    key = cuda_prebuilt.entry_key(source, argtypes)
    entry = {"file": "k.pkl.xz", "architectures": [[8, 0, ""], [9, 0, "a"]],
             "options": {"opt": True}} | entry  # fmt: skip
    manifest = {"versions": cuda_prebuilt.versions(), "kernels": {key: entry}}
    (directory / cuda_prebuilt.MANIFEST).write_text(json.dumps(manifest))
    (directory / "k.pkl.xz").write_bytes(lzma.compress(pickle.dumps({})))
    cuda_prebuilt._MANIFEST_CACHE.pop(directory, None)


def test_load_files_a_compatible_cubin_and_refuses_what_does_not_match(monkeypatch, tmp_path):
    """:func:`cuda_prebuilt.load`'s own checks, with numba-cuda's kernel rebuilt by a stand-in
    (the real one is rebuilt in the test below, without the simulator)."""
    types = (1, 2, 3)  # (argument types stand-ins: only compared and hashed)
    _manifest_for(tmp_path, "source", types)
    monkeypatch.setattr(cuda_prebuilt, "_WARNED", set())
    monkeypatch.setattr(cuda_prebuilt, "_rebuild", lambda states: _Loaded(types))
    kernel = cuda_prebuilt.load("source", types, (8, 6, ""), tmp_path, options={"opt": True})
    assert kernel._codelibrary._cubin_cache[(8, 6, "")] == "sm_80 code"
    assert cuda_prebuilt.load("source", types, (9, 0, "a"), tmp_path, {"opt": False}) is None
    monkeypatch.setattr(cuda_prebuilt, "_rebuild", lambda states: _Loaded((1, 2, 4)))
    with pytest.warns(RuntimeWarning, match="argument types differ from the manifest's"):
        assert cuda_prebuilt.load("source", types, (9, 0, "a"), tmp_path) is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"kernels": {"a": ', "could not be read .*JSONDecodeError"),
        ('{"versions": {}}', "it holds no table of kernels"),
        ("[1, 2]", "it holds no table of kernels"),
    ],
)
def test_a_damaged_manifest_warns_and_compiles(monkeypatch, tmp_path, text, match):
    (tmp_path / cuda_prebuilt.MANIFEST).write_text(text)
    cuda_prebuilt._MANIFEST_CACHE.pop(tmp_path, None)
    monkeypatch.setattr(cuda_prebuilt, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match=match):
        assert cuda_prebuilt.load("source", (1,), (9, 0, "a"), tmp_path) is None


def test_an_entry_without_its_architectures_warns_and_compiles(monkeypatch, tmp_path):
    types = (1, 2, 3)
    _manifest_for(tmp_path, "source", types, architectures=None)
    monkeypatch.setattr(cuda_prebuilt, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="could not be read"):
        assert cuda_prebuilt.load("source", types, (9, 0, "a"), tmp_path) is None


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ((9, 0, "a"), [(8, 0, ""), (9, 0, "a")], (9, 0, "a")),
        ((8, 6, ""), [(8, 0, ""), (9, 0, "a")], (8, 0, "")),  # binary compatible
        ((8, 9, ""), [(8, 0, ""), (8, 6, "")], (8, 6, "")),  # the closest
        ((8, 0, ""), [(8, 6, ""), (9, 0, "a")], None),  # not backwards
        ((7, 5, ""), [(8, 0, ""), (9, 0, "a")], None),
        ((10, 3, "a"), [(10, 0, "a")], None),  # "a" code runs on its own architecture only
        ((12, 0, "a"), [(8, 0, ""), (9, 0, "a")], None),  # nor across major versions
    ],
)
def test_a_device_runs_its_own_cubin_or_a_binary_compatible_one(device, available, expected):
    assert cuda_prebuilt.compatible_architecture(available, device) == expected


def test_the_summary_says_whether_they_are_used(monkeypatch, tmp_path):
    installed = cuda_prebuilt.versions()
    (tmp_path / cuda_prebuilt.MANIFEST).write_text(json.dumps({
        "versions": installed, "architectures": [[8, 0, ""], [9, 0, "a"]], "kernels": {"k": {}}
    }))  # fmt: skip
    monkeypatch.delenv("TOLSIM_CUDA_PREBUILT", raising=False)
    text = cuda_prebuilt.summary(tmp_path)
    assert text.startswith(f"1 kernels for numba-cuda {installed['numba-cuda']}")
    assert "(sm_80, sm_90a): used where they match" in text
    monkeypatch.setenv("TOLSIM_CUDA_PREBUILT", "0")
    assert cuda_prebuilt.summary(tmp_path).endswith(": off (TOLSIM_CUDA_PREBUILT=0)")
    monkeypatch.delenv("TOLSIM_CUDA_PREBUILT")
    other = tmp_path / "other"
    other.mkdir()
    (other / cuda_prebuilt.MANIFEST).write_text(json.dumps({
        "versions": {"numba-cuda": "0.1", "numba": "0.1"}, "architectures": [], "kernels": {}
    }))  # fmt: skip
    assert ": not used here (numba-cuda" in cuda_prebuilt.summary(other)
    assert cuda_prebuilt.summary(tmp_path / "none") == "none shipped"
    assert tolsim.info.versions()["cuda prebuilt kernels"] == cuda_prebuilt.summary()


def test_turned_off_by_the_environment(monkeypatch):
    for value, on in (("0", False), ("off", False), ("False", False), ("1", True), ("", True)):
        monkeypatch.setenv("TOLSIM_CUDA_PREBUILT", value)
        assert cuda_prebuilt.enabled() is on
    monkeypatch.delenv("TOLSIM_CUDA_PREBUILT")
    assert cuda_prebuilt.enabled()


class _Dispatcher:
    """What :func:`cuda_prebuilt.attach` uses of a numba-cuda kernel dispatcher."""

    def __init__(self):
        self.overloads = {}

    targetoptions = {"opt": True}

    def typeof_pyval(self, value):
        import numba

        return numba.typeof(value)

    def add_overload(self, kernel, argtypes):
        self.overloads[argtypes] = kernel


class _Kernel:
    def __init__(self, fails=False):
        self.fails, self.bound = fails, False

    def bind(self):
        if self.fails:
            raise RuntimeError("CUDA_ERROR_UNSUPPORTED_PTX_VERSION")
        self.bound = True


def test_attach_loads_a_matching_kernel_once_and_falls_back_to_compiling(monkeypatch):
    args = (np.zeros(3), 1.0, True)
    found = []

    def load(source, argtypes, device, options):
        found.append((source, argtypes, device))
        assert options == cuda_prebuilt.compile_options(_Dispatcher())
        return kernels.pop(0) if kernels else None

    monkeypatch.setattr(cuda_prebuilt, "load", load)
    monkeypatch.setattr(cuda_prebuilt, "_device_architecture", lambda: (8, 6, ""))
    monkeypatch.delenv("TOLSIM_CUDA_PREBUILT", raising=False)

    kernels = []  # nothing shipped for it: numba compiles
    dispatcher = _Dispatcher()
    assert cuda_prebuilt.attach(dispatcher, "source", args) == "compile"
    assert not dispatcher.overloads
    assert found[-1][2] == (8, 6, "") and found[-1][0] == "source"

    loaded = _Kernel()
    kernels = [loaded]
    assert cuda_prebuilt.attach(dispatcher, "source", args) == "prebuilt"
    assert loaded.bound and list(dispatcher.overloads.values()) == [loaded]
    assert list(dispatcher.overloads) == [found[-1][1]]
    calls = len(found)
    assert cuda_prebuilt.attach(dispatcher, "source", args) == "in memory"
    assert len(found) == calls  # not looked up again

    dispatcher = _Dispatcher()
    kernels = [_Kernel(fails=True)]  # a driver that cannot load it: warned, then compiled
    with pytest.warns(RuntimeWarning, match="loading a prebuilt CUDA kernel on this GPU failed"):
        assert cuda_prebuilt.attach(dispatcher, "source", args) == "compile"
    assert not dispatcher.overloads

    monkeypatch.setenv("TOLSIM_CUDA_PREBUILT", "0")
    kernels = [_Kernel()]
    assert cuda_prebuilt.attach(dispatcher, "source", args) == "compile"
    assert not dispatcher.overloads and kernels  # not even looked up


def _run_without_simulator(script: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_load_checks_versions_types_architecture_and_damage(tmp_path):
    """:func:`cuda_prebuilt.load` on a copy of the shipped files (numba-cuda's real target, no
    GPU): the shipped kernel for the matching variant, with the cubin the device runs filed
    under its architecture (or none, and the LLVM IR to link one from); None for other
    versions, sources or argument types; a damaged file warns and gives None."""
    key, source = _variant_entry(MODEL, 1, "dopri5", False)
    entry = MANIFEST["kernels"][key]
    copy = tmp_path / "prebuilt"
    copy.mkdir()
    shutil.copy(cuda_prebuilt.PREBUILT_DIR / entry["file"], copy / entry["file"])
    manifest = dict(MANIFEST, kernels={key: entry})
    (copy / cuda_prebuilt.MANIFEST).write_text(json.dumps(manifest))
    out = _run_without_simulator(
        f"""
        import json, warnings
        from pathlib import Path
        import tolsim
        from tolsim import cuda_prebuilt as P
        model, copy, source = tolsim.models.TwoState(), Path({str(copy)!r}), {source!r}
        manifest = json.loads((copy / P.MANIFEST).read_text())
        manifest["versions"] = P.versions()  # as if built with these
        (copy / P.MANIFEST).write_text(json.dumps(manifest))
        types = P.launch_argument_types(model, 1)
        kernel = P.load(source, types, (8, 6, ""), copy)
        cubins = kernel._codelibrary._cubin_cache
        print("cubins|", sorted(cubins), sep="")
        print("sm_80 for sm_86|", cubins[(8, 6, "")] is cubins[(8, 0, "")], sep="")
        print("signature|", tuple(kernel.signature.args) == types, sep="")
        other = types[:-1] + (types[0],)  # one array of another rank
        print("other types|", P.load(source, other, (9, 0, "a"), copy), sep="")
        print("other source|", P.load("0" * 64, types, (9, 0, "a"), copy), sep="")
        older = P.load(source, types, (7, 5, ""), copy)  # no cubin: linked from the IR
        print("older architecture|", sorted(older._codelibrary._cubin_cache), sep="")
        print("llvm ir|", len(older._codelibrary.llvm_strs) > 0, sep="")
        patch = P.versions()["numba"].split(".")[:2] + ["99"]
        manifest["versions"] = dict(P.versions(), numba=".".join(patch))
        (copy / P.MANIFEST).write_text(json.dumps(manifest))
        P._MANIFEST_CACHE.clear()
        print("numba patch|", P.load(source, types, (9, 0, "a"), copy) is not None, sep="")
        manifest["versions"] = dict(P.versions(), numba="0.1.0")
        (copy / P.MANIFEST).write_text(json.dumps(manifest))
        P._MANIFEST_CACHE.clear()
        print("other numba|", P.load(source, types, (9, 0, "a"), copy), sep="")
        manifest["versions"] = P.versions()
        manifest["versions"]["numba-cuda"] = "0.30.99"
        (copy / P.MANIFEST).write_text(json.dumps(manifest))
        P._MANIFEST_CACHE.clear()
        print("other numba-cuda|", P.load(source, types, (9, 0, "a"), copy), sep="")
        manifest["versions"] = P.versions()
        (copy / P.MANIFEST).write_text(json.dumps(manifest))
        P._MANIFEST_CACHE.clear()
        path = copy / manifest["kernels"][{key!r}]["file"]
        path.write_bytes(path.read_bytes()[:1000])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print("damaged|", P.load(source, types, (9, 0, "a"), copy), sep="")
        print("warned|", [str(w.message) for w in caught], sep="")
        """,
        tmp_path,
    )
    lines = dict(line.split("|", 1) for line in out.strip().splitlines())
    shipped = [tuple(a) for a in entry["architectures"]]
    assert lines["cubins"] == str(sorted([*shipped, (8, 6, "")]))
    assert lines["sm_80 for sm_86"] == "True"  # the sm_80 cubin, filed for the device
    assert lines["older architecture"] == str(sorted(shipped))
    assert lines["llvm ir"] == "True"
    assert lines["signature"] == "True"
    for case in ("types", "source", "numba", "numba-cuda"):
        assert lines[f"other {case}"] == "None"
    assert lines["numba patch"] == "True"
    assert lines["damaged"] == "None"
    assert "could not be read" in lines["warned"] and "compiling it instead" in lines["warned"]


@pytest.mark.skipif(cuda._simulated(), reason="needs a GPU (TOLSIM_TEST_CUDA=device)")
def test_on_the_gpu_a_prebuilt_kernel_gives_the_compiled_kernels_results(tmp_path):
    """Fresh processes with empty caches: one loads the shipped kernel, one compiles it
    (``TOLSIM_CUDA_PREBUILT=0``); the metrics, statuses and step counts are the same bits."""
    script = """
        import sys, numpy as np, tolsim
        from tolsim import cuda
        from tolsim.recurrence import metric_grid
        model = tolsim.models.TwoState()
        schedule = tolsim.Schedule.oral("tamoxifen", dose_mg=20.0, every_days=7.0,
                                        stop_day=70.0, duration_days=200.0,
                                        pk=tolsim.PK.tamoxifen_human())
        table = cuda.schedule_table(model, [schedule], [metric_grid(schedule, None)])
        rng = np.random.default_rng(5)
        d = model.default_params()
        rows = model.pack_table({k: d[k] * rng.uniform(0.8, 1.2, 500)
                                 for k in ("lambda_S", "lambda_T", "mu_E", "T0")})
        profile = {}
        r = cuda.solve(model, rows, table, np.zeros(500, np.int32), stats=True,
                       threshold=2.0, profile=profile)
        np.savez(sys.argv[1], status=r.status, metrics=r.metrics, stats=r.stats)
        print(profile["kernel_source"])
        """
    results = {}
    for name, flag in (("prebuilt", "1"), ("compiled", "0")):
        cache = str(tmp_path / name)
        env = dict(
            os.environ, TOLSIM_CUDA_PREBUILT=flag, TOLSIM_CACHE_DIR=cache, NUMBA_CACHE_DIR=cache
        )
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), str(tmp_path / f"{name}.npz")],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        results[name] = (out.stdout.split()[-1], np.load(tmp_path / f"{name}.npz"))
    assert results["prebuilt"][0] == "prebuilt" and results["compiled"][0] == "compile"
    for field in ("status", "metrics", "stats"):
        a, b = results["prebuilt"][1][field], results["compiled"][1][field]
        assert np.array_equal(a, b, equal_nan=True), field
