"""The helpers the package keeps one of: trace fingerprint and sub-traces, fmix64 over arrays,
the JSON-safe conversion, the prefetch hint and the planted teacher's labels."""
from __future__ import annotations

import json
import math

import numba
import numpy as np
import pytest

import cachesim
from cachesim.files import jsonable
from cachesim.hashing import fmix64_array, set_index
from cachesim.numba_util import prefetch
from cachesim.synth.teacher import sample_scores, teacher_labels

M64 = (1 << 64) - 1


def _fmix64_py(k: int) -> int:
    """MurmurHash3's fmix64 on Python ints (the obviously right twin)."""
    k &= M64
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & M64
    return k ^ (k >> 33)


def _trace(seed=0, n=600):
    rng = np.random.default_rng(seed)
    return cachesim.Trace(table=rng.integers(0, 3, n), row=rng.integers(0, 50, n),
                          batch=np.arange(n) // 40, sample=np.arange(n) // 3,
                          table_names=["a", "b", "c"], table_rows=[50, 60, 70], source="t")


def test_fmix64_array_matches_murmur3():
    keys = np.random.default_rng(1).integers(-2**63, 2**63 - 1, 200, dtype=np.int64)
    want = [_fmix64_py(int(k)) for k in keys]
    assert fmix64_array(keys.view(np.uint64)).tolist() == want
    assert fmix64_array(np.array([0], np.uint64))[0] == 0
    assert set_index(keys, 7).tolist() == [w % 7 for w in want]


def test_fingerprint_follows_keys_batches_and_tables():
    base = _trace().fingerprint()
    assert len(base) == 32 and _trace().fingerprint() == base  # an equal trace, built again
    row = _trace().row.copy()
    row[5] += 1
    tr = _trace()
    assert cachesim.Trace(table=tr.table, row=row, batch=tr.batch, table_names=tr.table_names,
                          table_rows=tr.table_rows).fingerprint() != base
    rebatched = _trace()
    rebatched.batch = np.arange(len(rebatched)) // 20
    assert rebatched.fingerprint() != base
    grown = _trace()
    grown.table_rows = np.array([50, 60, 71])
    assert grown.fingerprint() != base


def test_take_and_per_table():
    tr = _trace()
    part = tr.take(slice(100, 200))
    assert part.row.tolist() == tr.row[100:200].tolist()
    assert part.batch.tolist() == tr.batch[100:200].tolist()
    assert part.table_names == tr.table_names and part.table_rows.tolist() == [50, 60, 70]
    sampled = tr.take(tr.row % 2 == 0, batches=False, source="even")
    assert sampled.batch is None and sampled.source == "even"
    assert sampled.sample.tolist() == tr.sample[tr.row % 2 == 0].tolist()
    seen = []
    for t, sub in tr.per_table():
        mask = tr.table == t
        assert sub.n_tables == 1 and sub.table_names == [tr.table_names[t]]
        assert sub.table_rows.tolist() == [tr.table_rows[t]]
        assert sub.row.tolist() == tr.row[mask].tolist()
        assert sub.batch.tolist() == tr.batch[mask].tolist()
        seen.append(t)
    assert seen == [0, 1, 2]
    only_b = tr.take(tr.table == 1)
    assert [t for t, _ in only_b.per_table()] == [1]


def test_jsonable_writes_strict_json():
    obj = {1: (np.int64(3), np.float32(0.5)), "a": np.array([[1, 2]]), "nan": float("nan"),
           "inf": np.float64(math.inf), "ok": np.bool_(True)}
    out = jsonable(obj)
    assert out == {"1": [3, 0.5], "a": [[1, 2]], "nan": None, "inf": None, "ok": True}
    json.dumps(out, allow_nan=False)
    assert type(out["1"][0]) is int and type(out["ok"]) is bool


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no LLVM IR without the JIT")
def test_prefetch_is_an_llvm_hint_in_kernels_and_nothing_in_python():
    @numba.njit
    def total(a, ids):
        s = 0
        for i in range(ids.shape[0]):
            if i + 2 < ids.shape[0]:
                prefetch(a, ids[i + 2])
            s += a.ravel()[ids[i]]
        return s

    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    ids = np.array([11, 0, 5, 7])
    assert total(a, ids) == 23
    assert "llvm.prefetch" in "".join(total.inspect_llvm().values())
    assert prefetch(a, 3) is None


def test_teacher_labels_follow_the_row_scores():
    tr = cachesim.generate(4000, tables=3, rows=300, alpha=0.9, seed=5)
    labels = teacher_labels(tr, tr.sample, 4000, seed=11)
    assert labels.dtype == np.float32 and set(np.unique(labels)) <= {0.0, 1.0}
    assert abs(labels.mean() - 0.2182) < 0.03           # the Criteo positive rate
    score = sample_scores(tr, tr.sample, 4000, 11)
    assert score[labels == 1].mean() > score[labels == 0].mean() + 0.2
    assert np.array_equal(labels, teacher_labels(tr, tr.sample, 4000, seed=11))
    assert not np.array_equal(labels, teacher_labels(tr, tr.sample, 4000, seed=12))
