"""Miss-ratio curves, the public API: `mrc(trace, policy, sizes, method)` over the exact curves
(`stack.py`), SHARDS (`shards.py`) and miniature simulation (`mini.py`), when a sampled curve can
be trusted, and the plot. TorchRec's export is in `torchrec.py`. The names below are also
imported here, so `cachesim.analysis.mrc` offers the whole curve API.
"""
from __future__ import annotations

import numpy as np

from ..errors import CachesimError
from ..files import atomic_write
from .mini import mini_curve, sample_trace, run_mini  # noqa: F401  (the curve API, in one place)
from .shards import start_rate, sample_mask, shards, shards_curve  # noqa: F401
from .stack import (byte_distances, key_sizes, lru_bytes_curve, lru_curve,  # noqa: F401
                    lru_hits, stack_distances)
from .torchrec import expected_lookups, torchrec_miss_rate, torchrec_stats  # noqa: F401


# -- when a sampled curve can be trusted ---------------------------------------------------------
# A size C simulated on a sample at rate R is a cache of C x R sampled rows. Below one sampled row
# the estimate is meaningless (mini replays a 1-row cache, SHARDS counts only repeats with no
# sampled key between them); up to tens of rows it follows the few hot keys the hash happened to
# catch. On the Criteo sample (criteo_kaggle_head10k, rates 0.001-0.3 and fixed sizes 1K-8K keys)
# the error against the exact curve was up to 0.70 below 1 sampled row, up to 0.41 at 1-10, up
# to 0.15 at 10-100, and at most 0.019 from 100 sampled rows up (SHARDS LRU, mini LRU and FIFO),
# so sizes below MIN_SAMPLED_ROWS sampled rows are marked unreliable (the ATC'17 miniature
# simulations use caches of this order or larger). With K sampled keys the reliable sizes thus
# start at 100/K of the distinct keys: under MIN_SAMPLED_KEYS (1,000) keys, everything below 10%
# of them is unreliable, hence the warning (SHARDS' fixed-size variant holds 8K keys). Under
# MIN_SAMPLE_ACCESSES the sample's own hit ratio has a binomial standard error above
# 0.5/sqrt(10,000) = 0.005 even before accesses of one key correlate, hence the other warning.

MIN_SAMPLED_ROWS = 100
MIN_SAMPLED_KEYS = 1_000
MIN_SAMPLE_ACCESSES = 10_000


class SampledCurveWarning(UserWarning):
    """A sampled curve from too few keys or accesses to be trusted."""


def reliable_sizes(sizes, rate: float, row_bytes: float = 1.0) -> np.ndarray:
    """True for the sizes whose sampled cache holds at least MIN_SAMPLED_ROWS rows:
    size x rate >= MIN_SAMPLED_ROWS x `row_bytes` (the mean object size, for byte sizes)."""
    return np.asarray(sizes, dtype=np.float64) * rate >= MIN_SAMPLED_ROWS * row_bytes


def sample_warning(info: dict, what: str = "the sample",
                   fix: str = "raise the rate") -> str | None:
    """One line when a sample (`info`: rate, sampled_keys, sample_accesses) holds fewer than
    MIN_SAMPLED_KEYS keys or MIN_SAMPLE_ACCESSES accesses; None when it is big enough."""
    keys, acc, rate = info["sampled_keys"], info["sample_accesses"], info["rate"]
    if keys >= MIN_SAMPLED_KEYS and acc >= MIN_SAMPLE_ACCESSES:
        return None
    return (f"{what} at rate {rate:.3g} holds {keys:,} keys and {acc:,.0f} accesses, under the "
            f"{MIN_SAMPLED_KEYS:,} keys and {MIN_SAMPLE_ACCESSES:,} accesses a sampled curve "
            f"needs: it may be off by 0.1 or more; sizes below {MIN_SAMPLED_ROWS / rate:,.0f} "
            f"rows ({MIN_SAMPLED_ROWS} sampled rows) are marked reliable=false; {fix}")


# -- the public curve API ------------------------------------------------------------------------

METHODS = ("exact", "shards", "mini")


def resolve_sizes(sizes, n_distinct: int, total_bytes: int | None) -> np.ndarray | None:
    """Sizes as given (ints, '5%', '128MiB', or a comma-separated string) -> int64 rows or bytes
    (bytes when `total_bytes` is given: a share then counts the distinct keys' bytes)."""
    from ..sizes import parse_size
    if sizes is None:
        return None
    out = []
    for s in _size_items(sizes):
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            if s < 0:
                raise CachesimError(f"cache size {s} must not be negative")
            out.append(int(s))
            continue
        cap = parse_size(s)
        if total_bytes is None:
            if cap.is_bytes:
                raise CachesimError(f"cache size {cap.text!r} is in bytes: pass bytes=True "
                                    "(--bytes) for a byte-capacity curve, or give rows")
            out.append(cap.resolve(n_distinct))
        elif cap.kind == "fraction":
            out.append(max(1, int(round(cap.value * total_bytes))))
        else:
            out.append(int(cap.value))
    return np.asarray(out, dtype=np.int64)


def _size_items(sizes) -> list:
    """Sizes as given, one item each: ints, or strings other than whole numbers."""
    if isinstance(sizes, str):
        sizes = [p for p in sizes.split(",") if p.strip()]
    items = np.atleast_1d(np.asarray(sizes, dtype=object)).tolist()
    return [int(s.strip()) if isinstance(s, str) and s.strip().isdigit() else s for s in items]


def needs_distinct(sizes) -> bool:
    """Whether `resolve_sizes` needs the number of distinct keys: a size given as a share."""
    from ..sizes import parse_size
    return sizes is not None and any(isinstance(s, str) and parse_size(s).kind == "fraction"
                                     for s in _size_items(sizes))


def default_grid(n_distinct: int) -> np.ndarray:
    """Sizes for methods that replay once per size: 0, 40 log-spaced sizes and 20 linear ones."""
    g = np.concatenate([[0], np.geomspace(1, max(1, n_distinct), 40),
                        np.linspace(0, n_distinct, 21)])
    return np.unique(np.round(g).astype(np.int64))


def checked_method(policy, method, bytes: bool) -> str:
    """The policy's name, once `method` is known and gives that policy's curve."""
    from ..policies import get_policy
    pol = get_policy(policy).name
    if method not in METHODS:
        raise CachesimError(f"unknown curve method {method!r}; use one of {', '.join(METHODS)}")
    if method in ("exact", "shards") and pol != "lru":
        raise CachesimError(f"method {method!r} gives LRU's curve only (stack distances); use "
                            f"method 'mini' (--method mini) for {pol}")
    if method == "shards" and bytes:
        raise CachesimError("SHARDS here counts rows; use method 'exact' or 'mini' with bytes")
    return pol


def _one_curve(trace, policy, sizes, method, rate, bytes, s_max, adj):
    """(sizes, miss ratios, reliable per size or None when exact, sample info or None)."""
    pol = checked_method(policy, method, bytes)
    total_bytes = int(key_sizes(trace).sum()) if bytes else None
    sz = resolve_sizes(sizes, trace.n_distinct if method != "shards" or sizes is not None else 0,
                        total_bytes)
    if method == "exact":
        if bytes:
            if sz is None:
                return (*lru_bytes_curve(trace), None, None)
            return sz, lru_bytes_curve(trace, sz), None, None
        curve = lru_curve(trace)
        if sz is None:
            return np.arange(curve.shape[0], dtype=np.int64), curve, None, None
        return sz, curve[np.minimum(sz, curve.shape[0] - 1)], None, None
    if method == "shards":
        s, m, info = shards_curve(trace.keys, sz, rate, s_max, adj)
        return s, m, reliable_sizes(s, info["rate"]), info
    if sz is None:
        sz = default_grid(total_bytes if bytes else trace.n_distinct)
    rate = start_rate(rate, None)
    m, info = run_mini(trace, pol, sz, rate, bytes, adj)
    row_bytes = total_bytes / trace.n_distinct if bytes else 1.0
    return sz, m, reliable_sizes(sz, rate, row_bytes), info


def mrc(trace, policy: str = "lru", sizes=None, method: str = "exact",
        rate: float | None = None, bytes: bool = False, per_table: bool = False,
        s_max: int | None = None, adj: bool = True):
    """Miss-ratio curve as a polars DataFrame with columns size, miss_ratio, hit_ratio (and
    table first when `per_table`: each table's own cache).

    method 'exact': LRU, one pass, every size 0..distinct keys (or the step function in bytes
    with `bytes=True`); 'shards': LRU estimate from a hashed sample at `rate` (default 0.01), or
    fixed size with `s_max` keys (starting at `rate`, default 1); 'mini': miniature simulation of
    any policy at `rate` (default 0.01), one replay per size.
    `sizes`: ints, '5%' or '128MiB' strings, or one comma-separated string; default: all sizes
    (exact), the sizes where the estimate changes (shards), or 61 sizes from 0 to the distinct
    keys (mini). `adj`: SHARDS_adj for shards, and its analogue for mini (see `mini_curve`).

    Sampled methods add a column `reliable`: False for sizes under MIN_SAMPLED_ROWS sampled rows
    (`reliable_sizes`), and warn (SampledCurveWarning, one line) when a sample holds too few keys
    or accesses (`sample_warning`).
    """
    trace.require_nonempty()
    sources = ([(tr.table_names[0], tr) for _, tr in trace.per_table()] if per_table
               else [(None, trace)])
    return curve_frame([(name, _one_curve(tr, policy, sizes, method, rate, bytes, s_max, adj))
                        for name, tr in sources], method, per_table)


def curve_frame(curves, method: str, per_table: bool):
    """`mrc`'s DataFrame from [(table name or None, `_one_curve`'s tuple)], warning as it does."""
    import warnings

    import polars as pl
    parts, small = [], []
    for name, (s, m, ok, info) in curves:
        df = pl.DataFrame({"size": np.asarray(s, dtype=np.int64),
                           "miss_ratio": np.asarray(m, dtype=np.float64)})
        df = df.with_columns(hit_ratio=1.0 - pl.col("miss_ratio"))
        if ok is not None:
            df = df.with_columns(reliable=pl.Series(np.asarray(ok, dtype=bool)))
            what = f"the {method} sample" if name is None else f"table {name}'s {method} sample"
            fix = ("raise the rate (--rate), use s_max=8192 (--s-max 8192) or method 'exact'"
                   if method == "shards" else "raise the rate (--rate)")
            msg = sample_warning(info, what, fix)
            if msg:
                small.append((info["sampled_keys"], msg))
        if per_table:
            df = df.select(pl.lit(name).alias("table"), pl.all())
        parts.append(df)
    if small:
        msg = min(small)[1]
        if len(curves) > 1:
            msg = f"{len(small)} of {len(curves)} tables' samples are too small; {msg}"
        warnings.warn(msg, SampledCurveWarning, stacklevel=3)
    return pl.concat(parts)


# -- output --------------------------------------------------------------------------------------


def plot_mrc(df, path, title: str, unit: str = "rows") -> None:
    """Miss ratio against cache size as a PNG (one line per table when `df` has a table
    column); log x when the positive sizes span more than two decades. With a `reliable` column
    (a sampled curve) the unreliable sizes are dotted and their range hatched grey."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    groups = ([(None, df)] if "table" not in df.columns
              else [(n, df.filter(pl.col("table") == n)) for n in df["table"].unique(maintain_order=True)])
    scale, label = 1.0, unit
    if unit == "bytes":
        top = float(df["size"].max() or 1)
        for factor, name in ((2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB")):
            if top >= 4 * factor:
                scale, label = factor, name
                break
    pos = df.filter(pl.col("size") > 0)["size"]
    log_x = pos.len() > 1 and float(pos.max()) / float(pos.min()) > 100
    n = len(groups)
    outside = n > 6  # many tables: the legend goes right of the axes
    fig, ax = plt.subplots(figsize=(9.5 if outside else 7.5, 4.8), dpi=110)
    colors = plt.get_cmap("tab10" if n <= 10 else "tab20").colors
    styles = ("-", "--", "-.")
    has_ok = "reliable" in df.columns
    x_lo, x_ok = np.inf, np.inf  # smallest size drawn, smallest reliable size drawn
    for j, (name, g) in enumerate(groups):
        g = g.sort("size")
        if log_x:
            g = g.filter(pl.col("size") > 0)
        x = g["size"].to_numpy() / scale
        y = g["miss_ratio"].to_numpy()
        color = colors[j % len(colors)]
        line = name if name is not None else "all accesses"
        # reliable is size x rate >= a floor, so on sorted sizes it is a suffix: k is its start
        k = int(np.argmax(g["reliable"].to_numpy())) if has_ok and g["reliable"].any() else (
            x.shape[0] if has_ok else 0)
        if x.shape[0]:
            x_lo = min(x_lo, float(x[0]))
        if k > 0:  # the unreliable sizes, up to the first reliable one
            ax.plot(x[:k + 1], y[:k + 1], drawstyle="steps-post", lw=1.6, color=color,
                    linestyle=":", alpha=0.8, label=None if k < x.shape[0] else line)
        if k < x.shape[0]:
            x_ok = min(x_ok, float(x[k]))
            ax.plot(x[k:], y[k:], drawstyle="steps-post", lw=1.4, color=color,
                    linestyle=styles[(j // len(colors)) % 3], label=line)
    if has_ok and np.isfinite(x_lo) and x_lo < x_ok:
        top = x_ok if np.isfinite(x_ok) else float(df["size"].max()) / scale
        ax.axvspan(x_lo, top, facecolor="0.9", edgecolor="0.75", hatch="//", lw=0, alpha=0.5,
                   zorder=0, label=f"unreliable (dotted): under {MIN_SAMPLED_ROWS} sampled rows")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(f"cache size ({label})")
    ax.set_ylabel("miss ratio")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title, fontsize=10)
    if outside:
        ax.legend(fontsize=7, ncol=1 if n <= 20 else 2, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False, title="table", title_fontsize=8)
    else:
        ax.legend(fontsize=9, loc="upper right", frameon=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
