"""The sizing report's plots: one function a figure, each writes a PNG and returns its path.

Axes carry units, scales go logarithmic where the data spans decades, every figure names the
trace in its title and has a legend when it has more than one series.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

_COLORS = {"lru": "#1f77b4", "lfu": "#d62728", "fifo": "#2ca02c", "clock": "#9467bd",
           "sieve": "#8c564b", "s3fifo": "#e377c2", "arc": "#17becf", "opt": "#000000",
           "random": "#7f7f7f"}
_PREC_COLORS = {"fp32": "#1f77b4", "fp16": "#ff7f0e", "bf16": "#bcbd22", "int8": "#2ca02c",
                "int8-fp16qp": "#17becf", "int4": "#d62728", "int2": "#9467bd"}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False,
                         "font.size": 10})
    return plt


def _name(meta) -> str:
    return Path(meta["trace"]).name


def _save(fig, folder: Path, name: str) -> Path:
    path = Path(folder) / name
    fig.savefig(path, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def _fmt_bytes_axis(v, _pos=None) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024:
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
        v /= 1024
    return f"{v:.1f} PiB"


def _byte_unit(largest: float) -> tuple[float, str]:
    """A binary unit in which `largest` reads as 1..1024."""
    for div, name in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if largest >= div:
            return float(div), name
    return 1.0, "B"


def _time_unit(largest_ms: float) -> tuple[float, str]:
    if largest_ms >= 1:
        return 1.0, "ms"
    if largest_ms >= 1e-3:
        return 1e-3, "µs"
    return 1e-6, "ns"


def rank_frequency(tr: dict, meta: dict, folder: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    rf = tr["rank_frequency"]
    ax.loglog(rf["rank"], rf["accesses"], color="#1f77b4", lw=1.8, label="all tables")
    zipf = (tr["analysis"].get("overall", tr["analysis"]).get("zipf") or {})
    if zipf.get("alpha"):
        r = np.asarray(rf["rank"], dtype=float)
        y = np.asarray(rf["accesses"], dtype=float)
        lo, hi = zipf.get("rank_min", 1), zipf.get("rank_max", r[-1])
        m = (r >= lo) & (r <= hi) & (y > 0)
        # the fitted line through the ranks used for the fit: log y = c - alpha log r
        c = float(np.mean(np.log(y[m]) + zipf["alpha"] * np.log(r[m]))) if m.any() else np.log(y[0])
        fit = np.exp(c) * r ** -zipf["alpha"]
        ax.loglog(r, fit, "--", color="#d62728", lw=1.2,
                  label=f"Zipf fit, exponent {zipf['alpha']:.2f} (ranks {lo}..{hi})")
    ax.set_xlabel("popularity rank of the row (1 = most accessed)")
    ax.set_ylabel("accesses to the row")
    ax.set_title(f"Rank-frequency: {_name(meta)}")
    ax.legend()
    return _save(fig, folder, "rank_frequency.png")


def hit_ratio_curves(results: dict, meta: dict, folder: Path, opt) -> Path:
    plt = _plt()
    distinct = meta["fingerprint"]["distinct"]
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    ex = results.get("lru_exact")
    if ex:
        size = np.asarray(ex["size"], dtype=float)
        hit = 1 - np.asarray(ex["miss_ratio"], dtype=float)
        m = size > 0
        ax.plot(size[m], hit[m], color=_COLORS["lru"], lw=1.0, alpha=0.45,
                label="LRU, exact (every size)")
    curves = results["curves"]
    for pol in dict.fromkeys(r["policy"] for r in curves):
        pts = sorted((r["capacity"], r["hit_ratio"]) for r in curves if r["policy"] == pol)
        x, y = zip(*pts)
        style = dict(color=_COLORS.get(pol, None), marker="o", ms=4, lw=1.6)
        if pol == "opt":
            style.update(ls="--", marker="s", label="OPT (Belady), the ceiling")
        else:
            style["label"] = pol.upper()
        ax.plot(x, y, **style)
    target = meta["target_hit_ratio"]
    ax.axhline(target, color="#444", ls=":", lw=1.2, label=f"target {target:g}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("cache size (rows)")
    ax.set_ylabel("hit ratio (share of accesses)")
    top = ax.secondary_xaxis("top", functions=(lambda r: 100 * r / distinct,
                                               lambda p: p * distinct / 100))
    top.set_xlabel("cache size (% of the distinct rows)")
    dim = int(max(results["trace"]["table_dims"]))
    bot = ax.secondary_xaxis(-0.22, functions=(lambda r: r * 4 * dim, lambda b: b / (4 * dim)))
    bot.set_xlabel(f"cache size (bytes of FP32 lines, dim {dim})")
    from matplotlib.ticker import FuncFormatter
    bot.xaxis.set_major_formatter(FuncFormatter(_fmt_bytes_axis))
    ax.set_title(f"Hit ratio vs cache size: {_name(meta)}")
    ax.legend(loc="lower right", fontsize=8.5, ncol=2)
    return _save(fig, folder, "hit_ratio.png")


def transfers(results: dict, meta: dict, folder: Path) -> Path:
    plt = _plt()
    sw = results["sweep"]
    fig, ax = plt.subplots(figsize=(8.5, 5))
    precs = list(dict.fromkeys(r["precision"] for r in sw))
    pols = list(dict.fromkeys(r["policy"] for r in sw))
    styles = {p: s for p, s in zip(pols, ["-", "--", ":", "-."])}
    per_step = bool(sw) and sw[0].get("steps") is not None
    if not per_step:  # access-mode sweep (no batches): totals over the trace, one "step"
        sw = [{**r, "steps": 1, "h2d_bytes_per_step": r.get("h2d_bytes"),
               "d2h_bytes_per_step": r.get("d2h_bytes")} for r in sw]
    steps = max(1, int(sw[0].get("steps") or 1)) if sw else 1
    largest = max([(r.get("no_cache_transfer_bytes") or 0) / steps for r in sw] +
                  [(r["h2d_bytes_per_step"] or 0) + (r["d2h_bytes_per_step"] or 0) for r in sw] + [1])
    div, unit = _byte_unit(largest)
    for prec in precs:
        for pol in pols:
            pts = sorted((r["cache_lines"], r["h2d_bytes_per_step"] or 0, r["d2h_bytes_per_step"] or 0)
                         for r in sw if r["precision"] == prec and r["policy"] == pol)
            if not pts:
                continue
            x, h2d, d2h = zip(*pts)
            tot = np.add(h2d, d2h) / div
            ax.plot(x, tot, styles[pol], color=_PREC_COLORS.get(prec), marker="o", ms=3.5,
                    label=f"{prec.upper()} {pol.upper()}: H2D + D2H")
        base = [r for r in sw if r["precision"] == prec and r["policy"] == pols[0]]
        if base and base[0].get("no_cache_transfer_bytes") and base[0].get("steps"):
            nb = base[0]["no_cache_transfer_bytes"] / base[0]["steps"] / div
            ax.axhline(nb, color=_PREC_COLORS.get(prec), lw=0.8, alpha=0.6, ls=(0, (1, 3)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("cache size (rows)")
    ax.set_ylabel(f"{unit} over the host-device link "
                  + ("per step" if per_step else "over the whole trace") + " (H2D + D2H)")
    gbps = sw[0].get("link_gbps", 25.0) if sw else 25.0
    tdiv, tunit = _time_unit(largest / (gbps * 1e9) * 1e3)
    to_t = lambda v: v * div / (gbps * 1e9) * 1e3 / tdiv
    right = ax.secondary_yaxis("right", functions=(to_t, lambda t: t * tdiv * gbps * 1e9 / 1e3 / div))
    right.yaxis.set_major_formatter(ScalarFormatter())
    right.set_ylabel(f"{tunit} {'per step' if per_step else 'in all'} at {gbps:g} GB/s")
    ax.set_title((f"Transfers per step vs cache size: {_name(meta)}\n"
                  "(dotted: every unique row of every batch fetched, no cache)") if per_step else
                 (f"Transfers over the trace vs cache size (no batches): {_name(meta)}\n"
                  "(dotted: every access fetched, no cache)"), fontsize=10)
    ax.legend(fontsize=8, ncol=2, loc="lower left")
    return _save(fig, folder, "transfers.png")


def memory(results: dict, meta: dict, folder: Path) -> Path:
    plt = _plt()
    from matplotlib.ticker import FuncFormatter
    mem = results["memory"]
    heads = [r for r in mem if r.get("headline")]
    regular = [r for r in mem if not r.get("headline")]
    # one bar group per precision at the sweep's middle cache size, then the paper's headlines
    sizes = sorted({r["cache_rows"] for r in regular})
    mid = sizes[len(sizes) // 2] if sizes else None
    bars = [r for r in regular if r["cache_rows"] == mid] + heads
    labels = [(r.get("headline") or f"{r['precision'].upper()}\n{r['cache_rows']:,} rows")
              .replace("paper: ", "paper:\n").replace(" + ", "\n+ ") for r in bars]
    parts = [("store_data_bytes", "host store: row data", "#4c72b0"),
             ("scale_bias_bytes", "host store: scale + bias", "#8da0cb"),
             ("cache_bytes", "device: FP32 cache lines", "#dd8452"),
             ("metadata_bytes", "device: tags + policy state", "#c44e52")]
    fig, ax = plt.subplots(figsize=(9, 5))
    x = np.arange(len(bars))
    bottom = np.zeros(len(bars))
    div, unit = _byte_unit(max([r["total_bytes"] for r in bars] + [bars[0]["fp32_bytes"] if bars else 1]))
    for key, label, color in parts:
        vals = np.array([r[key] for r in bars], dtype=float) / div
        ax.bar(x, vals, bottom=bottom, color=color, label=label, width=0.65)
        bottom += vals
    fp32 = bars[0]["fp32_bytes"] / div if bars else 0
    ax.axhline(fp32, color="#333", ls="--", lw=1, label="every row in FP32")
    for i, r in enumerate(bars):
        ax.text(i, bottom[i], f"{r['ratio_vs_fp32']:.2f}x", ha="center", va="bottom", fontsize=8.5)
    ax.set_xticks(x, labels, fontsize=8)
    for i, r in enumerate(bars):
        if r.get("headline"):
            ax.patches[i].set_hatch("//")
    ax.set_ylabel(f"embedding memory ({unit})")
    ax.set_title(f"Memory by precision (labels: reduction vs all-FP32): {_name(meta)}")
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, folder, "memory.png")


def _config_label(r) -> str:
    size = {"all": "all rows\non device", "0": "no cache"}.get(str(r["size"]), f"{r['size']} cache")
    pol = r.get("policy")
    return f"{r['precision'].upper()}\n{size}" + (f"\n{pol.upper()}" if pol and pol != "none" else "")


def accuracy(results: dict, meta: dict, folder: Path) -> Path:
    """Test AUC minus FP32's on the same seed (paired: the seeds' own spread cancels)."""
    plt = _plt()
    tr = [r for r in results["training"] if r.get("auc") is not None]
    base = {r.get("seed"): r["auc"] for r in tr if r["precision"] == "fp32"}
    groups: dict = {}
    for r in tr:
        if r["precision"] == "fp32" or r.get("seed") not in base:
            continue
        groups.setdefault(_config_label(r), []).append(r["auc"] - base[r.get("seed")])
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    labels = list(groups)
    means = [np.mean(groups[k]) for k in labels]
    spread = [np.std(groups[k]) for k in labels]
    ax.axhspan(-0.002, 0.002, color="#2ca02c", alpha=0.15, label="within 0.002 of FP32")
    ax.axhline(0, color="#333", lw=0.8)
    ax.errorbar(range(len(labels)), means, yerr=spread, fmt="o", capsize=4, color="#1f77b4",
                label=f"mean ± std over {len(base)} seed(s)")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("test AUC minus FP32's (same seed)")
    ax.set_title(f"Accuracy against all-FP32 training: {_name(meta)}")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, folder, "accuracy.png")


def allocation(results: dict, meta: dict, folder: Path) -> Path:
    plt = _plt()
    al = results["allocation"]
    names = al.get("table_names") or results["trace"]["table_names"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(names))
    w = 0.4
    for i, (key, label, color) in enumerate((("greedy", "greedy on convex hulls", "#1f77b4"),
                                             ("torchrec", "TorchRec's rule", "#ff7f0e"))):
        part = al.get(key) or {}
        rows = part.get("rows_per_table")
        if rows is None:
            continue
        ax.bar(x + (i - 0.5) * w, np.maximum(rows, 0), width=w, color=color, label=label)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xticks(x, names, rotation=60, fontsize=8)
    ax.set_xlabel("table")
    ax.set_ylabel("cache rows given to the table")
    ax.set_title(f"Per-table cache allocation under the budget: {_name(meta)}")
    ax.legend(fontsize=8)
    return _save(fig, folder, "allocation.png")
