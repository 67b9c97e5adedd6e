"""DLRM with its forward and backward written out (no autograd), over an array module `xp`.

Forward for a batch of B samples over T tables of dimension D:
  x0 = log(1 + max(dense, 0))                  dense counts, as DLRM does for Criteo
  x  = bottom MLP(x0), ReLU after every layer  [B, D]
  E  = one embedding bag (sum) per table       [B, T, D], from the batch's unique rows U
  Z  = [x, E_0 .. E_{T-1}]                     [B, F, D], F = T + 1
  P  = (Z Z^T) below the diagonal              [B, F(F-1)/2]  (DLRM's "dot" interaction)
  logit = top MLP([x, P]), ReLU between layers, none after the last (one output)
  loss = mean log loss of sigmoid(logit) against the labels
`forward_backward` returns the loss, the gradient of every MLP weight and the gradient of every
unique embedding row (repeats summed), so an embedding store can apply it row by row.

Presets: "kaggle" is DLRM's Criteo Kaggle shape (dim 16, bottom 13-512-256-64-16, top
512-256-1 over the interaction); "medium" and "small" are smaller MLPs for CPU runs and tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import CachesimError
from .xp import scatter_add, segment_sum

# hidden layers only: the bottom MLP ends at the embedding dim, the top MLP at 1
PRESETS = {
    "kaggle": {"bottom": (512, 256, 64), "top": (512, 256)},
    "medium": {"bottom": (64, 32), "top": (64, 32)},
    "small": {"bottom": (8,), "top": (8,)},
}


@dataclass(frozen=True)
class ModelShape:
    n_dense: int
    n_tables: int
    dim: int
    bottom: tuple[int, ...]
    top: tuple[int, ...]

    @property
    def n_features(self) -> int:
        return self.n_tables + 1

    @property
    def n_pairs(self) -> int:
        f = self.n_features
        return f * (f - 1) // 2

    @property
    def bottom_sizes(self) -> list[int]:
        return [self.n_dense, *self.bottom, self.dim]

    @property
    def top_sizes(self) -> list[int]:
        return [self.dim + self.n_pairs, *self.top, 1]

    def describe(self) -> str:
        b = "-".join(map(str, self.bottom_sizes))
        t = "-".join(map(str, self.top_sizes))
        return f"dim {self.dim}, bottom {b}, top {t}"


def model_shape(preset, n_dense: int, n_tables: int, dim: int) -> ModelShape:
    """The shape for a preset name or a dict {'bottom': hidden sizes, 'top': hidden sizes}."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise CachesimError(f"model preset {preset!r} is not one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    return ModelShape(int(n_dense), int(n_tables), int(dim), tuple(int(h) for h in preset["bottom"]),
                      tuple(int(h) for h in preset["top"]))


class DLRM:
    """MLP weights of a DLRM on the array module `xp` (float32, or float64 for gradient checks).
    The embedding rows live outside (a device table, or a cache over a host store)."""

    def __init__(self, shape: ModelShape, xp=np, seed: int = 0, dtype=np.float32):
        self.shape, self.xp, self.dtype = shape, xp, dtype
        rng = np.random.default_rng(seed)
        self.params: dict[str, object] = {}
        # DLRM's init: W ~ N(0, sqrt(2 / (fan_in + fan_out))), b ~ N(0, sqrt(1 / fan_out))
        for name, sizes in (("bot", shape.bottom_sizes), ("top", shape.top_sizes)):
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                w = rng.normal(0.0, math.sqrt(2.0 / (n_in + n_out)), (n_in, n_out))
                b = rng.normal(0.0, math.sqrt(1.0 / n_out), n_out)
                self.params[f"{name}{i}.w"] = xp.asarray(w.astype(dtype))
                self.params[f"{name}{i}.b"] = xp.asarray(b.astype(dtype))
        f = shape.n_features
        li, lj = np.tril_indices(f, -1)
        self._li, self._lj = xp.asarray(li), xp.asarray(lj)

    @property
    def nbytes(self) -> int:
        return int(sum(p.nbytes for p in self.params.values()))

    # -- pieces ------------------------------------------------------------------------------
    def _mlp(self, name: str, n_layers: int, h, last_relu: bool):
        xp = self.xp
        acts = [h]
        for i in range(n_layers):
            h = h @ self.params[f"{name}{i}.w"] + self.params[f"{name}{i}.b"]
            if i < n_layers - 1 or last_relu:
                h = xp.maximum(h, 0)
            acts.append(h)
        return h, acts

    def _mlp_back(self, name: str, n_layers: int, acts, grad, last_relu: bool, grads: dict):
        for i in range(n_layers - 1, -1, -1):
            if i < n_layers - 1 or last_relu:
                grad = grad * (acts[i + 1] > 0)
            grads[f"{name}{i}.w"] = acts[i].T @ grad
            grads[f"{name}{i}.b"] = grad.sum(axis=0)
            grad = grad @ self.params[f"{name}{i}.w"].T
        return grad

    @staticmethod
    def dense_input(xp, dense):
        """log(1 + max(x, 0)) of the dense counts."""
        return xp.log1p(xp.maximum(dense, 0))

    def _bags(self, rows, bag, n_bags: int, inverse):
        """Sum of rows per bag: E[bag[i]] += rows[inverse[i]]; one-hot batches take a gather."""
        xp = self.xp
        if bag is None:  # one row per (sample, table), in order
            return rows[inverse]
        out = xp.zeros((n_bags, rows.shape[1]), dtype=rows.dtype)
        scatter_add(xp, out, bag, rows[inverse])
        return out

    # -- forward / backward ------------------------------------------------------------------
    def forward(self, dense, rows, inverse, bag=None, keep: bool = False):
        """Logits [B] for dense [B, n_dense] and the batch's unique rows [U, D]; access i of the
        batch reads rows[inverse[i]] into bag bag[i] = sample x T + table (bag=None: the accesses
        are exactly one per (sample, table), sample-major)."""
        xp = self.xp
        s = self.shape
        B, T, D = dense.shape[0], s.n_tables, s.dim
        x, bot_acts = self._mlp("bot", len(s.bottom_sizes) - 1, self.dense_input(xp, dense), True)
        emb = self._bags(rows, bag, B * T, inverse).reshape(B, T, D)
        z = xp.concatenate([x[:, None, :], emb], axis=1)           # [B, F, D]
        g = z @ z.transpose(0, 2, 1)                                 # [B, F, F]
        pairs = g[:, self._li, self._lj]                              # [B, F(F-1)/2]
        top_in = xp.concatenate([x, pairs], axis=1)
        logit, top_acts = self._mlp("top", len(s.top_sizes) - 1, top_in, False)
        logit = logit[:, 0]
        if keep:
            return logit, (bot_acts, top_acts, z)
        return logit

    def forward_backward(self, dense, rows, inverse, labels, bag=None):
        """(mean log loss as a 0-d array, MLP gradients {name: array}, gradient of each unique row [U, D])."""
        xp = self.xp
        s = self.shape
        B, T, D = dense.shape[0], s.n_tables, s.dim
        logit, (bot_acts, top_acts, z) = self.forward(dense, rows, inverse, bag, keep=True)
        loss = log_loss_from_logits(xp, logit, labels)
        grads: dict[str, object] = {}
        dlogit = (sigmoid(xp, logit) - labels) / B
        d_top_in = self._mlp_back("top", len(s.top_sizes) - 1, top_acts, dlogit[:, None], False,
                                  grads)
        dx = d_top_in[:, :D]
        dg = xp.zeros((B, s.n_features, s.n_features), dtype=z.dtype)
        dg[:, self._li, self._lj] = d_top_in[:, D:]
        dz = (dg + dg.transpose(0, 2, 1)) @ z                         # [B, F, D]
        dx = dx + dz[:, 0, :]
        self._mlp_back("bot", len(s.bottom_sizes) - 1, bot_acts, dx, True, grads)
        d_emb = dz[:, 1:, :].reshape(B * T, D)
        d_access = d_emb if bag is None else d_emb[bag]
        d_rows = segment_sum(xp, d_access, inverse, rows.shape[0])
        return loss, grads, d_rows

    def sgd(self, grads: dict, lr: float) -> None:
        for k, g in grads.items():
            self.params[k] -= self.dtype(lr) * g


def sigmoid(xp, z):
    return 0.5 * (xp.tanh(0.5 * z) + 1.0)


def log_loss_from_logits(xp, logit, labels):
    """Mean of -[y log p + (1 - y) log(1 - p)], p = sigmoid(logit), computed stably; a 0-d
    array of the array module (call float() on it: on a GPU that waits for the device)."""
    per = xp.maximum(logit, 0) - logit * labels + xp.log1p(xp.exp(-xp.abs(logit)))
    return per.mean()
