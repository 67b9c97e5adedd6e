"""One batch replay split into parts that never interact, run in separate processes and merged
exactly (`replay_partitioned`, `cachesim replay --jobs N`).

Within a batch, and from batch to batch, a set-associative cache's sets never interact: a key's
set is fixed by its key (fmix64 of the linearised key mod S, in both cache models), and every
rule (lookup, the order of a set's misses, the bitonic network or the ideal model's way choice,
LFU counts, the prefetch pipeline's locks) reads and writes only the key's own set. So the
accesses are split once by their key's set range, part p holding sets [p S / P, (p + 1) S / P);
per-table caches are split by tables instead (each table's cache is its own), tables given out
greedily by accesses. Each part keeps every batch, empty ones included, so batch numbers (the
LRU time steps) stay aligned; each process replays its part on a cache of the whole geometry.

Merging: per-table and per-batch counters are sums over the parts; the batch count is not (each
part sees every batch): FBGEMM's `num_calls` counts the trace's non-empty batches (LRU; 0 under
LFU, as FBGEMM), the ideal model's `calls` the batches. The workers are forked (Linux); where
fork is not available the parts run one after another in this process, with the same result.
"""
from __future__ import annotations

import copy
import multiprocessing as mp
import time

import numba
import numpy as np

from ..errors import CachesimError
from ..hashing import fmix64_array
from .result import DEFAULT_WAYS, Result, resolve_cache_model

_JOB = None  # the job the forked workers read (inherited by fork, never pickled)


@numba.njit(cache=True)
def _take_part(part_of_id, ids, starts, p, ids_out, new_starts):
    """The dense ids of part p's accesses, in order, into ids_out, and each batch's start among
    them into new_starts (one per batch, then the count)."""
    n = 0
    for b in range(starts.shape[0] - 1):
        new_starts[b] = n
        for i in range(starts[b], starts[b + 1]):
            d = ids[i]
            ids_out[n] = d  # branch-free, as _take_part_keys
            n += np.int64(part_of_id[d] == p)
    new_starts[starts.shape[0] - 1] = n


@numba.njit(cache=True)
def _take_part_keys(part_of_id, ids, local_id, starts, p, table, row, offsets, table_rows,
                    keys_out, tables_out, ids_out, new_starts):
    """`_take_part` with FBGEMM's linear keys (row + offsets[table]) and tables of the part's
    accesses, and each key's id within its part (`local_id`: the part's per-key state is then
    dense); returns the first access whose row is outside its table, -1 if none."""
    n = 0
    for b in range(starts.shape[0] - 1):
        new_starts[b] = n
        for i in range(starts[b], starts[b + 1]):
            # branch-free: every access is written at n, and n moves on only for the part's own
            # (the outputs have room for every access); a taken branch per access at random
            # costs more than the writes
            d = ids[i]
            t = table[i]
            r = row[i]
            mine = part_of_id[d] == p
            if (r < 0 or r >= table_rows[t]) and mine:
                return i
            keys_out[n] = r + offsets[t]
            tables_out[n] = t
            ids_out[n] = local_id[d]
            n += np.int64(mine)
    new_starts[starts.shape[0] - 1] = n
    return -1


def balance_tables(accesses, parts: int) -> np.ndarray:
    """Part of each table: the tables by descending accesses, each to the least loaded part."""
    load = np.zeros(parts, dtype=np.int64)
    out = np.zeros(len(accesses), dtype=np.int8)
    for t in np.argsort(-np.asarray(accesses), kind="stable"):
        p = int(np.argmin(load))
        out[t] = p
        load[p] += int(accesses[t])
    return out


def local_ids(part_of_id, parts: int) -> np.ndarray:
    """Each key's number among the keys of its part, 0, 1, ... in id order (int32)."""
    out = np.empty(part_of_id.shape[0], dtype=np.int32)
    for p in range(parts):
        mine = part_of_id == p
        out[mine] = np.arange(int(mine.sum()), dtype=np.int32)
    return out


def _by_tables(trace, parts: int):
    """(parts used, part of each key) for per-table caches: whole tables, balanced by accesses."""
    units = min(parts, trace.n_tables)
    table_part = balance_tables(np.bincount(trace.table, minlength=trace.n_tables), units)
    return units, table_part[trace.key_table]


def _set_ranges(sets, n_sets: int, parts: int) -> np.ndarray:
    """Part of each set: contiguous ranges of (nearly) n_sets / parts sets."""
    return (np.asarray(sets, dtype=np.int64) * parts // n_sets).astype(np.int8)


def _worker(p: int, cache=None):
    """Replay part p on `cache`, by default this process's copy of the job's empty cache;
    (per-table counters, per-batch counters or the batch count), or ("bad row", access) when a
    row is outside its table."""
    job = _JOB
    if cache is None:
        cache = job["cache"]  # this forked process's own (copy-on-write) empty cache
    ids, starts, part_of_id = job["ids"], job["starts"], job["part_of_id"]
    # room for every access: only the pages written (this part's) are ever touched
    new_starts = np.empty(starts.shape[0], dtype=np.int64)
    ids_p = np.empty(ids.shape[0], dtype=ids.dtype)
    if job["model"] == "fbgemm":
        keys = np.empty(ids.shape[0], dtype=np.int64)
        tables = np.empty(ids.shape[0], dtype=job["table"].dtype)
        bad = int(_take_part_keys(part_of_id, ids, job["local_id"], starts, np.int8(p),
                                  job["table"], job["row"], cache.offsets, job["table_rows"],
                                  keys, tables, ids_p, new_starts))
        if bad >= 0:
            return "bad row", bad
        n = new_starts[-1]
        cache._run(keys[:n], tables[:n], ids_p[:n], new_starts)
        return cache.table_counts.copy(), cache.per_batch()
    _take_part(part_of_id, ids, starts, np.int8(p), ids_p, new_starts)
    cache.run(ids_p[:new_starts[-1]], new_starts)
    return cache.counters.copy(), cache.calls


def _child(p: int, send) -> None:
    """A forked worker: part p's result (or its error) back through `send`."""
    try:
        send.send(("ok", _worker(p)))
    except CachesimError as e:
        send.send(("raise", e))
    except BaseException as e:  # noqa: BLE001 -- reported in the parent
        send.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        send.close()


def _run_parts(job, parts: int, cache):
    """Results of _worker(p) for every part, each on its own copy of the empty `cache`: parts
    1.. in processes forked first, while this process runs part 0 on `cache` itself, or all
    serially (one part, or no fork) on deep copies."""
    global _JOB
    try:
        ctx = mp.get_context("fork")
    except ValueError:
        ctx = None
    _JOB = dict(job, cache=cache)  # the forked workers' copies (of the empty cache)
    try:
        if ctx is None or parts == 1:
            return [_worker(p, copy.deepcopy(cache)) for p in range(parts)]
        pipes, procs = [], []
        for p in range(1, parts):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(p, send), daemon=True)
            proc.start()  # forks now: the child holds the job and the empty cache as they are
            send.close()
            pipes.append(recv)
            procs.append(proc)
        out = [_worker(0, cache)]  # the children were forked from the empty cache already
        for p, (recv, proc) in enumerate(zip(pipes, procs), start=1):
            try:
                status, value = recv.recv()
            except EOFError:
                status, value = "error", f"worker process for part {p} died"
            proc.join()
            if status == "error":
                raise CachesimError(f"replay part {p} of {parts} failed: {value}")
            if status == "raise":
                raise value
            out.append(value)
        return out
    finally:
        _JOB = None


def replay_partitioned(trace, policy="lru", capacity="5%", parts: int = 2, ways=DEFAULT_WAYS, *,
                       per_table: bool = False, inference: bool = False, cache_model=None,
                       prefetch_pipeline: bool = False, warp=None) -> Result:
    """`replay_batch(trace, policy, capacity, ways, ...)` split into `parts` processes (by set
    ranges, or by tables with `per_table`), merged to exactly its `Result` (only `seconds`, the
    wall time of the whole split replay, differs). A cache with fewer sets (tables) than `parts`
    runs in that many parts; a fully associative unified cache (one set) runs in one."""
    parts = int(parts)
    if parts < 1 or parts > 127:
        raise CachesimError(f"--jobs {parts}: give 1 to 127 processes")
    model = resolve_cache_model(cache_model)
    t0 = time.perf_counter()
    trace.require_nonempty()
    starts = trace.batch_starts
    ids = np.ascontiguousarray(trace.dense_ids)
    job = {"model": model, "ids": ids, "starts": starts}
    if model == "fbgemm":
        from .batch import batch_policy
        from .fbgemm import N_CALLS, REQ, fbgemm_cache_for, fbgemm_result, feed_arrays
        name = batch_policy(policy).name
        cache, size_text, load_factor = fbgemm_cache_for(
            trace, name, capacity, ways, per_table=per_table, warp=warp,
            prefetch_pipeline=prefetch_pipeline, stacklevel=3)
        table = np.ascontiguousarray(trace.table)
        job.update(table=table if table.dtype in (np.int32, np.int64) else table.astype(np.int64),
                   row=np.ascontiguousarray(trace.row, dtype=np.int64),
                   table_rows=np.asarray(trace.table_rows, dtype=np.int64))
        if per_table:
            units, part_of_id = _by_tables(trace, parts)
        else:
            units = min(parts, cache.n_sets)
            if np.array_equal(cache.offsets, trace.table_offsets):
                key_of_id = trace.distinct_keys  # the trace's linearisation is FBGEMM's
            else:  # a table of 0 rows: FBGEMM's tables have at least one
                key_of_id = cache.offsets[trace.key_table] + (
                    trace.distinct_keys - trace.table_offsets[trace.key_table])
            sets = fmix64_array(key_of_id) % np.uint64(cache.n_sets)
            part_of_id = _set_ranges(sets.astype(np.int64), cache.n_sets, units)
        job["part_of_id"] = part_of_id
        job["local_id"] = local_ids(part_of_id, units)
        res = _run_parts(job, units, cache)
        if any(isinstance(r[0], str) for r in res):
            feed_arrays(trace, cache)  # raises the replay's own error for the first bad row
            raise AssertionError("a part found a row outside its table; feed_arrays did not")
        cache.table_counts = sum(r[0] for r in res)
        pb = sum(r[1] for r in res)
        pb[:, N_CALLS] = (pb[:, REQ] > 0) if cache.policy == "lru" else 0
        cache.batches = [pb]
        return fbgemm_result(trace, cache, size_text, load_factor, time.perf_counter() - t0,
                             inference=inference)
    from .batch import (
        KR_SET,
        TABLE_BITS,
        BatchCache,
        batch_policy,
        batch_result,
        ideal_capacity,
    )
    if prefetch_pipeline or warp is not None:
        raise CachesimError("--prefetch-pipeline and --warp model FBGEMM's cache: they need "
                            "--cache-model fbgemm (the ideal model has no pipeline or warp)")
    name = batch_policy(policy).name
    cap_arg, size_text = ideal_capacity(trace, capacity, per_table)
    cache = BatchCache.for_trace(trace, cap_arg, ways=ways, policy=name)
    if per_table:
        units, job["part_of_id"] = _by_tables(trace, parts)
    else:
        units = min(parts, cache.n_sets)
        sets = cache._state.keyrec[:, KR_SET] >> TABLE_BITS
        job["part_of_id"] = _set_ranges(sets, cache.n_sets, units)
    res = _run_parts(job, units, cache)
    cache.counters = sum(r[0] for r in res)
    cache.calls = res[0][1]
    return batch_result(trace, cache, size_text, time.perf_counter() - t0, inference=inference)
