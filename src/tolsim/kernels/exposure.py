"""Drug concentrations from a compiled schedule (numba; arrays and scalars only).

A schedule is compiled (:meth:`tolsim.Schedule.compile`) into *pieces* between sorted
breakpoints. Inside a piece every input is smooth: in-vitro concentrations are constant, and
each pharmacokinetic *channel* (one oral regimen or one pellet, one-compartment model with
first-order absorption ``ka`` and elimination ``ke``) evolves in closed form from the amounts
it holds at the start of the piece. Doses are jumps of the depot amount at a breakpoint, so a
solver that integrates piece by piece never steps over a dose (the superposition of Bateman
functions, evaluated exactly, keeps the cell equations non-stiff however fast the PK).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit


class CompiledSchedule(NamedTuple):
    """Arrays a kernel reads to evaluate concentrations (all float64 unless noted).

    Attributes
    ----------
    breakpoints_days : (n_pieces + 1,)
        Sorted piece boundaries, from 0 to the schedule's duration.
    level_um : (n_pieces, n_drugs)
        Piecewise-constant (in-vitro) concentration of each drug over each piece, µM.
    channel_drug : (n_channels,) int64
        Drug index (column of ``level_um``) that each PK channel adds to.
    channel_ka_per_day, channel_ke_per_day : (n_channels,)
        First-order absorption and elimination rate constants.
    channel_um_per_mg : (n_channels,)
        Concentration per amount in the central compartment, ``1000 / (V_L * M_g_per_mol)``.
    depot_mg : (n_pieces, n_channels)
        Amount in the absorption depot at the start of each piece (after the doses given at
        that breakpoint, bioavailability applied).
    central_mg : (n_pieces, n_channels)
        Amount in the central compartment at the start of each piece.
    infusion_mg_per_day : (n_pieces, n_channels)
        Zero-order input into the central compartment during each piece (pellets).
    """

    breakpoints_days: np.ndarray
    level_um: np.ndarray
    channel_drug: np.ndarray
    channel_ka_per_day: np.ndarray
    channel_ke_per_day: np.ndarray
    channel_um_per_mg: np.ndarray
    depot_mg: np.ndarray
    central_mg: np.ndarray
    infusion_mg_per_day: np.ndarray


@njit(cache=True, error_model="numpy", inline="always")
def central_amount(tau, depot0, central0, infusion, ka, ke):
    """Amount in the central compartment ``tau`` days into a piece (closed form).

    Solves ``dA_g/dt = -ka A_g``, ``dA_c/dt = ka A_g - ke A_c + infusion`` from
    ``(depot0, central0)``. The absorbed dose's term ``ka / (ka - ke) (e^(-ke tau) -
    e^(-ka tau))`` cancels where ``|ka - ke| tau`` is small (it lost ``1 / |ka/ke - 1|`` of
    the precision near ``ka = ke``, and more just after a dose): there, below 1, it is
    evaluated as ``ka e^(-k tau) (1 - e^(-|ka - ke| tau)) / |ka - ke|`` with ``k`` the
    smaller rate and ``expm1`` (full precision however close; its ``ka == ke`` limit ``ka
    tau e^(-ke tau)`` is the series' first term); above, as the difference (a few ulps, and
    one ``expm1`` fewer: 20% of a PK solve's time).
    """
    decay_e = np.exp(-ke * tau)
    amount = central0 * decay_e
    if depot0 != 0.0:
        gap = abs(ka - ke)
        x = gap * tau
        if x >= 1.0:  # no cancellation (a few ulps): the plain difference, the cheapest
            amount += depot0 * ka / (ka - ke) * (decay_e - np.exp(-ka * tau))
        else:
            if x < 1e-12:  # (1 - e^-x) / gap = tau (1 - x/2 + x^2/6 ...): exact to 1e-24
                spread = tau * (1.0 - 0.5 * x)
            else:
                spread = -np.expm1(-x) / gap
            slower = decay_e if ke <= ka else np.exp(-ka * tau)
            amount += depot0 * ka * slower * spread
    if infusion != 0.0:
        amount += infusion / ke * (1.0 - decay_e)
    return amount


# Columns of the per-piece PK table filled by :func:`load_piece`.
PK_DEPOT, PK_CENTRAL, PK_INFUSION, PK_KA, PK_KE, PK_UM_PER_MG, PK_DRUG = range(7)
PK_COLUMNS = 7


@njit(cache=True, error_model="numpy")
def load_piece(sched, piece, level, pk):
    """Copy what a piece needs into small work arrays: ``level`` (n_drugs,) and ``pk``
    (n_channels, PK_COLUMNS).

    Hot loops then read two plain arrays instead of the schedule's nine (each attribute read
    of the named tuple costs a reference-count round trip that numba does not remove).
    """
    for d in range(level.shape[0]):
        level[d] = sched.level_um[piece, d]
    for ch in range(pk.shape[0]):
        pk[ch, PK_DEPOT] = sched.depot_mg[piece, ch]
        pk[ch, PK_CENTRAL] = sched.central_mg[piece, ch]
        pk[ch, PK_INFUSION] = sched.infusion_mg_per_day[piece, ch]
        pk[ch, PK_KA] = sched.channel_ka_per_day[ch]
        pk[ch, PK_KE] = sched.channel_ke_per_day[ch]
        pk[ch, PK_UM_PER_MG] = sched.channel_um_per_mg[ch]
        pk[ch, PK_DRUG] = sched.channel_drug[ch]


@njit(cache=True, error_model="numpy", inline="always")
def piece_concentrations(tau, level, pk, out):
    """Fill ``out[d]`` with the concentration (µM) of drug ``d``, ``tau`` days into a piece
    loaded by :func:`load_piece`."""
    for d in range(out.shape[0]):
        out[d] = level[d]
    for ch in range(pk.shape[0]):
        amount = central_amount(
            tau,
            pk[ch, PK_DEPOT],
            pk[ch, PK_CENTRAL],
            pk[ch, PK_INFUSION],
            pk[ch, PK_KA],
            pk[ch, PK_KE],
        )
        out[int(pk[ch, PK_DRUG])] += pk[ch, PK_UM_PER_MG] * amount


@njit(cache=True, error_model="numpy")
def piece_of(t, breakpoints):
    """Index of the piece holding day ``t`` (a breakpoint belongs to the piece it starts)."""
    n_pieces = breakpoints.shape[0] - 1
    k = np.searchsorted(breakpoints, t, side="right") - 1
    if k < 0:
        k = 0
    if k > n_pieces - 1:
        k = n_pieces - 1
    return k


@njit(cache=True, error_model="numpy")
def concentrations_at(times, sched, n_drugs):
    """Concentrations (µM), shape ``(len(times), n_drugs)``, at arbitrary days."""
    out = np.empty((times.shape[0], n_drugs))
    level = np.empty(n_drugs)
    pk = np.empty((sched.channel_drug.shape[0], PK_COLUMNS))
    for j in range(times.shape[0]):
        piece = piece_of(times[j], sched.breakpoints_days)
        load_piece(sched, piece, level, pk)
        piece_concentrations(times[j] - sched.breakpoints_days[piece], level, pk, out[j])
    return out


@njit(cache=True, error_model="numpy", inline="always")
def hill(concentration, ec50, hill_coefficient):
    """Emax exposure ``C^h / (C^h + EC50^h)`` in [0, 1]; 0 for a zero concentration."""
    if concentration <= 0.0:
        return 0.0
    if hill_coefficient == 1.0:
        return concentration / (concentration + ec50)  # no pow() in the common case
    ratio = (ec50 / concentration) ** hill_coefficient
    return 1.0 / (1.0 + ratio)
