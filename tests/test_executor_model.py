"""Executor model: DLRM's hand-written backward against finite differences (float64), and the
metrics against their definitions."""
import numpy as np
import pytest

from cachesim.executor.model import DLRM, log_loss_from_logits, model_shape
from cachesim.executor.train import accuracy, auc_score, log_loss


def _tiny(bag_mode: str, seed=0):
    rng = np.random.default_rng(seed)
    B, T, D, n_dense = 5, 3, 4, 2
    shape = model_shape({"bottom": (3,), "top": (5, 3)}, n_dense, T, D)
    model = DLRM(shape, seed=seed, dtype=np.float64)
    dense = rng.integers(0, 20, (B, n_dense)).astype(np.float64)
    labels = rng.integers(0, 2, B).astype(np.float64)
    if bag_mode == "onehot":
        # one access per (sample, table), sample-major; rows repeat across samples
        n_rows = 7
        inverse = rng.integers(0, n_rows, B * T)
        inverse[:n_rows] = np.arange(n_rows)  # every unique row used
        bag = None
    else:
        # multi-hot: bags of 0..3 accesses, the same row twice in one bag sometimes
        bags, inv = [], []
        for s in range(B):
            for t in range(T):
                for _ in range(rng.integers(0, 4)):
                    bags.append(s * T + t)
                    inv.append(rng.integers(0, 6))
        bags.append(0), inv.append(inv[0] if inv else 0)  # a repeat inside one bag
        bag = np.array(bags)
        _, inverse = np.unique(np.array(inv), return_inverse=True)
        n_rows = int(inverse.max()) + 1
    rows = rng.normal(0, 0.5, (n_rows, D))
    return model, dense, rows, inverse, labels, bag


@pytest.mark.parametrize("bag_mode", ["onehot", "multihot"])
def test_gradients_match_finite_differences(bag_mode):
    model, dense, rows, inverse, labels, bag = _tiny(bag_mode)
    loss, grads, d_rows = model.forward_backward(dense, rows, inverse, labels, bag=bag)

    def f():
        return float(log_loss_from_logits(np, model.forward(dense, rows, inverse, bag=bag), labels))
    assert abs(float(loss) - f()) < 1e-12
    h = 1e-6
    checked = 0
    for name, p in model.params.items():
        flat = p.reshape(-1)
        for i in range(flat.shape[0]):
            old = flat[i]
            flat[i] = old + h
            up = f()
            flat[i] = old - h
            down = f()
            flat[i] = old
            num = (up - down) / (2 * h)
            assert abs(num - grads[name].reshape(-1)[i]) < 1e-7 * max(1.0, abs(num)), (name, i)
            checked += 1
    for r in range(rows.shape[0]):
        for d in range(rows.shape[1]):
            old = rows[r, d]
            rows[r, d] = old + h
            up = f()
            rows[r, d] = old - h
            down = f()
            rows[r, d] = old
            num = (up - down) / (2 * h)
            assert abs(num - d_rows[r, d]) < 1e-7 * max(1.0, abs(num)), (r, d)
    # the check looked at a gradient that is not all zeros
    assert checked > 50 and np.abs(d_rows).max() > 1e-4


def test_kaggle_preset_is_dlrm_shape():
    s = model_shape("kaggle", 13, 26, 16)
    assert s.bottom_sizes == [13, 512, 256, 64, 16]
    assert s.top_sizes == [16 + 27 * 26 // 2, 512, 256, 1]


def _auc_pairs(y, s):
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_pair_count(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 15, 200) / 7.0  # many ties
    assert auc_score(y, s) == pytest.approx(_auc_pairs(y, s), abs=1e-12)


def test_metrics_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    assert auc_score(y, p) == 0.75
    assert accuracy(y, p) == 0.5
    assert log_loss(y, p) == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.4, 0.9])))
    assert auc_score(np.ones(3), np.arange(3)) is None
