"""Numba kernels: arrays and scalars in, preallocated arrays out; no validation here."""
