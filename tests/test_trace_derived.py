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
    tr.batch = tr.sample // 100
    assert tr.batch_starts.tolist() == [0, 400, 800, 1200]
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
