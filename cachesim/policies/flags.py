"""Per-key flags packed into bytes: 1 bit a key (`bit_*`) or 2 bits a key (`pair_*`).

A policy whose per-key state is a flag or two keeps it here instead of a byte a key: at 16.7M
keys that is 2 MB (bits) or 4 MB (pairs) against 16.7 MB, so the state of every key stays in the
processor's caches, and two replays at once (a sweep on two cores) stop evicting each other's
state (bench/RESULTS.md, session 7). Not a policy: base._NOT_POLICIES names this module.
"""
from __future__ import annotations

import numba
import numpy as np


def bits(n: int) -> np.ndarray:
    """Room for n one-bit flags, all clear."""
    return np.zeros((n + 7) >> 3, dtype=np.uint8)


def pairs(n: int) -> np.ndarray:
    """Room for n two-bit flags (values 0-3), all 0."""
    return np.zeros((n + 3) >> 2, dtype=np.uint8)


@numba.njit(cache=True, inline="always")
def bit_get(b, k):
    return (b[k >> 3] >> (k & 7)) & 1


@numba.njit(cache=True, inline="always")
def bit_set(b, k):
    b[k >> 3] |= 1 << (k & 7)


@numba.njit(cache=True, inline="always")
def bit_clear(b, k):
    b[k >> 3] &= 0xFF ^ (1 << (k & 7))  # (not ~: a negative mask overflows uint8 in numpy)


@numba.njit(cache=True, inline="always")
def pair_get(b, k):
    return (b[k >> 2] >> ((k & 3) << 1)) & 3


@numba.njit(cache=True, inline="always")
def pair_put(b, k, v):
    s = (k & 3) << 1
    b[k >> 2] = (b[k >> 2] & (0xFF ^ (3 << s))) | (v << s)


def bit_values(b: np.ndarray, n: int) -> np.ndarray:
    """The first n one-bit flags as a uint8 array (for inspection, not kernels)."""
    return np.unpackbits(b, bitorder="little")[:n]


def pair_values(b: np.ndarray, n: int) -> np.ndarray:
    """The first n two-bit flags as a uint8 array (for inspection, not kernels)."""
    return ((b[:, None] >> np.array([0, 2, 4, 6], dtype=np.uint8)) & 3).reshape(-1)[:n]
