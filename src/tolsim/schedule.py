"""Dosing schedules: what drug is given when, as validated, hashable data.

A :class:`Schedule` holds three kinds of regimen, all in days:

- :class:`Phase` — piecewise-constant in-vitro drug levels (µM in the medium);
- :class:`OralDoses` — repeated oral doses (mg) into a one-compartment model with first-order
  absorption and elimination (:class:`PK`);
- :class:`Pellet` — a slow-release pellet: constant zero-order input (mg/day) into the central
  compartment for its lifetime.

:meth:`Schedule.compile` turns a schedule into the arrays of
:class:`tolsim.kernels.exposure.CompiledSchedule`: sorted breakpoints, the in-vitro level of
each drug on each piece between breakpoints, and the exact PK amounts at the start of each
piece (doses are jumps at breakpoints, so a solver never steps over one).

Regimens are checked when a :class:`Schedule` is built, so that an error can say which regimen
is wrong (``phases[1]``, ``oral_doses[0]``); a bare regimen only normalises its field types.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from numbers import Real
from typing import Any

import numpy as np
import tomli_w

from tolsim.kernels.exposure import CompiledSchedule, central_amount, concentrations_at

__all__ = ["PK", "OralDoses", "Pellet", "Phase", "Schedule"]

_LN2 = math.log(2.0)
_TAMOXIFEN_MOLAR_MASS_G_PER_MOL = 371.5
_MAX_DOSES_PER_REGIMEN = 1_000_000
# a dose day within this fraction of `every_days` of `stop_day` is taken to be on it
_DOSE_DAY_RTOL = 1e-9
_PHASE_TIME_KEYS = ("days", "start_day", "stop_day")


# --------------------------------------------------------------------------------------------
# small checking helpers (each raises naming the argument, the value and what was expected)


def _as_float(value: Any, name: str, unit: str = "") -> float:
    """``float(value)`` for a real number (not a bool), else ``TypeError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        expected = f"a number of {unit}" if unit else "a number"
        raise TypeError(f"`{name}` = {value!r}: expected {expected}")
    return float(value)


def _as_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"`{name}` = {value!r}: expected a non-empty drug name (str)")
    return value


def _fmt(x: float) -> str:
    """Short number for messages: ``70.0 -> '70'``, ``0.25 -> '0.25'``."""
    return f"{x:g}"


def _check_finite(value: float, name: str, unit: str) -> None:
    if not math.isfinite(value):
        raise ValueError(f"`{name}` = {value!r} {unit}: expected a finite number")


def _check_day(value: float, name: str, duration_days: float) -> None:
    if not math.isfinite(value) or not 0.0 <= value <= duration_days:
        raise ValueError(
            f"`{name}` = {value!r}: days must lie within the schedule, "
            f"[0, {_fmt(duration_days)}] (`duration_days` = {_fmt(duration_days)})"
        )


def _check_keys(
    data: Any, where: str, required: Sequence[str], optional: Sequence[str]
) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"`{where}` = {data!r}: expected a mapping (dict)")
    allowed = (*required, *optional)
    for key in data:
        if key not in allowed:
            listed = ", ".join(repr(k) for k in allowed)
            raise ValueError(f"`{where}` has unknown key {key!r}: expected keys are {listed}")
    for key in required:
        if key not in data:
            raise ValueError(f"`{where}` lacks required key {key!r}")
    return data


def _as_list(value: Any, where: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise TypeError(f"`{where}` = {value!r}: expected a list")
    return list(value)


def _from_mapping(cls: type, data: Any, where: str, **converters: Any) -> Any:
    """Build dataclass ``cls`` from a plain mapping, with strict keys and per-field converters."""
    fields = [f for f in dataclasses.fields(cls) if f.init and f.name != "_"]
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    optional = [f.name for f in fields if f.name not in required]
    data = _check_keys(data, where, required, optional)
    kwargs = {
        key: converters[key](value, f"{where}.{key}") if key in converters else value
        for key, value in data.items()
    }
    return cls(**kwargs)


# --------------------------------------------------------------------------------------------
# pharmacokinetics


@dataclass(frozen=True, kw_only=True)
class PK:
    """One-compartment pharmacokinetics with first-order absorption (linear, time-invariant).

    ``dA_depot/dt = -ka A_depot``, ``dA_central/dt = ka A_depot - ke A_central + input(t)``;
    the concentration is ``A_central / V`` converted to µM with the molar mass.

    Parameters
    ----------
    ka_per_day : float
        First-order absorption rate constant from the depot (gut) into the central compartment,
        1/day. Not used by pellets, which release straight into the central compartment.
    ke_per_day : float
        First-order elimination rate constant, 1/day (half-life ``ln 2 / ke``).
    volume_l : float
        Apparent volume of distribution, L.
    molar_mass_g_per_mol : float
        Molar mass of the drug, g/mol.
    bioavailability : float
        Fraction of an oral dose that reaches the depot, in (0, 1]. Not used by pellets.
    species, note : str
        Free text: what organism and where the numbers come from.

    Examples
    --------
    >>> pk = PK.from_half_life(7.0, ka_per_day=24.0, volume_l=1700.0,
    ...                        molar_mass_g_per_mol=371.5)
    >>> round(pk.half_life_days, 12)
    7.0
    """

    ka_per_day: float
    ke_per_day: float
    volume_l: float
    molar_mass_g_per_mol: float
    bioavailability: float = 1.0
    species: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        units = {
            "ka_per_day": "/day",
            "ke_per_day": "/day",
            "volume_l": "L",
            "molar_mass_g_per_mol": "g/mol",
            "bioavailability": "",
        }
        for name, unit in units.items():
            value = _as_float(getattr(self, name), name, unit)
            object.__setattr__(self, name, value)
            if not (math.isfinite(value) and value > 0.0):
                shown = f"{value!r} {unit}".rstrip()
                raise ValueError(f"`{name}` = {shown}: expected a finite number > 0")
        if self.bioavailability > 1.0:
            raise ValueError(
                f"`bioavailability` = {self.bioavailability!r}: expected a fraction in (0, 1]"
            )
        for name in ("species", "note"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"`{name}` = {getattr(self, name)!r}: expected a str")

    @classmethod
    def from_half_life(
        cls,
        half_life_days: float,
        *,
        ka_per_day: float,
        volume_l: float,
        molar_mass_g_per_mol: float,
        bioavailability: float = 1.0,
        species: str = "",
        note: str = "",
    ) -> PK:
        """PK with ``ke = ln 2 / half_life_days`` (elimination half-life in days)."""
        half_life_days = _as_float(half_life_days, "half_life_days", "days")
        if not (math.isfinite(half_life_days) and half_life_days > 0.0):
            raise ValueError(
                f"`half_life_days` = {half_life_days!r}: expected a finite number > 0"
            )
        return cls(
            ka_per_day=ka_per_day,
            ke_per_day=_LN2 / half_life_days,
            volume_l=volume_l,
            molar_mass_g_per_mol=molar_mass_g_per_mol,
            bioavailability=bioavailability,
            species=species,
            note=note,
        )

    @property
    def half_life_days(self) -> float:
        """Elimination half-life ``ln 2 / ke``, days."""
        return _LN2 / self.ke_per_day

    @property
    def um_per_mg(self) -> float:
        """Concentration (µM) of 1 mg in the central compartment: ``1000 / (V M)``."""
        return 1000.0 / (self.volume_l * self.molar_mass_g_per_mol)

    @classmethod
    def tamoxifen_human(cls) -> PK:
        """Illustrative human tamoxifen PK (literature-scale numbers, not fitted).

        Half-life 7 days (reported terminal half-life ~5–7 days); ``ka = 24 /day`` (absorption
        half-time ~0.7 h, single-dose peak ~5.5 h, in the range of the ~5 h reported for a
        20 mg dose); molar mass 371.5 g/mol; bioavailability 1 (illustrative: absorption is
        folded into the apparent volume); apparent volume ``V = F D / (ke tau Css)`` chosen so
        that 20 mg once a day gives an average steady-state plasma level of 120 ng/mL
        (~0.32 µM), i.e. ``V`` ≈ 1683 L.
        """
        half_life_days = 7.0
        ke_per_day = _LN2 / half_life_days
        dose_mg, tau_days, css_mg_per_l, bioavailability = 20.0, 1.0, 0.120, 1.0
        volume_l = bioavailability * dose_mg / (ke_per_day * tau_days * css_mg_per_l)
        css_um = css_mg_per_l * 1000.0 / _TAMOXIFEN_MOLAR_MASS_G_PER_MOL
        note = (
            "Illustrative literature-scale values, not fitted. Elimination half-life 7 d "
            "(reported ~5-7 d). ka = 24 /day, assumed (single-dose peak ~5.5 h; ~5 h is "
            "reported for 20 mg). Molar mass 371.5 g/mol. Bioavailability F = 1 as an "
            "illustration (F is folded into V). Apparent V = F*D/(ke*tau*Css) = "
            f"{volume_l:.0f} L, chosen so that D = 20 mg every tau = 1 day gives an average "
            f"steady state Css = 120 ng/mL ({css_um:.2f} uM). A one-compartment model matched "
            "to the steady state underestimates single-dose peaks."
        )
        return cls(
            ka_per_day=24.0,
            ke_per_day=ke_per_day,
            volume_l=volume_l,
            molar_mass_g_per_mol=_TAMOXIFEN_MOLAR_MASS_G_PER_MOL,
            bioavailability=bioavailability,
            species="human",
            note=note,
        )

    @classmethod
    def tamoxifen_mouse(cls) -> PK:
        """Illustrative mouse tamoxifen PK (literature-scale numbers, not fitted).

        Half-life 6 h = 0.25 days (~30 times shorter than the human preset; mice clear
        tamoxifen within hours); ``ka = 24 /day`` as for the human preset (assumed); apparent
        volume scaled by body weight from the human preset (same L/kg, 70 kg human, 25 g mouse,
        an assumption), ≈ 0.60 L; bioavailability 1.
        """
        human = cls.tamoxifen_human()
        body_mass_human_kg, body_mass_mouse_kg = 70.0, 0.025
        volume_per_kg = human.volume_l / body_mass_human_kg
        volume_l = volume_per_kg * body_mass_mouse_kg
        note = (
            "Illustrative literature-scale values, not fitted. Elimination half-life 6 h "
            "(0.25 d, ~30x shorter than the human preset). ka = 24 /day, assumed as for the "
            f"human preset. Apparent V = {volume_l:.2f} L: the human preset's "
            f"{volume_per_kg:.1f} L/kg (70 kg) scaled to a 25 g mouse, an assumption. "
            "Molar mass 371.5 g/mol. Bioavailability 1 (illustrative)."
        )
        return cls.from_half_life(
            0.25,
            ka_per_day=24.0,
            volume_l=volume_l,
            molar_mass_g_per_mol=_TAMOXIFEN_MOLAR_MASS_G_PER_MOL,
            bioavailability=1.0,
            species="mouse",
            note=note,
        )

    def __repr__(self) -> str:
        """The constants in one line; :attr:`note` (where they come from) is left out."""
        species = f" ({self.species})" if self.species else ""
        return (
            f"<tolsim PK{species}: ka {self.ka_per_day:.4g}/day, ke {self.ke_per_day:.4g}/day "
            f"(half-life {self.half_life_days:.4g} days), V {self.volume_l:.4g} L, "
            f"M {self.molar_mass_g_per_mol:.4g} g/mol, F {self.bioavailability:.4g}>"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON-able) dict of the fields."""
        return dataclasses.asdict(self)


def _pk_from_dict(value: Any, where: str) -> PK:
    if isinstance(value, PK):
        return value
    return _from_mapping(PK, value, where)


def _check_pk(value: Any, name: str) -> PK:
    if not isinstance(value, PK):
        raise TypeError(f"`{name}` = {value!r}: expected a tolsim.schedule.PK")
    return value


# --------------------------------------------------------------------------------------------
# regimens


def _normalise_levels(value: Any) -> tuple[tuple[str, float], ...]:
    """Sorted ``((drug, level_um), ...)`` from a mapping or an iterable of pairs."""
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [tuple(item) for item in items]
    except TypeError:
        raise TypeError(
            f"`concentrations_um` = {value!r}: expected a mapping of drug name to µM"
        ) from None
    levels: dict[str, float] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise TypeError(f"`concentrations_um` item {pair!r}: expected a (drug, µM) pair")
        drug = _as_name(pair[0], "concentrations_um")
        if drug in levels:
            raise ValueError(f"`concentrations_um` gives {drug!r} twice")
        levels[drug] = _as_float(pair[1], f"concentrations_um[{drug!r}]", "µM")
    return tuple(sorted(levels.items()))


@dataclass(frozen=True)
class Phase:
    """Piecewise-constant (in-vitro) drug levels over days ``[start_day, stop_day)``.

    Parameters
    ----------
    start_day, stop_day : float
        The phase holds from ``start_day`` (included) to ``stop_day`` (excluded), days.
    concentrations_um : mapping of str to float, or pairs
        Level of each drug it sets, µM. Drugs not named are not set by this phase (0 unless
        another phase sets them). Stored as a sorted tuple of ``(drug, level)`` pairs so that a
        phase is hashable; :attr:`levels_um` gives a dict.

    Examples
    --------
    >>> Phase(0, 60, {"tamoxifen": 1.0}).levels_um
    {'tamoxifen': 1.0}
    """

    start_day: float
    stop_day: float
    concentrations_um: Mapping[str, float] | tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_day", _as_float(self.start_day, "start_day", "days"))
        object.__setattr__(self, "stop_day", _as_float(self.stop_day, "stop_day", "days"))
        object.__setattr__(self, "concentrations_um", _normalise_levels(self.concentrations_um))

    @property
    def levels_um(self) -> dict[str, float]:
        """``{drug: level_um}`` of the drugs this phase sets."""
        return dict(self.concentrations_um)

    @property
    def drugs(self) -> tuple[str, ...]:
        """Sorted names of the drugs this phase sets."""
        return tuple(drug for drug, _ in self.concentrations_um)

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON-able) dict."""
        return {
            "start_day": self.start_day,
            "stop_day": self.stop_day,
            "concentrations_um": self.levels_um,
        }

    def _shifted(self, offset_days: float) -> Phase:
        return dataclasses.replace(
            self, start_day=self.start_day + offset_days, stop_day=self.stop_day + offset_days
        )


@dataclass(frozen=True)
class OralDoses:
    """Repeated oral doses: ``dose_mg`` on ``start_day``, ``start_day + every_days``, ...

    Doses are given strictly before ``stop_day``. Each dose adds ``pk.bioavailability *
    dose_mg`` to the absorption depot of its own PK channel.

    Parameters
    ----------
    drug : str
        Drug name (a column of the model's drugs).
    dose_mg : float
        Amount per dose, mg (>= 0).
    start_day, stop_day : float
        First dose day; doses stop before ``stop_day`` (its withdrawal day), days.
    every_days : float
        Interval between doses, days (> 0).
    pk : PK
        Pharmacokinetics of the drug in the treated organism.

    Examples
    --------
    >>> pk = PK.tamoxifen_human()
    >>> OralDoses("tamoxifen", dose_mg=20, start_day=0, stop_day=3, every_days=1, pk=pk).dose_days
    array([0., 1., 2.])
    """

    drug: str
    _: KW_ONLY
    dose_mg: float
    start_day: float
    stop_day: float
    every_days: float
    pk: PK

    def __post_init__(self) -> None:
        _as_name(self.drug, "drug")
        for name, unit in (
            ("dose_mg", "mg"),
            ("start_day", "days"),
            ("stop_day", "days"),
            ("every_days", "days"),
        ):
            object.__setattr__(self, name, _as_float(getattr(self, name), name, unit))
        _check_pk(self.pk, "pk")

    def _dose_count(self) -> int:
        """Doses strictly before ``stop_day``: the ``k >= 0`` with ``k < span / every_days``.

        A dose within ``_DOSE_DAY_RTOL * every_days`` of ``stop_day`` is one *at* it (and not
        given): ``0.9 / 0.3`` is ``3.0000000000000004`` in floating point, which must not
        add a fourth dose at day ``0.8999999999999999`` of a regimen stopping on day 0.9.
        """
        span = self.stop_day - self.start_day
        if not (math.isfinite(span) and span > 0.0 and self.every_days > 0.0):
            return 0
        intervals = span / self.every_days
        if not math.isfinite(intervals):
            return _MAX_DOSES_PER_REGIMEN + 1  # refused by Schedule as too many doses
        return max(0, math.ceil(intervals - _DOSE_DAY_RTOL))

    @property
    def dose_days(self) -> np.ndarray:
        """Days on which a dose is given, shape ``(n_doses,)``, float64, increasing.

        ``start_day + k * every_days`` for ``k = 0, 1, ...`` strictly before ``stop_day``;
        a day that equals ``stop_day`` up to rounding (within ``1e-9 * every_days``) is not
        a dose day.

        Examples
        --------
        >>> pk = PK.tamoxifen_mouse()
        >>> OralDoses("tamoxifen", dose_mg=1, start_day=0, stop_day=0.9, every_days=0.3,
        ...           pk=pk).dose_days.size
        3
        """
        days = self.start_day + self.every_days * np.arange(self._dose_count(), dtype=np.float64)
        return days[days < self.stop_day]  # never a day on or after it, whatever the rounding

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON-able) dict, PK included."""
        return {
            "drug": self.drug,
            "dose_mg": self.dose_mg,
            "start_day": self.start_day,
            "stop_day": self.stop_day,
            "every_days": self.every_days,
            "pk": self.pk.to_dict(),
        }

    def _shifted(self, offset_days: float) -> OralDoses:
        return dataclasses.replace(
            self, start_day=self.start_day + offset_days, stop_day=self.stop_day + offset_days
        )


@dataclass(frozen=True)
class Pellet:
    """Slow-release pellet: ``release_mg_per_day`` into the central compartment.

    The input is zero-order (constant) from ``start_day`` (implantation) to ``stop_day`` (end
    of its lifetime or removal). There is no absorption depot: ``pk.ka_per_day`` and
    ``pk.bioavailability`` are not used.

    Parameters
    ----------
    drug : str
        Drug name.
    start_day, stop_day : float
        The pellet releases over ``[start_day, stop_day)``, days.
    release_mg_per_day : float
        Release rate, mg/day (>= 0).
    pk : PK
        Pharmacokinetics of the drug in the treated organism.
    """

    drug: str
    _: KW_ONLY
    start_day: float
    stop_day: float
    release_mg_per_day: float
    pk: PK

    def __post_init__(self) -> None:
        _as_name(self.drug, "drug")
        for name, unit in (
            ("start_day", "days"),
            ("stop_day", "days"),
            ("release_mg_per_day", "mg/day"),
        ):
            object.__setattr__(self, name, _as_float(getattr(self, name), name, unit))
        _check_pk(self.pk, "pk")

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON-able) dict, PK included."""
        return {
            "drug": self.drug,
            "start_day": self.start_day,
            "stop_day": self.stop_day,
            "release_mg_per_day": self.release_mg_per_day,
            "pk": self.pk.to_dict(),
        }

    def _shifted(self, offset_days: float) -> Pellet:
        return dataclasses.replace(
            self, start_day=self.start_day + offset_days, stop_day=self.stop_day + offset_days
        )


def _as_tuple_of(value: Any, cls: type, name: str, hint: str) -> tuple[Any, ...]:
    items = tuple(_as_list(value, name))
    for i, item in enumerate(items):
        if not isinstance(item, cls):
            raise TypeError(f"`{name}[{i}]` = {item!r}: expected a {cls.__name__}{hint}")
    return items


# --------------------------------------------------------------------------------------------
# schedule


@dataclass(frozen=True)
class Schedule:
    """A dosing schedule over days ``[0, duration_days]``: in-vitro phases, oral doses, pellets.

    Exposures add up: the concentration of a drug is the sum of the levels of the phases that
    set it and of the PK channels (one per oral regimen, one per pellet) that give it.

    Phases may overlap only where they set *different* drugs (e.g. a tamoxifen phase and an
    inhibitor phase from :meth:`combine`); two overlapping phases that both set the same drug
    are an error, even when their levels are equal. A phase that sets no drug (a washout) never
    conflicts.

    Parameters
    ----------
    duration_days : float
        Length of the schedule, days (> 0).
    phases : sequence of Phase
        Piecewise-constant levels, each within ``[0, duration_days]``.
    oral_doses : sequence of OralDoses
        Oral regimens; every dose must be given before ``duration_days``.
    pellets : sequence of Pellet
        Pellets, each within ``[0, duration_days]``.

    Two schedules are equal when they list the same phases, oral regimens and pellets, in any
    order (``a | b == b | a``; the order is kept, as given, in :meth:`to_dict` and
    :meth:`to_json`). Equal concentrations written differently are not equal schedules: a
    phase split in two, or a drug named at 0 µM in one and left out of the other.

    Examples
    --------
    >>> s = Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 120}])
    >>> s.duration_days, s.breakpoints().tolist(), s.withdrawal_day("tamoxifen")
    (180.0, [0.0, 60.0, 180.0], 60.0)
    """

    duration_days: float
    phases: Sequence[Phase] = ()
    oral_doses: Sequence[OralDoses] = ()
    pellets: Sequence[Pellet] = ()

    def __post_init__(self) -> None:
        duration = _as_float(self.duration_days, "duration_days", "days")
        if not (math.isfinite(duration) and duration > 0.0):
            raise ValueError(f"`duration_days` = {duration!r}: expected a finite number > 0")
        object.__setattr__(self, "duration_days", duration)
        hint = " (Schedule.from_phases builds phases from dicts)"
        object.__setattr__(self, "phases", _as_tuple_of(self.phases, Phase, "phases", hint))
        object.__setattr__(
            self, "oral_doses", _as_tuple_of(self.oral_doses, OralDoses, "oral_doses", "")
        )
        object.__setattr__(self, "pellets", _as_tuple_of(self.pellets, Pellet, "pellets", ""))
        for i, phase in enumerate(self.phases):
            self._check_phase(phase, f"phases[{i}]")
        self._check_phase_overlaps()
        for i, regimen in enumerate(self.oral_doses):
            self._check_oral(regimen, f"oral_doses[{i}]")
        for i, pellet in enumerate(self.pellets):
            self._check_pellet(pellet, f"pellets[{i}]")

    # -- validation ---------------------------------------------------------------------------

    def _check_interval(self, start: float, stop: float, where: str, what: str) -> None:
        _check_finite(start, f"{where}.start_day", "days")
        _check_finite(stop, f"{where}.stop_day", "days")
        if not stop > start:
            raise ValueError(
                f"`{where}` lasts {_fmt(stop - start)} days (day {_fmt(start)} to "
                f"{_fmt(stop)}): each {what} must last > 0 days"
            )
        _check_day(start, f"{where}.start_day", self.duration_days)
        _check_day(stop, f"{where}.stop_day", self.duration_days)

    def _check_phase(self, phase: Phase, where: str) -> None:
        self._check_interval(phase.start_day, phase.stop_day, where, "phase")
        for drug, level in phase.concentrations_um:
            if not (math.isfinite(level) and level >= 0.0):
                raise ValueError(
                    f"`{where}.{drug}` = {level!r} µM: concentrations must be finite and >= 0"
                )

    def _check_phase_overlaps(self) -> None:
        by_drug: dict[str, list[int]] = {}
        for i, phase in enumerate(self.phases):
            for drug in phase.drugs:
                by_drug.setdefault(drug, []).append(i)
        for drug in sorted(by_drug):
            # sorted by start, a phase that overlaps no earlier one reaches furthest so far,
            # so checking neighbours finds every conflict
            order = sorted(by_drug[drug], key=lambda i: (self.phases[i].start_day, i))
            for previous, i in zip(order, order[1:], strict=False):
                if self.phases[i].start_day < self.phases[previous].stop_day:
                    a, b = sorted((previous, i))
                    pa, pb = self.phases[a], self.phases[b]
                    raise ValueError(
                        f"`phases[{a}]` (days {_fmt(pa.start_day)} to {_fmt(pa.stop_day)}) and "
                        f"`phases[{b}]` (days {_fmt(pb.start_day)} to {_fmt(pb.stop_day)}) "
                        f"overlap and both set {drug!r}: phases that overlap must set "
                        "different drugs"
                    )

    def _check_oral(self, regimen: OralDoses, where: str) -> None:
        _check_finite(regimen.dose_mg, f"{where}.dose_mg", "mg")
        if regimen.dose_mg < 0.0:
            raise ValueError(f"`{where}.dose_mg` = {regimen.dose_mg!r} mg: doses must be >= 0")
        _check_finite(regimen.every_days, f"{where}.every_days", "days")
        if not regimen.every_days > 0.0:
            raise ValueError(
                f"`{where}.every_days` = {regimen.every_days!r}: the dosing interval must be > 0"
            )
        _check_finite(regimen.start_day, f"{where}.start_day", "days")
        _check_finite(regimen.stop_day, f"{where}.stop_day", "days")
        if not regimen.stop_day > regimen.start_day:
            raise ValueError(
                f"`{where}` stops on day {_fmt(regimen.stop_day)}, not after its start on day "
                f"{_fmt(regimen.start_day)}: `stop_day` must be > `start_day`"
            )
        if regimen.start_day < 0.0:
            raise ValueError(
                f"`{where}.start_day` = {regimen.start_day!r}: the first dose must be on day >= 0"
            )
        if regimen._dose_count() > _MAX_DOSES_PER_REGIMEN:
            raise ValueError(
                f"`{where}` gives ~{regimen._dose_count()} doses: at most "
                f"{_MAX_DOSES_PER_REGIMEN} doses per regimen (check `every_days`)"
            )
        if regimen.dose_days.size == 0:  # (a stop within rounding of the start)
            raise ValueError(
                f"`{where}` gives no dose: it stops on day {_fmt(regimen.stop_day)}, within "
                f"rounding of its start on day {_fmt(regimen.start_day)}; expected a regimen "
                "that gives at least one dose (it would count as giving the drug, from a "
                "withdrawal that never happens)"
            )
        late = regimen.dose_days[regimen.dose_days >= self.duration_days]
        if late.size:
            raise ValueError(
                f"`{where}` gives a dose on day {_fmt(late[0])}, which is at or after the "
                f"schedule's end (day {_fmt(self.duration_days)}): every dose must come before "
                "`duration_days` (lower `stop_day` or raise `duration_days`)"
            )

    def _check_pellet(self, pellet: Pellet, where: str) -> None:
        _check_finite(pellet.release_mg_per_day, f"{where}.release_mg_per_day", "mg/day")
        if pellet.release_mg_per_day < 0.0:
            raise ValueError(
                f"`{where}.release_mg_per_day` = {pellet.release_mg_per_day!r} mg/day: "
                "release rates must be >= 0"
            )
        self._check_interval(pellet.start_day, pellet.stop_day, where, "pellet")

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_phases(
        cls, phases: Sequence[Mapping[str, Any]], *, duration_days: float | None = None
    ) -> Schedule:
        """Schedule of in-vitro phases written as dicts.

        Each dict holds either ``"days"`` (the phase starts where the previous one stopped, at
        day 0 for the first; ``"start_day"`` may be given with it) or both ``"start_day"`` and
        ``"stop_day"`` (gaps between phases have no drug). Every other key is a drug name with
        its level in µM; a drug a phase does not name is not set by it (0 when no other phase
        sets it).

        Parameters
        ----------
        phases : sequence of dict
            The phases, in order.
        duration_days : float, optional
            Length of the schedule; by default the last day of the last phase. Give it to
            follow the phases with a drug-free period.

        Examples
        --------
        >>> s = Schedule.from_phases([{"days": 60, "tamoxifen": 1.0, "inhibitor": 5.0},
        ...                           {"days": 120}])
        >>> s.duration_days, s.drugs
        (180.0, ('inhibitor', 'tamoxifen'))
        """
        items = _as_list(phases, "phases")
        built = []
        cursor = 0.0
        for i, item in enumerate(items):
            where = f"phases[{i}]"
            if not isinstance(item, Mapping):
                raise TypeError(f"`{where}` = {item!r}: expected a dict")
            if "days" in item:
                if "stop_day" in item:
                    raise ValueError(
                        f"`{where}` gives both 'days' and 'stop_day': give one of them"
                    )
                start = _as_float(item.get("start_day", cursor), f"{where}['start_day']", "days")
                days = _as_float(item["days"], f"{where}['days']", "days")
                if not days > 0:
                    raise ValueError(
                        f"`{where}` lasts {_fmt(days)} days: each phase must last > 0 days"
                    )
                stop = start + days
            elif "start_day" in item and "stop_day" in item:
                start = _as_float(item["start_day"], f"{where}['start_day']", "days")
                stop = _as_float(item["stop_day"], f"{where}['stop_day']", "days")
            else:
                raise ValueError(
                    f"`{where}` = {dict(item)!r} has neither 'days' nor both 'start_day' and "
                    "'stop_day': say when the phase holds"
                )
            levels = {}
            for key, value in item.items():
                if key in _PHASE_TIME_KEYS:
                    continue
                if not isinstance(key, str):
                    raise TypeError(f"`{where}` has key {key!r}: expected drug names (str)")
                if isinstance(value, bool) or not isinstance(value, Real):
                    raise TypeError(
                        f"`{where}[{key!r}]` = {value!r}: expected a level in µM (a number); "
                        "keys are 'days', 'start_day', 'stop_day' or drug names"
                    )
                levels[key] = float(value)
            built.append(Phase(start, stop, levels))
            cursor = stop
        if duration_days is None:
            if not built:
                raise ValueError("`phases` is empty: give at least one phase or `duration_days`")
            duration_days = max(phase.stop_day for phase in built)
        return cls(duration_days, phases=tuple(built))

    @classmethod
    def oral(
        cls,
        drug: str,
        *,
        dose_mg: float,
        every_days: float,
        start_day: float = 0.0,
        stop_day: float,
        pk: PK,
        duration_days: float | None = None,
    ) -> Schedule:
        """Schedule of one oral regimen (``duration_days`` defaults to ``stop_day``).

        Examples
        --------
        >>> s = Schedule.oral("tamoxifen", dose_mg=20, every_days=1, stop_day=28,
        ...                   pk=PK.tamoxifen_human(), duration_days=56)
        >>> len(s.oral_doses[0].dose_days), s.withdrawal_day()
        (28, 28.0)
        """
        regimen = OralDoses(
            drug,
            dose_mg=dose_mg,
            start_day=start_day,
            stop_day=stop_day,
            every_days=every_days,
            pk=pk,
        )
        if duration_days is None and not regimen.stop_day > 0:
            raise ValueError(
                f"`stop_day` = {regimen.stop_day!r}: expected a day > 0 (the schedule lasts "
                "until it unless `duration_days` is given)"
            )
        duration = regimen.stop_day if duration_days is None else duration_days
        return cls(duration, oral_doses=(regimen,))

    @classmethod
    def pellet(
        cls,
        drug: str,
        *,
        release_mg_per_day: float,
        start_day: float = 0.0,
        stop_day: float,
        pk: PK,
        duration_days: float | None = None,
    ) -> Schedule:
        """Schedule of one pellet (``duration_days`` defaults to ``stop_day``).

        Examples
        --------
        >>> s = Schedule.pellet("tamoxifen", release_mg_per_day=0.25, stop_day=21,
        ...                     pk=PK.tamoxifen_mouse(), duration_days=60)
        >>> s.breakpoints().tolist()
        [0.0, 21.0, 60.0]
        """
        pellet = Pellet(
            drug,
            start_day=start_day,
            stop_day=stop_day,
            release_mg_per_day=release_mg_per_day,
            pk=pk,
        )
        if duration_days is None and not pellet.stop_day > 0:
            raise ValueError(
                f"`stop_day` = {pellet.stop_day!r}: expected a day > 0 (the schedule lasts "
                "until it unless `duration_days` is given)"
            )
        duration = pellet.stop_day if duration_days is None else duration_days
        return cls(duration, pellets=(pellet,))

    @classmethod
    def in_vitro(
        cls,
        *,
        tamoxifen_um: float = 1.0,
        on_days: float = 60.0,
        off_days: float = 120.0,
        inhibitor_um: float = 0.0,
        inhibitor_start_day: float | None = None,
        inhibitor_stop_day: float | None = None,
    ) -> Schedule:
        """Tamoxifen for ``on_days``, then ``off_days`` without; optionally an inhibitor.
        ``on_days=0`` gives no tamoxifen (a drug-free arm, without a withdrawal).

        The inhibitor (drug ``"inhibitor"``, only when ``inhibitor_um`` is not 0) is given from
        ``inhibitor_start_day`` (default 0) to ``inhibitor_stop_day`` (default: the end).

        Examples
        --------
        >>> s = Schedule.in_vitro(tamoxifen_um=1.0, on_days=60, off_days=120,
        ...                       inhibitor_um=5.0, inhibitor_stop_day=30)
        >>> s.concentrations([10.0, 45.0, 100.0]).tolist()
        [[5.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
        """
        on = _as_float(on_days, "on_days", "days")
        off = _as_float(off_days, "off_days", "days")
        for name, value in (("on_days", on), ("off_days", off)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"`{name}` = {value!r} days: expected a finite number >= 0")
        duration = on + off
        if duration == 0:
            raise ValueError("`on_days` = 0 and `off_days` = 0: expected a schedule of > 0 days")
        # on_days = 0: no tamoxifen at all (a drug-free arm; there is then no withdrawal)
        phases = [Phase(0.0, on, {"tamoxifen": tamoxifen_um})] if on > 0 else []
        if _as_float(inhibitor_um, "inhibitor_um", "µM") != 0.0:
            start = 0.0 if inhibitor_start_day is None else inhibitor_start_day
            stop = duration if inhibitor_stop_day is None else inhibitor_stop_day
            phases.append(Phase(start, stop, {"inhibitor": inhibitor_um}))
        return cls(duration, phases=tuple(phases))

    # -- composition --------------------------------------------------------------------------

    @classmethod
    def combine(cls, *schedules: Schedule) -> Schedule:
        """All regimens of ``schedules`` at once; the duration is the longest.

        Levels of different drugs coexist and PK channels add. Phases of the schedules that set
        the same drug over overlapping days are an error (see :class:`Schedule`).

        Examples
        --------
        >>> tam = Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 120}])
        >>> inh = Schedule.from_phases([{"start_day": 30, "stop_day": 90, "inhibitor": 5.0}])
        >>> Schedule.combine(tam, inh).concentrations([45.0], ("tamoxifen", "inhibitor"))
        array([[1., 5.]])
        """
        if not schedules:
            raise ValueError("`schedules` is empty: give at least one Schedule to combine")
        for i, schedule in enumerate(schedules):
            if not isinstance(schedule, Schedule):
                raise TypeError(f"`schedules[{i}]` = {schedule!r}: expected a Schedule")
        return cls(
            max(s.duration_days for s in schedules),
            phases=tuple(p for s in schedules for p in s.phases),
            oral_doses=tuple(r for s in schedules for r in s.oral_doses),
            pellets=tuple(p for s in schedules for p in s.pellets),
        )

    def _canonical(self) -> tuple:
        """The schedule with its phases, regimens and pellets each in a fixed order."""

        def ordered(items: Sequence[Any]) -> tuple:
            return tuple(sorted(items, key=lambda i: json.dumps(i.to_dict(), sort_keys=True)))

        return (
            self.duration_days,
            ordered(self.phases),
            ordered(self.oral_doses),
            ordered(self.pellets),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self._canonical() == other._canonical()

    def __hash__(self) -> int:
        return hash(self._canonical())

    def __or__(self, other: object) -> Schedule:
        if not isinstance(other, Schedule):
            return NotImplemented
        return Schedule.combine(self, other)

    def then(self, other: Schedule) -> Schedule:
        """This schedule followed by ``other``, shifted to start at this one's end."""
        if not isinstance(other, Schedule):
            raise TypeError(f"`other` = {other!r}: expected a Schedule")
        offset = self.duration_days
        return Schedule(
            offset + other.duration_days,
            phases=self.phases + tuple(p._shifted(offset) for p in other.phases),
            oral_doses=self.oral_doses + tuple(r._shifted(offset) for r in other.oral_doses),
            pellets=self.pellets + tuple(p._shifted(offset) for p in other.pellets),
        )

    def then_withdraw(self, days: float) -> Schedule:
        """This schedule followed by ``days`` without any drug given."""
        days = _as_float(days, "days", "days")
        if not (math.isfinite(days) and days > 0.0):
            raise ValueError(f"`days` = {days!r}: expected a finite number of days > 0")
        return dataclasses.replace(self, duration_days=self.duration_days + days)

    def with_inhibitor(
        self, *, start_day: float, stop_day: float, dose_um: float, drug: str = "inhibitor"
    ) -> Schedule:
        """This schedule plus an in-vitro phase of ``drug`` at ``dose_um`` µM."""
        for name, day in (("start_day", start_day), ("stop_day", stop_day)):
            _check_day(_as_float(day, name, "days"), name, self.duration_days)
        return self | Schedule(
            self.duration_days, phases=(Phase(start_day, stop_day, {drug: dose_um}),)
        )

    # -- queries ------------------------------------------------------------------------------

    @property
    def drugs(self) -> tuple[str, ...]:
        """Sorted names of every drug a regimen of this schedule names."""
        names = {drug for phase in self.phases for drug in phase.drugs}
        names.update(r.drug for r in self.oral_doses)
        names.update(p.drug for p in self.pellets)
        return tuple(sorted(names))

    def breakpoints(self) -> np.ndarray:
        """Sorted unique piece boundaries, days, float64, from 0 to ``duration_days``.

        They are 0, the duration, every phase start and stop, every dose day and every pellet
        start and stop. Between two breakpoints every input is smooth.
        """
        days = [0.0, self.duration_days]
        for phase in self.phases:
            days += [phase.start_day, phase.stop_day]
        for pellet in self.pellets:
            days += [pellet.start_day, pellet.stop_day]
        dose_days = [regimen.dose_days for regimen in self.oral_doses]
        return np.unique(np.concatenate([np.asarray(days, dtype=np.float64), *dose_days]))

    def withdrawal_day(self, drug: str = "tamoxifen") -> float:
        """Last day ``drug`` is given.

        The latest of: the stop day of a phase that sets ``drug`` to a positive level, the
        ``stop_day`` of an oral regimen of it with a positive dose (the day dosing stops, not
        the last dose day; it may lie beyond ``duration_days`` when no dose falls there), and
        the ``stop_day`` of a pellet of it with a positive release.
        """
        days = self._given_days(drug)
        if not days:
            given = ", ".join(repr(d) for d in self.given_drugs) or "no drug"
            named = " (it is named only at level 0)" if drug in self.drugs else ""
            raise ValueError(
                f"`drug` = {drug!r} is never given by this schedule{named}: it gives {given}"
            )
        return max(days)

    def _given_days(self, drug: str) -> list[float]:
        """The stop days of the regimens that give ``drug`` at a positive level."""
        days = [p.stop_day for p in self.phases if p.levels_um.get(drug, 0.0) > 0.0]
        days += [r.stop_day for r in self.oral_doses if r.drug == drug and r.dose_mg > 0.0]
        days += [p.stop_day for p in self.pellets if p.drug == drug and p.release_mg_per_day > 0.0]
        return days

    @property
    def given_drugs(self) -> tuple[str, ...]:
        """Sorted names of the drugs this schedule gives at a positive level (a subset of
        :attr:`drugs`, which also holds drugs named at level 0)."""
        return tuple(drug for drug in self.drugs if self._given_days(drug))

    def treatment_end_day(self) -> float:
        """The end of treatment: the last :meth:`withdrawal_day` of any drug the schedule
        gives at a positive level (:attr:`given_drugs`), at most its ``duration_days``.

        Examples
        --------
        >>> s = Schedule.from_phases([{"days": 60, "tamoxifen": 1.0},
        ...                           {"days": 30, "inhibitor": 5.0}, {"days": 30}])
        >>> s.treatment_end_day()
        90.0
        """
        given = self.given_drugs
        if not given:
            raise ValueError("this schedule gives no drug: it has no end of treatment")
        return min(max(self.withdrawal_day(d) for d in given), self.duration_days)

    # -- compilation --------------------------------------------------------------------------

    def _drug_index(self, drugs: Sequence[str]) -> dict[str, int]:
        if isinstance(drugs, str):
            raise TypeError(f"`drugs` = {drugs!r}: expected a sequence of drug names, not a str")
        order = tuple(_as_list(drugs, "drugs"))
        for i, name in enumerate(order):
            _as_name(name, f"drugs[{i}]")
        if len(set(order)) != len(order):
            raise ValueError(f"`drugs` = {order!r}: drug names must be unique")
        for name in self.drugs:
            if name not in order:
                valid = ", ".join(repr(d) for d in order) or "none"
                raise ValueError(
                    f"the schedule gives {name!r}, which is not in `drugs` = {order!r}: "
                    f"the valid drugs are {valid}"
                )
        return {name: i for i, name in enumerate(order)}

    def compile(
        self, drugs: Sequence[str], *, extra_days: Sequence[float] = ()
    ) -> CompiledSchedule:
        """Arrays of the schedule for the kernels, drug columns in the order of ``drugs``.

        Parameters
        ----------
        drugs : sequence of str
            The model's drugs, in its order; every drug of the schedule must be among them.
        extra_days : sequence of float
            More piece boundaries, days, where a kernel must stop without any input changing
            (e.g. the withdrawal day of an oral regimen, from which recurrence is counted).
            Those outside ``(0, duration_days)`` are ignored.

        Returns
        -------
        CompiledSchedule
            ``n_pieces = len(breakpoints()) - 1`` pieces; one PK channel per oral regimen
            (in order), then one per pellet. ``level_um[k, d]`` sums the phases of drug ``d``
            holding on piece ``k``; ``depot_mg``/``central_mg`` are the exact amounts at each
            piece start (after that day's doses, bioavailability applied); pellets have
            ``ka = ke`` and an empty depot. All float64 C-contiguous, ``channel_drug`` int64.

        Examples
        --------
        >>> s = Schedule.oral("tamoxifen", dose_mg=20, every_days=1, stop_day=2,
        ...                   pk=PK.tamoxifen_human(), duration_days=3)
        >>> c = s.compile(("tamoxifen", "inhibitor"))
        >>> c.level_um.shape, c.depot_mg[:, 0].tolist()[0], c.channel_drug.tolist()
        ((2, 2), 20.0, [0])
        """
        index = self._drug_index(drugs)
        breakpoints = self.breakpoints()
        extra = np.asarray(extra_days, dtype=np.float64).ravel()
        extra = extra[(extra > 0.0) & (extra < self.duration_days)]
        if extra.size:
            breakpoints = np.union1d(breakpoints, extra)
        n_pieces = breakpoints.size - 1
        level_um = np.zeros((n_pieces, len(index)))
        for phase in self.phases:
            k0, k1 = np.searchsorted(breakpoints, [phase.start_day, phase.stop_day])
            for drug, level in phase.concentrations_um:
                level_um[k0:k1, index[drug]] += level

        channels: list[OralDoses | Pellet] = [*self.oral_doses, *self.pellets]
        n_channels = len(channels)
        channel_drug = np.array([index[c.drug] for c in channels], dtype=np.int64)
        channel_ka = np.empty(n_channels)
        channel_ke = np.empty(n_channels)
        channel_um_per_mg = np.empty(n_channels)
        depot_mg = np.zeros((n_pieces, n_channels))
        central_mg = np.zeros((n_pieces, n_channels))
        infusion_mg_per_day = np.zeros((n_pieces, n_channels))
        piece_days = np.diff(breakpoints)
        amount_at = central_amount.py_func  # same closed form as the kernels, without a JIT
        for ch, regimen in enumerate(channels):
            pk = regimen.pk
            doses_mg = np.zeros(n_pieces)
            if isinstance(regimen, OralDoses):
                ka = pk.ka_per_day
                k = np.searchsorted(breakpoints, regimen.dose_days)
                doses_mg[k] = pk.bioavailability * regimen.dose_mg
            else:
                ka = pk.ke_per_day
                k0, k1 = np.searchsorted(breakpoints, [regimen.start_day, regimen.stop_day])
                infusion_mg_per_day[k0:k1, ch] = regimen.release_mg_per_day
            ke = pk.ke_per_day
            channel_ka[ch], channel_ke[ch], channel_um_per_mg[ch] = ka, ke, pk.um_per_mg
            depot, central = 0.0, 0.0
            for k in range(n_pieces):
                depot += doses_mg[k]
                depot_mg[k, ch], central_mg[k, ch] = depot, central
                tau = piece_days[k]
                central = float(amount_at(tau, depot, central, infusion_mg_per_day[k, ch], ka, ke))
                depot *= math.exp(-ka * tau)
        return CompiledSchedule(
            breakpoints_days=np.ascontiguousarray(breakpoints, dtype=np.float64),
            level_um=level_um,
            channel_drug=channel_drug,
            channel_ka_per_day=channel_ka,
            channel_ke_per_day=channel_ke,
            channel_um_per_mg=channel_um_per_mg,
            depot_mg=depot_mg,
            central_mg=central_mg,
            infusion_mg_per_day=infusion_mg_per_day,
        )

    def concentrations(self, times: Any, drugs: Sequence[str] | None = None) -> np.ndarray:
        """Concentration of each drug (µM) at each of ``times`` (days).

        Parameters
        ----------
        times : (n_times,) array_like
            Days within ``[0, duration_days]``; a breakpoint belongs to the piece it starts.
        drugs : sequence of str, optional
            Column order; default :attr:`drugs`.

        Returns
        -------
        (n_times, n_drugs) ndarray of float64
        """
        drugs = self.drugs if drugs is None else drugs
        compiled = self.compile(drugs)
        times = np.ascontiguousarray(times, dtype=np.float64)
        if times.ndim != 1:
            raise ValueError(f"`times` has shape {times.shape}: expected a 1-D array of days")
        outside = ~((times >= 0.0) & (times <= self.duration_days))
        if outside.any():
            raise ValueError(
                f"`times` holds {float(times[outside][0])!r}: times must lie within the schedule, "
                f"[0, {_fmt(self.duration_days)}] days"
            )
        return concentrations_at(times, compiled, compiled.level_um.shape[1])

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (floats, str, lists, dicts): the inverse of :meth:`from_dict`."""
        return {
            "duration_days": self.duration_days,
            "phases": [phase.to_dict() for phase in self.phases],
            "oral_doses": [regimen.to_dict() for regimen in self.oral_doses],
            "pellets": [pellet.to_dict() for pellet in self.pellets],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        """Schedule from a dict as written by :meth:`to_dict` (unknown keys are errors).

        Examples
        --------
        >>> s = Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}])
        >>> Schedule.from_dict(s.to_dict()) == s
        True
        """
        data = _check_keys(
            data, "schedule", ("duration_days",), ("phases", "oral_doses", "pellets")
        )
        phases = [
            _from_mapping(Phase, item, f"phases[{i}]")
            for i, item in enumerate(_as_list(data.get("phases", []), "phases"))
        ]
        oral_doses = [
            _from_mapping(OralDoses, item, f"oral_doses[{i}]", pk=_pk_from_dict)
            for i, item in enumerate(_as_list(data.get("oral_doses", []), "oral_doses"))
        ]
        pellets = [
            _from_mapping(Pellet, item, f"pellets[{i}]", pk=_pk_from_dict)
            for i, item in enumerate(_as_list(data.get("pellets", []), "pellets"))
        ]
        return cls(data["duration_days"], tuple(phases), tuple(oral_doses), tuple(pellets))

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict` (``kwargs`` go to :func:`json.dumps`, e.g. indent)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        """Schedule from JSON text written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def to_toml(self) -> str:
        """TOML text of :meth:`to_dict`."""
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> Schedule:
        """Schedule from TOML text written by :meth:`to_toml`."""
        return cls.from_dict(tomllib.loads(text))

    # -- display ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        """A summary: what each phase, oral regimen and pellet gives when (:meth:`describe`);
        :meth:`to_toml` writes the schedule exactly."""

        def count(n: int, what: str) -> str:
            return f"{n} {what}{'' if n == 1 else 's'}"

        head = (
            f"<tolsim Schedule over {_fmt(self.duration_days)} days: "
            f"{count(len(self.phases), 'phase')}, {count(len(self.oral_doses), 'oral regimen')}, "
            f"{count(len(self.pellets), 'pellet')}>"
        )
        return "\n".join([head, *self.describe().splitlines()[1:]])

    def describe(self) -> str:
        """A few lines saying what is given when."""
        lines = [f"Schedule over {_fmt(self.duration_days)} days"]
        for phase in sorted(self.phases, key=lambda p: (p.start_day, p.stop_day)):
            levels = ", ".join(f"{d} {_fmt(v)} µM" for d, v in phase.concentrations_um)
            lines.append(
                f"  days {_fmt(phase.start_day)}-{_fmt(phase.stop_day)}: {levels or 'no drug'}"
            )
        for r in self.oral_doses:
            lines.append(
                f"  {r.drug} orally {_fmt(r.dose_mg)} mg every {_fmt(r.every_days)} days, "
                f"days {_fmt(r.start_day)}-{_fmt(r.stop_day)} ({r.dose_days.size} doses; "
                f"{_pk_summary(r.pk)})"
            )
        for p in self.pellets:
            lines.append(
                f"  {p.drug} pellet {_fmt(p.release_mg_per_day)} mg/day, "
                f"days {_fmt(p.start_day)}-{_fmt(p.stop_day)} ({_pk_summary(p.pk)})"
            )
        return "\n".join(lines)


def _pk_summary(pk: PK) -> str:
    species = f"{pk.species}, " if pk.species else ""
    return f"{species}half-life {_fmt(pk.half_life_days)} days"
