"""SIEVE: a FIFO queue with one visited bit per object and a hand that sifts out the unvisited.

A hit sets the object's visited bit and moves nothing. New objects go in at the head. To evict,
the hand walks from where it last stopped (at first, the tail: the oldest object) towards the
head, clearing visited bits, wrapping to the tail; the first unvisited object is evicted and the
hand stays on the next-newer object (libCacheSim's `Sieve.c`, Zhang et al., NSDI'24).

State: `link[k] = (newer, older)` neighbours in the queue (-1 at the ends), `flag[k]` = 0 absent,
1 resident, 2 resident and visited, and `meta` = [head (newest), tail (oldest), hand (-1: start
at the tail)]; the request loop (`base.request_loop`) does the rest.
"""
from __future__ import annotations

import numba
import numpy as np

from .base import Policy, Setup, loop_state, register, request_loop
from .clock import hit  # the same visited bit: st[1] is flag, 2 after a hit

NEWER, OLDER = 0, 1


def init(setup: Setup) -> tuple:
    n = setup.n_keys
    link = np.full((n, 2), -1, dtype=np.int32)
    flag = np.zeros(n, dtype=np.uint8)
    return loop_state(setup, (link, flag, np.array([-1, -1, -1], dtype=np.int64)))


@numba.njit(cache=True, inline="always")
def evict(st, now):
    link, flag, meta = st
    tail = meta[1]
    v = meta[2] if meta[2] != -1 else tail
    while flag[v] == 2:  # visited: clear and move towards the head, wrapping
        flag[v] = 1
        v = link[v, NEWER]
        if v == -1:
            v = tail
    hand = link[v, NEWER]
    older = link[v, OLDER]
    if hand != -1:
        link[hand, OLDER] = older
    else:
        meta[0] = older
    if older != -1:
        link[older, NEWER] = hand
    else:
        meta[1] = hand
    meta[2] = hand
    flag[v] = 0
    return v


@numba.njit(cache=True, inline="always")
def insert(st, k, now, nx):
    link, flag, meta = st
    head = meta[0]
    flag[k] = 1
    link[k, NEWER] = -1
    link[k, OLDER] = head
    if head != -1:
        link[head, NEWER] = k
    else:
        meta[1] = k
    meta[0] = k


kernel = request_loop(globals(), hit=hit, insert=insert, evict=evict)

POLICY = register(Policy(
    name="sieve", kernel=kernel, init=init, aliases=("sieve-fifo",),
    description="FIFO queue with a visited bit; a moving hand evicts the first unvisited key"))
