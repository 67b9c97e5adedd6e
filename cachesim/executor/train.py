"""The training loop: DLRM on a trace's samples, its embedding rows behind a cache, metrics.

`train(trace, precision, size, policy, ...)` trains one model per configuration on the first
part of the trace (in order, one step per batch), tests it on the rest, and returns one record
per configuration: test AUC, log loss and accuracy, the loss curve, the cache's batch counters
(the names of `cachesim.Result` in batch mode), the bytes copied host->device and device->host,
memory and speed. Every configuration of a run starts from the same weights and sees the same
batches.

Configurations: `size` "all" with precision fp32 is the baseline with every row in FP32 on the
device (no cache); size "0" is the low-precision baseline with no cache (every update
re-quantized at once); any other size (rows, a share such as 5%, or bytes of FP32 lines) is an
FP32 device cache over the host store. With `baselines=True` both baselines are added.

Labels and dense features come from the trace when it has them (trace.labels, trace.dense, one
per sample); otherwise labels come from the planted teacher (`synth.teacher.teacher_labels`, seed
`TEACHER_SEED`) and the dense input is a single zero feature; the record says which (`labels`).
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ..errors import CachesimError
from ..policies import batch_policy_names, get_policy
from ..progress import Lines, bar as progress_bar, rate
from ..simulate.result import FBGEMM_MODELS, fbgemm_warp
from ..sizes import parse_size
from ..synth.teacher import teacher_labels
from .cache import (COUNTER_NAMES, CachedTable, DeviceTable, check_cache_model, check_optimizer,
                    init_rows)
from .model import DLRM, model_shape, sigmoid
from .quant import check_precision, check_rounding
from .xp import get_xp

TEACHER_SEED = 20201022
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 0.1
CURVE_POINTS = 50


# -- data ----------------------------------------------------------------------------------------
def with_batches(trace, batch_size: int):
    """The trace with its accesses batched by sample: batch = sample // batch_size (a trace
    without a sample column counts each access as one sample)."""
    if int(batch_size) < 1:
        raise CachesimError(f"batch size {batch_size}: must be at least 1 sample")
    sample = trace.sample if trace.sample is not None else np.arange(len(trace), dtype=np.int64)
    # a new trace: it derives its own columns (keys, dense ids, batch starts) again
    return dataclasses.replace(trace, batch=sample // int(batch_size), sample=sample)


@dataclasses.dataclass
class Batch:
    ids: np.ndarray          # dense ids of the accesses
    bag: np.ndarray | None   # local sample x T + table per access; None: one per (sample, table)
    samples: np.ndarray | slice
    # a streamed batch's own labels and dense features (one per sample of `samples`, which is
    # then 0..n); None: they are rows `samples` of the whole trace's (`_Data.labels`, `.dense`)
    labels: np.ndarray | None = None
    dense: np.ndarray | None = None


@dataclasses.dataclass
class _Data:
    """The batches of an in-memory trace, and its samples' labels and dense features. A
    streamed trace's (`executor.stream.StreamedData`) has the same methods, reading its batches
    from the file as they are asked for."""
    batches: list
    n_train: int             # batches used for training
    labels: np.ndarray       # per sample, float32
    dense: np.ndarray        # per sample, float32 [n_samples, n_dense]
    label_source: str
    batch_samples: int

    @property
    def n_dense(self) -> int:
        return int(self.dense.shape[1])

    @property
    def n_train_samples(self) -> int:
        return sum(_n(b.samples) for b in self.batches[:self.n_train])

    def to_device(self, xp) -> None:
        """Copy the labels and dense features to the device, once (`inputs` reads them)."""
        self._xp, self._dense_dev, self._labels_dev = xp, xp.asarray(self.dense), \
            xp.asarray(self.labels)

    def train_batches(self):
        return self.batches[:self.n_train]

    def test_batches(self):
        return self.batches[self.n_train:]

    def inputs(self, b: Batch):
        """(dense features, labels) of batch `b`'s samples, on the device."""
        sl = b.samples if isinstance(b.samples, slice) else self._xp.asarray(b.samples)
        return self._dense_dev[sl], self._labels_dev[sl]

    def host_labels(self, b: Batch) -> np.ndarray:
        return self.labels[b.samples]


def check_sample_ids(sample: np.ndarray) -> None:
    if len(sample) and sample.min() < 0:
        raise CachesimError("the trace has negative sample ids; samples must be numbered from 0")


def check_batch_order(batch: np.ndarray) -> None:
    if len(batch) > 1 and np.any(np.diff(batch) < 0):
        raise CachesimError("the trace's batch column is not in order; the executor trains "
                            "batches in trace order (sort the trace by batch)")


class NoTestBatchWarning(CachesimError, UserWarning):
    """A --test-fraction that rounds to no test batch: the training measures no accuracy. A
    warning from the API; `cachesim train` raises it as its one-line error
    (`warnings.simplefilter("error", NoTestBatchWarning)`)."""


def train_split(n_batches: int, test_fraction: float) -> int:
    """The number of batches trained on (the first ones); the rest are tested on. A
    `NoTestBatchWarning` when a positive `test_fraction` leaves no test batch."""
    n_test = int(round(test_fraction * n_batches))
    n_train = n_batches - n_test
    if test_fraction > 0 and n_test == 0 and n_batches > 0:
        # else it trains on every batch and measures no accuracy, without a word
        need = math.ceil(100 / n_batches) / 100
        more = f", --test-fraction {need:g} or more" if n_batches > 1 else ""
        import warnings
        warnings.warn(NoTestBatchWarning(
            f"--test-fraction {test_fraction} of {n_batches} batch{'es' * (n_batches != 1)} is "
            f"no test batch, so no accuracy would be measured; give a smaller --batch-size"
            f"{more}, or --test-fraction 0 to train on every batch untested"), stacklevel=2)
    if n_train < 1:
        raise CachesimError(f"--test-fraction {test_fraction} leaves no batch to train on "
                            f"({n_batches} batches)")
    return n_train


def check_test_fraction(test_fraction: float) -> None:
    if not 0 <= test_fraction < 1:
        raise CachesimError(f"--test-fraction {test_fraction}: must be at least 0 and below 1")


def split_batches(batch, sample, table, n_tables: int):
    """(start, stop, sorted distinct samples, each access's index among them, bag or None) of
    each batch (a run of equal `batch` ids) of these accesses; the bag is local sample x
    n_tables + table per access, None when it is one access per (sample, table) in order."""
    cuts = np.flatnonzero(np.diff(batch)) + 1
    starts = np.concatenate([[0], cuts]).astype(np.int64)
    stops = np.concatenate([cuts, [len(batch)]]).astype(np.int64)
    for a, z in zip(starts, stops):
        samples, local = np.unique(sample[a:z], return_inverse=True)
        local = local.reshape(-1)
        bag = local * n_tables + table[a:z]
        if len(bag) == len(samples) * n_tables and np.array_equal(bag, np.arange(len(bag))):
            bag = None
        yield int(a), int(z), samples, local, bag


def prepare_data(trace, batch_size: int | None, test_fraction: float) -> _Data:
    """Cut the trace into batches (host arrays), pick labels and dense features, split."""
    check_test_fraction(test_fraction)
    if batch_size is not None:
        trace = with_batches(trace, batch_size)
    elif trace.batch is None:
        trace = with_batches(trace, DEFAULT_BATCH_SIZE)
    sample = trace.sample if trace.sample is not None else np.arange(len(trace), dtype=np.int64)
    check_sample_ids(sample)
    n_samples = int(sample.max()) + 1 if len(sample) else 0
    if trace.labels is not None:
        labels = np.asarray(trace.labels, dtype=np.float32).reshape(-1)
        if labels.shape[0] < n_samples:
            raise CachesimError(f"the trace has {labels.shape[0]} labels for {n_samples} samples")
        source = "trace"
    else:
        labels = teacher_labels(trace, sample, n_samples, TEACHER_SEED)
        source = f"planted teacher (seed {TEACHER_SEED})"
    if trace.dense is not None:
        # a sample's features side by side (row-major, as a streamed batch holds them: the
        # matrix products then round alike; a reader may hand over column-major arrays)
        dense = np.ascontiguousarray(trace.dense, dtype=np.float32)
        dense = dense.reshape(dense.shape[0], -1)
        dense = np.nan_to_num(dense, nan=0.0)
    else:
        dense = np.zeros((n_samples, 1), dtype=np.float32)
    check_batch_order(trace.batch)
    ids_all = trace.dense_ids
    batches = []
    for a, z, samples, _, bag in split_batches(trace.batch, sample, trace.table, trace.n_tables):
        if samples[-1] - samples[0] + 1 == len(samples):
            samples = slice(int(samples[0]), int(samples[-1]) + 1)
        batches.append(Batch(ids_all[a:z], bag, samples))
    n_train = train_split(len(batches), test_fraction)
    batch_samples = int(np.median([_n(bt.samples) for bt in batches]))
    return _Data(batches, n_train, labels, dense, source, batch_samples)


def _n(samples) -> int:
    return samples.stop - samples.start if isinstance(samples, slice) else len(samples)


# -- metrics -------------------------------------------------------------------------------------
def auc_score(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by ranks (Mann-Whitney U), ties given their average rank;
    None when only one class is present."""
    y = np.asarray(labels) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg_rank = first + (counts + 1) / 2.0            # 1-based average rank of each tie group
    ranks = np.empty_like(s)
    ranks[order] = np.repeat(avg_rank, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(np.mean((np.asarray(probs) >= 0.5) == (np.asarray(labels) > 0.5)))


# -- configurations ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Config:
    precision: str
    size: str           # "all", "0", or a size as given
    policy: str         # "none" when there is no cache
    ways: int | None

    @property
    def cached(self) -> bool:
        return self.size not in ("all", "0")


def _norm_size(s) -> str:
    t = str(s).strip().lower()
    if t in ("all", "0", "0%", "none"):
        return "all" if t == "all" else "0"
    parse_size(s)  # checks it
    return str(s).strip()


def configurations(precision, size, policy, ways, baselines: bool) -> list[Config]:
    """Baselines first (fp32 'all', then each low precision with no cache), then every
    (precision, size, policy) with a cache."""
    precisions = [check_precision(p) for p in _as_list(precision)]
    sizes = [_norm_size(s) for s in _as_list(size)]
    policies = [str(p).lower() for p in _as_list(policy)]
    for i, p in enumerate(policies):
        pol = get_policy(p)
        if pol.batch_rule is None:
            raise CachesimError(f"policy {p!r}: the executor's cache follows a policy's batch "
                                "rule, and it has none; pass one of "
                                f"{', '.join(batch_policy_names())}")
        policies[i] = pol.name
    out: list[Config] = []

    def add(c):
        if c not in out:
            out.append(c)
    if baselines or "all" in sizes:
        add(Config("fp32", "all", "none", None))
    for p in precisions:
        if baselines and p != "fp32" or "0" in sizes:
            add(Config(p, "0", "none", None))
    for p in precisions:
        for s in sizes:
            if s == "all":
                if p != "fp32":
                    raise CachesimError(f"size 'all' with precision {p}: 'all' means every row "
                                        "in FP32 on the device; use it with precision fp32")
                continue
            if s == "0":
                continue
            for pol in policies:
                add(Config(p, s, pol, ways))
    return out


def _as_list(v) -> list:
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    if isinstance(v, (int, float)):
        return [v]
    return list(v)


def capacity_rows(size: str, n_distinct: int, dim: int) -> int:
    """Cache lines asked for: rows as given, a share of the trace's distinct keys (as batch
    replay resolves it), or bytes of FP32 lines of `dim`."""
    cap = parse_size(size)
    if cap.is_bytes:
        rows = cap.value // (4 * dim)
        if rows < 1:
            raise CachesimError(f"cache size {size!r} holds no FP32 row of dim {dim} "
                                f"({4 * dim} bytes)")
        return int(rows)
    return cap.resolve(n_distinct)


# -- the loop ------------------------------------------------------------------------------------
def train(trace, precision=("int8",), size=("5%",), policy=("lru",), ways: int | None = 32,
          device: str = "auto", epochs: int = 1, batch_size: int | None = None,
          lr: float = DEFAULT_LR, seed=0, test_fraction: float = 0.1,
          rounding: str = "stochastic", optimizer: str = "sgd", model="kaggle",
          baselines: bool = True, progress: bool = True, curve_points: int = CURVE_POINTS,
          return_state: bool = False, cache_model: str = "fbgemm", per_table: bool = False,
          prefetch_pipeline: bool = False, warp: int | None = None, data=None,
          table_groups=None) -> list[dict]:
    """Train DLRM behind an embedding cache for every configuration; one record each.

    `seed` may be a list (every configuration once per seed). `model` is a preset name
    ("kaggle", "medium", "small") or {'bottom': hidden sizes, 'top': hidden sizes}. With
    `test_fraction=0` and one epoch the counters equal `cachesim.simulate.batch.replay_batch`
    with the same size, ways, cache_model, per_table, prefetch_pipeline and warp on the same
    (batched) trace. `return_state=True` adds the final weights to each record (under
    '_state': MLP params and embedding rows, NumPy), for checks.

    `cache_model` gives the cached configurations' rules: 'fbgemm' (FBGEMM's training cache,
    `executor.fbgemm_step`, its index on the device; 32 or 64 ways; the size as
    `simulate.fbgemm.fbgemm_geometry` reads it: a share is FBGEMM's load factor on the tables'
    rows, C rows are ceil(C / ways) sets), 'fbgemm-inference' (the same step under FBGEMM's
    inference cache's rules: 32 or 64 ways, lru or lfu; its direct-mapped form, ways 1, is
    refused) or 'ideal' (`cachesim.simulate.batch.BatchCache` on the host, any ways; a share is
    of the distinct keys). `per_table`: one cache per table (both models); `prefetch_pipeline`
    (fbgemm, lru): FBGEMM's pipeline locks; `warp` (fbgemm models): 32 or 64, the ways;
    `table_groups` (fbgemm): which tables share one cache, as `replay_batch`'s (TorchRec's TBE
    ops: 'torchrec', 'table', '0-12/13-25'; the record's `table_groups` names them). Bad
    combinations raise CachesimError before training (`simulate.batch.check_model_options`).
    The record says which (`cache_model`, `per_table`, `prefetch_pipeline`, `warp`; None
    without a cache); its `capacity` is the lines the cache has.

    `data`: the batches, prepared (`executor.stream.train_stream` passes a streamed trace's,
    `trace` then its first pass's `simulate.stream.BatchMeta`); None: cut from `trace`.
    """
    trace.require_nonempty()
    backend = get_xp(device)
    check_rounding(rounding)
    check_optimizer(optimizer)
    if int(epochs) < 1:
        raise CachesimError(f"--epochs {epochs}: must be at least 1")
    if not 0 <= float(lr) < float("inf"):  # 0 is allowed: a run that only measures
        raise CachesimError(f"--lr {lr}: the learning rate must be a finite number >= 0; use "
                            "e.g. 0.1")
    dims = np.unique(trace.table_dims)
    if dims.shape[0] != 1:
        raise CachesimError(f"the trace's tables have dims {', '.join(map(str, dims))}: the "
                            "executor's unified cache holds one embedding dim for all tables; "
                            "give every table the same dim")
    dim = int(dims[0])
    if ways is not None and int(ways) < 1:
        raise CachesimError(f"--ways {ways}: the number of ways must be at least 1")
    configs = configurations(precision, size, policy, ways, baselines)
    groups = None
    if table_groups is not None:
        from ..simulate.groups import check_groups_model, resolve_caches
        check_groups_model(table_groups, cache_model)
        per_table, groups = resolve_caches(table_groups, trace, bool(prefetch_pipeline),
                                           bool(per_table))
    cache = dict(cache_model=cache_model, per_table=bool(per_table),
                 prefetch_pipeline=bool(prefetch_pipeline), groups=groups)
    if any(c.cached for c in configs):
        check_cache_model(cache_model, ways)
        from ..simulate.batch import check_model_options
        check_model_options(cache_model, [c.policy for c in configs if c.cached], [ways],
                            [bool(per_table)], bool(prefetch_pipeline), warp)
        if warp is not None and cache_model in FBGEMM_MODELS and int(ways) != 1:
            # FBGEMM's ways are its warp's (check_model_options allowed ways 32 or the warp)
            configs = [dataclasses.replace(c, ways=int(warp)) if c.cached else c
                       for c in configs]
    seeds = [int(s) for s in _as_list(seed)]
    if data is None:
        data = prepare_data(trace, batch_size, float(test_fraction))
    shape = model_shape(model, data.n_dense, trace.n_tables, dim)
    data.to_device(backend.xp)
    records = []
    lines = Lines(progress)  # not a terminal: one line per configuration (a terminal: bars)
    for sd in seeds:
        rows0 = init_rows(trace.n_distinct, dim, trace.key_table, trace.table_rows, sd)
        for cfg in configs:
            rec = _run_one(trace, data, cfg, shape, backend, rows0, seed=sd, epochs=int(epochs),
                           lr=float(lr), rounding=rounding, optimizer=optimizer,
                           progress=progress, curve_points=curve_points,
                           dim=dim, return_state=return_state, **cache)
            records.append(rec)
            lines.echo(summary_line(rec, len(records), len(configs) * len(seeds)))
    return records


def _label(cfg_or_rec) -> str:
    """fp32 all rows on device / int8 no cache / int8 lru 5%."""
    get = cfg_or_rec.get if isinstance(cfg_or_rec, dict) else lambda k: getattr(cfg_or_rec, k)
    size = str(get("size"))
    if size == "all":
        return f"{get('precision')} all rows on device"
    if size == "0":
        return f"{get('precision')} no cache"
    return f"{get('precision')} {get('policy')} {size}"


def summary_line(rec: dict, i: int, n: int) -> str:
    """train: 3/5 int8 lru 5% seed 0: 12.3 s, 40.1k samples/s, loss 0.4700, auc 0.7100"""
    def num(name):
        v = rec.get(name)
        return "n/a" if v is None else f"{v:.4f}"
    return (f"train: {i}/{n} {_label(rec)} seed {rec['seed']}: {rec['seconds']:.1f} s, "
            f"{rate(rec['samples_per_s'])} samples/s, loss {num('train_loss')}, "
            f"auc {num('auc')}")


def _make_embeddings(trace, cfg: Config, backend, rows0, dim, rounding, optimizer, seed,
                     cache_model="fbgemm", per_table=False, prefetch_pipeline=False,
                     groups=None):
    if cfg.size == "all":
        return DeviceTable(backend, rows0, optimizer), None
    cap = 0 if cfg.size == "0" else capacity_rows(cfg.size, trace.n_distinct, dim)
    fbgemm_size, lines = None, cap
    if cap and cache_model in FBGEMM_MODELS:  # replay's geometry: a share is the load factor
        from ..simulate.fbgemm import fbgemm_geometry
        fbgemm_size = fbgemm_geometry(trace, cfg.size, int(cfg.ways), per_table,
                                      grouped=groups is not None)[0]
    elif cap and per_table:  # the ideal model's per-table caches, as replay_batch sizes them
        from ..simulate.batch import ideal_capacity
        lines = ideal_capacity(trace, cfg.size, per_table=True)[0]
        cap = int(np.sum(lines))
    emb = CachedTable(backend, rows0, cfg.precision, capacity_rows=lines, ways=cfg.ways,
                      policy=cfg.policy, distinct_keys=trace.distinct_keys,
                      key_table=trace.key_table, n_tables=trace.n_tables, rounding=rounding,
                      optimizer=optimizer, seed=seed, cache_model=cache_model,
                      table_rows=trace.table_rows, fbgemm_size=fbgemm_size, per_table=per_table,
                      prefetch_pipeline=prefetch_pipeline, table_groups=groups)
    return emb, (emb.n_lines if fbgemm_size is not None else cap)


def _groups_text(groups, trace) -> str | None:
    """The record's `table_groups` ('C1-C13/C14-C26'), None when one cache (or one per table)
    holds the tables."""
    if groups is None:
        return None
    from ..simulate.groups import groups_text
    return groups_text(groups, trace.table_names)


def _warm_up(policy: str, ids_dtype) -> None:
    """Compile the cache kernels (numba) on a throwaway one-line cache, outside the timing."""
    from ..simulate.batch import BatchCache
    one = np.zeros(1, dtype=np.int64)
    BatchCache(n_keys=1, distinct_keys=one, key_table=np.zeros(1, np.int32), n_tables=1,
               capacity_rows=1, ways=1, policy=policy).step(np.zeros(1, dtype=ids_dtype))


def _run_one(trace, data: _Data, cfg: Config, shape, backend, rows0, *, seed, epochs, lr,
             rounding, optimizer, progress, curve_points, dim, return_state, cache_model="fbgemm",
             per_table=False, prefetch_pipeline=False, groups=None):
    xp = backend.xp
    model = DLRM(shape, xp=xp, seed=seed)
    emb, cap = _make_embeddings(trace, cfg, backend, rows0, dim, rounding, optimizer, seed,
                                cache_model, per_table, prefetch_pipeline, groups)
    if cfg.cached and cache_model == "ideal":  # (fbgemm: no numba)
        _warm_up(cfg.policy, np.int32)  # the dtype of dense ids (Trace.dense_ids, KeyMap)
    losses = []
    n_train_samples = data.n_train_samples
    # a terminal: a bar per configuration, samples/s and the running loss (read from the
    # device at most twice a second)
    bar = progress_bar(epochs * n_train_samples, f"{_label(cfg)} seed {seed}", progress,
                       unit="sample", unit_scale=True)
    shown = 0.0
    backend.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for b in data.train_batches():
            dense, labels = data.inputs(b)
            inverse, rows = emb.gather(b.ids)
            loss, grads, d_rows = model.forward_backward(dense, rows, inverse, labels,
                                                         bag=_dev(xp, b.bag))
            model.sgd(grads, lr)
            emb.apply(d_rows, lr)
            losses.append(loss)
            if bar is not None:
                bar.update(_n(b.samples))
                if time.perf_counter() - shown >= 0.5:  # the first at once, then 2 a second
                    bar.set_postfix(loss=f"{float(loss):.4f}", refresh=not shown)
                    shown = time.perf_counter()
    backend.synchronize()
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    losses = np.array([float(v) for v in losses]) if losses else np.zeros(0)
    curve = [float(c.mean()) for c in np.array_split(losses, min(curve_points, len(losses)))
             if len(c)]
    # evaluation: rows read without touching the cache or the counters
    probs, ys = [], []
    for b in data.test_batches():
        inverse, rows = emb.lookup(b.ids)
        logit = model.forward(data.inputs(b)[0], rows, inverse, bag=_dev(xp, b.bag))
        probs.append(backend.to_host(sigmoid(xp, logit)))
        ys.append(data.host_labels(b))
    rec = {"policy": cfg.policy, "size": cfg.size, "ways": cfg.ways, "precision": cfg.precision,
           "capacity": cap if cap is not None else trace.n_distinct,
           "cache_lines": getattr(emb, "n_lines", 0) if cfg.size != "all" else None,
           "cache_model": cache_model if cfg.cached else None,
           # the cache's geometry options (None without a cache)
           "per_table": per_table if cfg.cached else None,
           "prefetch_pipeline": prefetch_pipeline if cfg.cached else None,
           "table_groups": _groups_text(groups, trace) if cfg.cached else None,
           "warp": fbgemm_warp(cache_model, cfg.ways) if cfg.cached else None,
           "seed": seed, "device": backend.name, "epochs": epochs,
           "batch_samples": data.batch_samples, "optimizer": optimizer, "rounding": rounding,
           "lr": lr, "model": shape.describe(), "labels": data.label_source,
           "train_samples": n_train_samples * epochs,
           "test_samples": int(sum(len(y) for y in ys))}
    if ys:
        y = np.concatenate(ys)
        p = np.concatenate(probs)
        positives = float(np.mean(y))
        # accuracy beside the majority-class rate it must beat (alone it reads as a result)
        rec.update(auc=auc_score(y, p), logloss=log_loss(y, p), accuracy=accuracy(y, p),
                   base_rate=max(positives, 1.0 - positives))
    else:
        rec.update(auc=None, logloss=None, accuracy=None, base_rate=None)
    rec["train_loss"] = float(losses[-max(1, len(losses) // 10):].mean()) if len(losses) else None
    c = emb.counters
    rec.update({k: int(c[k]) for k in COUNTER_NAMES})
    # per access, as `cachesim.Result.hit_ratio`: rows cached when their batch began
    rec["hit_ratio"] = (1.0 - c["misses"] / c["requested_indices"]
                        if c["requested_indices"] else None)
    steps = max(c["calls"], 1)
    rec.update(h2d_bytes=int(emb.h2d_bytes), d2h_bytes=int(emb.d2h_bytes),
               h2d_bytes_per_step=emb.h2d_bytes / steps, d2h_bytes_per_step=emb.d2h_bytes / steps,
               device_bytes=int(emb.device_bytes + model.nbytes), host_bytes=int(emb.host_bytes),
               samples_per_s=(n_train_samples * epochs / seconds) if seconds > 0 else math.inf,
               seconds=seconds, loss_curve=curve)
    if return_state:
        rec["_state"] = {"params": {k: backend.to_host(v).copy() for k, v in model.params.items()},
                         "rows": emb.weights()}
    return rec


def _dev(xp, a):
    return None if a is None else xp.asarray(a)


def results_table(records: list[dict]):
    """The records as a polars DataFrame, one row per configuration (and seed), in the column
    order of `cachesim sweep` (policy, size, ways, precision first); `_state` is left out."""
    import polars as pl
    rows = [{k: v for k, v in r.items() if k != "_state"} for r in records]
    table = pl.DataFrame(rows, infer_schema_length=None)
    casts = {c: pl.Int64 for c in ("ways", "cache_lines", "warp") if c in table.columns}
    casts.update({c: pl.Float64 for c in ("auc", "logloss", "accuracy", "base_rate", "hit_ratio",
                                          "train_loss")
                  if c in table.columns})
    return table.with_columns([pl.col(c).cast(t) for c, t in casts.items()])


def write_results(records: list[dict], path) -> None:
    """Write the records to .parquet, .json or .csv (the loss curve as JSON text), atomically."""
    import json as _json
    from pathlib import Path
    import polars as pl
    from ..files import write_table
    table = results_table(records)
    if Path(path).suffix.lower() == ".csv" and "loss_curve" in table.columns:
        table = table.with_columns(pl.Series("loss_curve",
                                             [_json.dumps(r["loss_curve"]) for r in records]))
    write_table(table, path)
