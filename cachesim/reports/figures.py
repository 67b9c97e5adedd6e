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

#: Every line style the figures draw with, and the word a caption uses for it. Captions are
#: generated from this table (see `style_word`), so they cannot drift from the plots.
LINE_STYLES = {
    "policy": "-",        # hit ratio curve of a policy
    "lru_exact": "-",     # the exact LRU curve (thin, faint)
    "opt": "--",          # OPT (Belady), the ceiling
    "target": ":",        # the target hit ratio
    "no_cache": ":",      # transfers with no cache
}
#: Line style per policy on the transfers plot (in the sweep's policy order); past four
#: policies the styles repeat with the next of TRANSFER_MARKERS, so every policy differs.
TRANSFER_POLICY_STYLES = ("-", "--", "-.", (0, (5, 1, 1, 1, 1, 1)))
TRANSFER_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
STYLE_WORDS = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot",
               (0, (5, 1, 1, 1, 1, 1)): "dash-dot-dot"}
#: Two curves closer than this at every point are drawn once and named together ("LFU = SIEVE").
COINCIDE_TOL = 1e-9
#: Curves closer than this (hit ratio) at every size overlap on the plot: the caption names them.
NEAR_TOL = 0.01
#: One marker per policy (hollow), so curves that run together stay apart.
MARKERS = {"lru": "o", "lfu": "s", "fifo": "^", "clock": "v", "sieve": "D", "s3fifo": "P",
           "arc": "X", "random": "h"}
#: What a caption calls each marker.
MARKER_WORDS = {"o": "circles", "s": "squares", "^": "triangles", "v": "down triangles",
                "D": "diamonds", "P": "plus signs", "X": "crosses", "h": "hexagons",
                "p": "pentagons", "<": "left triangles", ">": "right triangles",
                "d": "thin diamonds", "*": "stars"}
#: Colours and markers for the policies that have none above (plugins), taken in turn: every
#: colour with the first marker, then every colour with the next, and so on.
_EXTRA_COLORS = ("#ff7f0e", "#bcbd22", "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
                 "#f7b6d2", "#dbdb8d", "#9edae5")
_EXTRA_MARKERS = ("p", "<", ">", "d", "*", "o", "s", "^")


def policy_styles(names) -> dict:
    """{policy: (colour, marker)} for every name, any number of them: the named policies keep
    their own; the others (in the order given) take the next unused pair of the extra colours x
    markers cycle, so no two policies of one figure look the same until that cycle (80 pairs)
    runs out."""
    names = list(dict.fromkeys(names))
    out = {n: (_COLORS[n], MARKERS.get(n, "o")) for n in names if n in _COLORS}
    fresh = [(c, m) for m in _EXTRA_MARKERS for c in _EXTRA_COLORS if (c, m) not in
             set(out.values())]
    for j, n in enumerate(n for n in names if n not in out):
        out[n] = fresh[j % len(fresh)]
    return out


def style_word(style) -> str:
    """'solid', 'dashed', 'dotted' ... for a key of LINE_STYLES or a matplotlib line style."""
    return STYLE_WORDS[LINE_STYLES.get(style, style) if isinstance(style, str) else style]


def coincident_groups(series: dict) -> list[list]:
    """Group the names of `series` ({name: (x, y)}) whose curves coincide: the same x (cache
    sizes, as numbers or size texts) and y within COINCIDE_TOL at every point. Groups keep the
    input order."""
    groups: list[list] = []
    for name, (x, y) in series.items():
        y = np.asarray(y, dtype=float)
        for g in groups:
            gx, gy = series[g[0]]
            gy = np.asarray(gy, dtype=float)
            if list(gx) == list(x) and np.all(np.abs(gy - y) <= COINCIDE_TOL):
                g.append(name)
                break
        else:
            groups.append([name])
    return groups


def near_groups(series: dict, tol: float = NEAR_TOL) -> list[list]:
    """Names of `series` whose curves run within `tol` of each other at every shared x (not
    identical: those are `coincident_groups`), linked transitively; groups of two or more."""
    names = list(series)
    parent = {n: n for n in names}

    def root(n):
        while parent[n] != n:
            n = parent[n]
        return n
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (xa, ya), (xb, yb) = series[a], series[b]
            if list(xa) == list(xb) and np.all(np.abs(np.asarray(ya, dtype=float)
                                                      - np.asarray(yb, dtype=float)) < tol):
                parent[root(b)] = root(a)
    groups: dict = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    return [g for g in groups.values() if len(g) > 1]


def _group_label(names) -> str:
    return " = ".join(str(n).upper() for n in names)


def _num(v: float) -> str:
    """A tick value without exponents: 0.004, 0.5, 20, 1,000."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _log_ticks(axis, fmt, subs=(1.0, 2.0, 5.0)) -> None:
    """1-2-5 ticks (or `subs`) on a log axis, labelled by `fmt(value)`, no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _p=None: fmt(v)))
    axis.set_minor_formatter(NullFormatter())


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
    for axis in (ax.xaxis, ax.yaxis):
        _log_ticks(axis, lambda v: f"{v:,.0f}" if v >= 1 else _num(v), subs=(1.0,))
    ax.set_xlabel("popularity rank of the row (1 = most accessed)")
    ax.set_ylabel("accesses to the row")
    ax.set_title(f"Rank-frequency: {_name(meta)}")
    ax.legend()
    return _save(fig, folder, "rank_frequency.png")


def _bytes_short(v: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return f"{v:.3g} {unit}"
        v /= 1024
    return f"{v:.3g} TiB"


def _size_ticks(ax, ticks: list[tuple], lo: float, hi: float) -> None:
    """Ticks at the report's cache sizes: share of the distinct rows, rows, bytes of FP32 lines.
    A tick is (rows, share text, bytes) or (rows, share text, bytes, most rows, most bytes) when
    the policies' capacities differ at that size (labelled as a range)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    ticks = sorted(ticks)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator([t[0] for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    labels = []
    for t in ticks:
        rows, share, b = t[:3]
        r2, b2 = (t[3], t[4]) if len(t) > 3 else (rows, b)
        rows_txt = f"{int(rows):,}" if r2 == rows else f"{int(rows):,}-{int(r2):,}"
        b_txt = _bytes_short(b) if b2 == b else f"{_bytes_short(b)}-\n{_bytes_short(b2)}"
        labels.append(f"{share}\n{rows_txt}\n{b_txt}")
    ax.set_xticklabels(labels, fontsize=7.5)


def batch_series(results: dict) -> tuple[dict, str]:
    """The hit ratio the recommendation uses, one series per policy: {policy: (cache_lines,
    hit_ratio, size texts, cache bytes)} from the sweep rows at the recommendation's precision
    (hit ratio does not depend on it) and the report's ways; and the sweep's mode."""
    sw = results.get("sweep") or []
    best = (results.get("recommendation") or {}).get("best") or {}
    prec = best.get("precision") or (sw[0]["precision"] if sw else None)
    ways = best.get("ways", sw[0].get("ways") if sw else None)
    rows = [r for r in sw if r["precision"] == prec and r.get("ways") == ways]
    out = {}
    for pol in dict.fromkeys(r["policy"] for r in rows):
        pts = sorted((int(r["cache_lines"]), float(r["hit_ratio"]), str(r["size"]),
                      int(r["cache_bytes"])) for r in rows if r["policy"] == pol)
        out[pol] = tuple(list(v) for v in zip(*pts))
    return out, (sw[0].get("mode", "batch") if sw else "batch")


def access_series(results: dict) -> dict:
    """Per-access replay per policy: {policy: (capacity, hit_ratio, size texts)}, by size."""
    out = {}
    curves = results.get("curves") or []
    for pol in dict.fromkeys(r["policy"] for r in curves):
        pts = sorted((r.get("share", 0), r["capacity"], r["hit_ratio"], str(r["size"]))
                     for r in curves if r["policy"] == pol)
        out[pol] = ([p[1] for p in pts], [p[2] for p in pts], [p[3] for p in pts])
    return out


def hit_ratio_figure(results: dict, meta: dict, opt):
    """Two panels. Top: the hit ratio the recommendation uses (batch hit ratio from the sweep at
    the report's ways) with the target and the recommended point. Bottom: per-access replay of
    every policy, OPT and the exact LRU curve, fully associative, with no target (it does not
    apply there)."""
    plt = _plt()
    from matplotlib.ticker import PercentFormatter
    distinct = meta["fingerprint"]["distinct"]
    dim = int(max(results["trace"]["table_dims"]))
    fig, (axb, axa) = plt.subplots(2, 1, figsize=(8.5, 10.5))
    fig.subplots_adjust(hspace=0.55)
    target = meta["target_hit_ratio"]
    rec = results.get("recommendation") or {}
    ways = (rec.get("best") or {}).get("ways", meta.get("ways"))
    ways_txt = "fully associative" if ways in (None, "none") else f"{ways}-way"

    # top: what the recommendation uses
    series, mode = batch_series(results)
    acc = access_series(results)
    look = policy_styles([*series, *acc])
    xs = [x for s in series.values() for x in s[0]]
    ticks = {}
    for pol, (x, y, sizes, nbytes) in series.items():
        for xi, si, bi in zip(x, sizes, nbytes):
            ticks.setdefault(si, (xi, si, bi))
    for group in coincident_groups({p: (s[2], s[1]) for p, s in series.items()}):
        x, y = series[group[0]][:2]
        axb.plot(x, y, LINE_STYLES["policy"], color=look[group[0]][0],
                 marker=look[group[0]][1], ms=5, mfc="none", mew=1.3, lw=1.8,
                 label=_group_label(group))
    axb.axhline(target, color="#444", ls=LINE_STYLES["target"], lw=1.3,
                label=f"target {_pct_text(target)}")
    for key, marker, label in (("best", "*", "recommended"), ("runner_up", "D", "runner-up")):
        c = rec.get(key)
        if not c:
            continue
        x = next((xi for pol, s in series.items() if pol == c["policy"]
                  for xi, si in zip(s[0], s[2]) if si == str(c["size"])), None)
        if x is None:
            continue
        axb.plot([x], [c["hit_ratio"]], marker, color="#111", ms=13 if marker == "*" else 7,
                 mfc="none" if marker == "D" else "#ffd92f", ls="none", zorder=5,
                 label=f"{label}: {c['policy'].upper()} {c['size']} {c['precision'].upper()}, "
                       f"{_pct_text(c['hit_ratio'])}")
    kind = ("batch hit ratio (accesses whose row was cached when their batch began)"
            if mode == "batch"
            else "hit ratio per access (the trace has no batches)")
    axb.set_title(f"What the recommendation uses: {kind},\n{ways_txt}, from the sweep: "
                  f"{_name(meta)}", fontsize=10)
    axb.set_ylabel("batch hit ratio" if mode == "batch" else "hit ratio per access")
    if xs:
        _size_ticks(axb, list(ticks.values()), min(xs) / 1.3, max(xs) * 1.3)
    axb.legend(loc="lower right", fontsize=8)

    # bottom: per-access replay, every policy
    ex = results.get("lru_exact")
    curves = results["curves"]
    cx = [r["capacity"] for r in curves]
    lo, hi = (min(cx) / 1.3, max(cx) * 1.3) if cx else (1, max(2, distinct))
    if ex:
        size = np.asarray(ex["size"], dtype=float)
        hit = 1 - np.asarray(ex["miss_ratio"], dtype=float)
        m = (size >= lo) & (size <= hi)
        axa.plot(size[m], hit[m], LINE_STYLES["lru_exact"], color=_COLORS["lru"], lw=1.0,
                 alpha=0.45, label="LRU, exact (every size)")
    for group in coincident_groups({p: (v[2], v[1]) for p, v in acc.items()}):
        x, y = acc[group[0]][:2]
        if group == ["opt"]:
            axa.plot(x, y, LINE_STYLES["opt"], color=_COLORS["opt"], marker="s", ms=4, lw=1.6,
                     label="OPT (Belady), the ceiling")
        else:
            axa.plot(x, y, LINE_STYLES["policy"], color=look[group[0]][0],
                     marker=look[group[0]][1], ms=5, mfc="none", mew=1.2, lw=1.4,
                     label=_group_label(group))
    if curves:
        caps: dict = {}
        for r in curves:
            caps.setdefault(str(r["size"]), []).append(int(r["capacity"]))
        _size_ticks(axa, [(min(c), z, min(c) * 4 * dim, max(c), max(c) * 4 * dim)
                          for z, c in caps.items()], lo, hi)
    axa.set_title("For comparison: hit ratio per access, fully associative, every policy "
                  "(the target does not apply here)", fontsize=10)
    axa.set_ylabel("hit ratio per access")
    axa.legend(loc="lower right", fontsize=8, ncol=2)
    for ax in (axb, axa):
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        ax.set_xlabel(f"cache size: share of the distinct rows / rows / bytes of FP32 lines "
                      f"(dim {dim})", fontsize=9)
    return fig


def hit_ratio_caption(results: dict, meta: dict) -> str:
    series, mode = batch_series(results)
    top = {p: (s[2], s[1]) for p, s in series.items()}
    bottom = {p: (v[2], v[1]) for p, v in access_series(results).items()}
    groups = [g for part in (top, bottom) for g in coincident_groups(part) if len(g) > 1]
    same = ("" if not groups else " Curves that coincide at every size are drawn once and "
            "named together (" + "; ".join(_group_label(g) for g in groups) + ").")
    near = []
    for label, part in (("top", top), ("bottom", bottom)):
        drawn = {g[0]: (_group_label(g), part[g[0]]) for g in coincident_groups(part)}
        for g in near_groups({k: v for k, (_, v) in drawn.items() if k != "opt"}):
            near.append(f"{', '.join(drawn[n][0] for n in g)} ({label})")
    if near:
        same += (f" Curves within {100 * NEAR_TOL:g} percentage point of each other at every "
                 "size overlap on the plot and are told apart by their hollow markers: "
                 + "; ".join(near) + ".")
    what = "batch hit ratio" if mode == "batch" else "hit ratio per access"
    return (f"Top: the {what} the recommendation uses (the sweep at the report's ways), "
            f"{style_word('policy')} lines; the {style_word('target')} line is the target "
            f"{_pct_text(meta['target_hit_ratio'])}; the star marks the recommendation, the "
            "diamond the runner-up. Bottom, for comparison only: hit ratio per access, fully "
            f"associative, {style_word('policy')} lines per policy, OPT {style_word('opt')}, the "
            "exact LRU curve faint. Ticks are at the report's sizes: share of the distinct rows, "
            "rows, and bytes of FP32 cache lines." + same)


def _pct_text(x: float) -> str:
    return f"{100 * float(x):.3g}%"


def hit_ratio_curves(results: dict, meta: dict, folder: Path, opt) -> Path:
    return _save(hit_ratio_figure(results, meta, opt), folder, "hit_ratio.png")


def transfer_styles(results: dict) -> dict:
    """{policy: line style} on the transfers plot."""
    pols = list(dict.fromkeys(r["policy"] for r in results["sweep"]))
    return {p: TRANSFER_POLICY_STYLES[i % len(TRANSFER_POLICY_STYLES)] for i, p in enumerate(pols)}


def transfer_markers(results: dict) -> dict:
    """{policy: marker} on the transfers plot: with `transfer_styles`, a pair no other policy
    of the plot has (circles for the first four, squares for the next four, ...)."""
    pols = list(dict.fromkeys(r["policy"] for r in results["sweep"]))
    n = len(TRANSFER_POLICY_STYLES)
    return {p: TRANSFER_MARKERS[(i // n) % len(TRANSFER_MARKERS)] for i, p in enumerate(pols)}


def transfers_figure(results: dict, meta: dict):
    plt = _plt()
    sw = results["sweep"]
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    precs = list(dict.fromkeys(r["precision"] for r in sw))
    pols = list(dict.fromkeys(r["policy"] for r in sw))
    styles = transfer_styles(results)
    markers = transfer_markers(results)
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
            ax.plot(x, tot, ls=styles[pol], color=_PREC_COLORS.get(prec), marker=markers[pol],
                    ms=3.5, label=f"{prec.upper()} {pol.upper()}")  # ls=: a dash tuple too
        base = [r for r in sw if r["precision"] == prec and r["policy"] == pols[0]]
        if base and base[0].get("no_cache_transfer_bytes") and base[0].get("steps"):
            nb = base[0]["no_cache_transfer_bytes"] / base[0]["steps"] / div
            ax.axhline(nb, color=_PREC_COLORS.get(prec), lw=1.0, alpha=0.7,
                       ls=LINE_STYLES["no_cache"], label=f"{prec.upper()} no cache")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_ticks(ax.xaxis, lambda v: f"{v:,.0f}")
    _log_ticks(ax.yaxis, lambda v: f"{_num(v)} {unit}")
    ax.set_xlabel("cache size (rows)")
    ax.set_ylabel(f"{unit} over the host-device link "
                  + ("per step" if per_step else "over the whole trace") + " (H2D + D2H)")
    gbps = sw[0].get("link_gbps", 25.0) if sw else 25.0
    tdiv, tunit = _time_unit(largest / (gbps * 1e9) * 1e3)
    to_t = lambda v: v * div / (gbps * 1e9) * 1e3 / tdiv
    right = ax.secondary_yaxis("right", functions=(to_t, lambda t: t * tdiv * gbps * 1e9 / 1e3 / div))
    _log_ticks(right.yaxis, lambda v: f"{_num(v)} {tunit}")
    right.set_ylabel(f"link time {'per step' if per_step else 'in all'} at {gbps:g} GB/s")
    ax.set_title((f"Transfers per step vs cache size: {_name(meta)}") if per_step else
                 (f"Transfers over the trace vs cache size (no batches): {_name(meta)}"),
                 fontsize=10)
    ax.legend(fontsize=8, ncol=max(1, len(precs)), loc="upper center",
              bbox_to_anchor=(0.5, -0.13), frameon=False)
    return fig


def transfers_caption(results: dict) -> str:
    sw = results["sweep"]
    per_step = bool(sw) and sw[0].get("steps") is not None
    markers = transfer_markers(results)
    several = len(set(markers.values())) > 1  # past four policies, markers tell them apart
    pols = ", ".join(f"{p.upper()} {style_word(s)}"
                     + (f" with {MARKER_WORDS[markers[p]]}" if several else "")
                     for p, s in transfer_styles(results).items())
    nocache = ("every unique row of every batch fetched" if per_step else
               "every access fetched")
    return ("H2D + D2H bytes " + ("per training step" if per_step else "over the whole trace")
            + f" against cache size, one colour per precision; lines by policy ({pols}); the "
            f"{style_word('no_cache')} horizontal lines are no cache ({nocache}), one per "
            "precision. The right axis is the time on the host-device link.")


def transfers(results: dict, meta: dict, folder: Path) -> Path:
    return _save(transfers_figure(results, meta), folder, "transfers.png")


def memory_label(r: dict) -> str:
    """A bar's label: the role, then precision, policy, size and ways."""
    ways = "full" if r.get("ways") in (None, "none") else f"{r['ways']}-way"
    return (f"{r['role']}\n{r['precision'].upper()} {str(r['policy']).upper()}\n"
            f"{r['size']}, {ways}")


def memory_figure(results: dict, meta: dict):
    """One stacked bar per record of results['memory'] (the report puts the recommended
    configuration first, then the runner-up, the other precisions at the recommended size, and
    the paper's headlines, hatched)."""
    plt = _plt()
    bars = list(results["memory"])
    parts = [("store_data_bytes", "host store: row data", "#4c72b0"),
             ("scale_bias_bytes", "host store: scale + bias", "#8da0cb"),
             ("cache_bytes", "device: FP32 cache lines", "#dd8452"),
             ("metadata_bytes", "device: tags + policy state", "#c44e52")]
    fig, ax = plt.subplots(figsize=(max(7.5, 1.35 * len(bars) + 2), 5.2))
    x = np.arange(len(bars))
    bottom = np.zeros(len(bars))
    div, unit = _byte_unit(max([r["total_bytes"] for r in bars] + [bars[0]["fp32_bytes"] if bars else 1]))
    for key, label, color in parts:
        vals = np.array([r[key] for r in bars], dtype=float) / div
        cont = ax.bar(x, vals, bottom=bottom, color=color, label=label, width=0.65)
        for patch, r in zip(cont.patches, bars):
            if r["role"].startswith("paper"):
                patch.set_hatch("//")
            if r["role"] == "recommended":
                patch.set_edgecolor("#111")
                patch.set_linewidth(1.6)
        bottom += vals
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Patch(facecolor=color, label=label) for _k, label, color in parts]
    if bars:
        ax.axhline(bars[0]["fp32_bytes"] / div, color="#333", ls="--", lw=1)
        handles.append(Line2D([], [], color="#333", ls="--", lw=1, label="every row in FP32"))
    for i, r in enumerate(bars):
        ax.text(i, bottom[i], f"{_bytes_short(r['total_bytes'])}\n{r['ratio_vs_fp32']:.2f}x",
                ha="center", va="bottom", fontsize=7.5)
    ax.set_xticks(x, [memory_label(r) for r in bars], fontsize=7.5)
    ax.set_ylabel(f"embedding memory ({unit})")
    ax.set_ylim(0, max(list(bottom) + [bars[0]["fp32_bytes"] / div if bars else 1]) * 1.22)
    ax.set_title("Memory of the recommendation and its alternatives\n(labels: total, reduction "
                 f"vs every row in FP32): {_name(meta)}", fontsize=10)
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22),
              ncol=3, frameon=False)
    return fig


def memory(results: dict, meta: dict, folder: Path) -> Path:
    return _save(memory_figure(results, meta), folder, "memory.png")


def _config_label(r) -> str:
    size = {"all": "all rows\non device", "0": "no cache"}.get(str(r["size"]), f"{r['size']} cache")
    pol = r.get("policy")
    return f"{r['precision'].upper()}\n{size}" + (f"\n{pol.upper()}" if pol and pol != "none" else "")


def accuracy(results: dict, meta: dict, folder: Path) -> Path:
    """Test AUC minus FP32's on the same seed (paired: the seeds' shared noise cancels): each
    seed's difference, and the mean with the ±2 std/√n interval the report's verdict uses."""
    from .accuracy import AUC_TOLERANCE, auc_comparison
    plt = _plt()
    training = results["training"]
    tr = [r for r in training if r.get("auc") is not None]
    base = {r.get("seed"): r["auc"] for r in tr if r["precision"] == "fp32"}
    configs: dict = {}
    for r in tr:
        if r["precision"] == "fp32" or r.get("seed") not in base:
            continue
        key = (r["precision"], str(r["size"]), r.get("policy") or "none")
        configs.setdefault(key, (_config_label(r), []))[1].append(r["auc"] - base[r.get("seed")])
    fig, ax = plt.subplots(figsize=(max(8.5, 1.1 * len(configs) + 2), 4.8))
    colors = {"held": "#2ca02c", "lost": "#d62728", "not distinguishable": "#ff7f0e"}
    ax.axhspan(-AUC_TOLERANCE, AUC_TOLERANCE, color="#2ca02c", alpha=0.12,
               label=f"±{AUC_TOLERANCE:g} of FP32")
    ax.axhline(0, color="#333", lw=0.8)
    seen = set()
    for i, (key, (label, diffs)) in enumerate(configs.items()):
        c = auc_comparison(training, *key)
        ax.plot([i] * len(diffs), diffs, ".", color="#888", ms=5,
                label=None if "seed" in seen else "one seed")
        seen.add("seed")
        err = 0 if c["diff_se"] is None else 2 * c["diff_se"]
        v = c["verdict"]
        ax.errorbar([i], [c["diff_mean"]], yerr=[err], fmt="o", capsize=4,
                    color=colors.get(v, "#1f77b4"), label=None if v in seen else f"mean ± 2 std/√n: {v}")
        seen.add(v)
    ax.set_xticks(range(len(configs)), [lab for lab, _ in configs.values()], fontsize=8)
    ax.set_ylabel("test AUC minus FP32's (same seed)")
    ax.set_title(f"Accuracy against all-FP32 training ({len(base)} seed(s)): {_name(meta)}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
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
    from matplotlib.ticker import FuncFormatter, NullFormatter
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p=None: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(x, names, rotation=60, fontsize=8)
    ax.set_xlabel("table")
    ax.set_ylabel("cache rows given to the table")
    ax.set_title(f"Per-table split of {_bytes_short(al['budget_bytes'])} of FP32 cache lines: "
                 f"{_name(meta)}", fontsize=11)
    ax.legend(fontsize=8)
    return _save(fig, folder, "allocation.png")
