"""A trace is a value: the columns it derives (keys, dense ids, batch starts) follow the columns
they derive from, and a re-batched trace never sees its parent's batch boundaries."""
import numpy as np
import pytest

import cachesim
from cachesim.errors import CachesimError
from cachesim.executor.train import with_batches
from cachesim.simulate.batch import replay_batch


def _batched(n_samples=300, per_sample=4, samples_per_batch=8, seed=5):
    rng = np.random.default_rng(seed)
    n = n_samples * per_sample
    sample = np.repeat(np.arange(n_samples, dtype=np.int64), per_sample)
    return cachesim.Trace(table=rng.integers(0, 2, n), row=rng.integers(0, 50, n),
                          sample=sample, batch=sample // samples_per_batch,
                          table_rows=np.array([50, 50]))


def test_rebatching_after_a_replay_uses_the_new_batches():
    """replay_batch(with_batches(tr, 20)) counts 300 / 20 = 15 calls on a fresh trace, and
    still 15 after an earlier replay of tr itself (its 38 batches of 8 samples)."""
    fresh = replay_batch(with_batches(_batched(), 20), "lru", 40)
    tr = _batched()
    assert replay_batch(tr, "lru", 40).calls == 38  # ceil(300 / 8)
    again = replay_batch(with_batches(tr, 20), "lru", 40)
    assert fresh.calls == again.calls == 15
    assert again.to_record() | {"seconds": 0} == fresh.to_record() | {"seconds": 0}


def test_reassigned_columns_are_derived_again():
    tr = _batched()
    assert tr.batch_starts.shape[0] == 38 + 1
    assert tr.n_batches == 38  # ceil(300 / 8)
    tr.batch = tr.sample // 100
    assert tr.batch_starts.tolist() == [0, 400, 800, 1200]
    assert tr.n_batches == 3
    tr.batch = np.where(tr.sample < 150, 7, 2)  # distinct values, not the largest + 1
    assert tr.n_batches == 2
    tr.batch = None
    assert tr.n_batches == 0
    keys = tr.keys
    tr.row = (tr.row + 1) % 50
    assert not np.array_equal(tr.keys, keys)
    assert np.array_equal(tr.keys, tr.row + 50 * tr.table)
    # the dense ids follow the new keys: each dense id maps back to its access's key
    assert np.array_equal(tr.distinct_keys[tr.dense_ids], tr.keys)


def test_batch_starts_checks_the_batches():
    with pytest.raises(CachesimError, match="no batches"):
        cachesim.Trace.from_keys([1, 2, 3]).batch_starts
    with pytest.raises(CachesimError, match="access 2 has batch 0 after batch 1"):
        cachesim.Trace.from_keys([1, 2, 3], batch=[0, 1, 0]).batch_starts


def test_keymap_direct_table_then_hashing_numbers_as_dense_remap():
    """A KeyMap numbers row ids through its direct table and moves to hashing at the first key
    outside [0, DIRECT_KEYMAP_MAX) (here a negative one, then a huge one), keeping every id."""
    from cachesim.trace import DIRECT_KEYMAP_MAX, KeyMap, dense_remap
    rng = np.random.default_rng(4)
    parts = [rng.integers(0, 5000, 3000), rng.integers(0, 70000, 3000),  # the table grows
             np.array([-5, 3, -5]), rng.integers(0, 9000, 2000),
             np.array([DIRECT_KEYMAP_MAX, 1 << 62]), rng.integers(0, 90000, 4000)]
    for cut in (2, 4, 6):  # direct throughout (2), then hashing from the 3rd or 5th chunk
        km = KeyMap()
        got = np.concatenate([km.add(p) for p in parts[:cut]])
        assert (km._first is not None) == (cut == 2)
        want_ids, want_keys = dense_remap(np.concatenate(parts[:cut]))
        assert np.array_equal(got, want_ids)
        assert np.array_equal(km.distinct_keys, want_keys)
        assert np.array_equal(km.lookup(np.concatenate(parts[:cut])), want_ids)
    km = KeyMap()
    km.add(np.arange(10))
    with pytest.raises(cachesim.CachesimError, match="not in its first pass"):
        km.lookup(np.array([3, 11]))
