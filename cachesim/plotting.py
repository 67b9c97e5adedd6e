"""Shared plotting style: Agg figures (no display, no pyplot state), labelled axes, log scales,
a title naming the trace, and atomic PNG writes.

    fig, ax = figure("Rank-frequency", trace="kaggle.tsv", xlabel="rank", ylabel="accesses",
                     xlog=True, ylog=True)
    ax.plot(...); ax.legend()
    save(fig, "out/rank_frequency.png")
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Most per-table lines drawn on one plot; more tables are reduced to the largest ones.
MAX_TABLE_LINES = 8


def figure(title: str, *, trace: str | None = None, xlabel: str, ylabel: str,
           xlog: bool = False, ylog: bool = False, size=(7.0, 4.5)):
    """A new Agg figure with one axes: title (with the trace's file name on a second line),
    labelled axes (give units in the labels), log scales as asked, a light grid."""
    fig = Figure(figsize=size, dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    name = Path(str(trace)).name if trace else ""
    ax.set_title(f"{title}\n{name}" if name else title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    return fig, ax


def table_colors(n: int):
    """n distinguishable colours (tab10, then tab20)."""
    from matplotlib import colormaps
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def legend(ax, n_lines: int, title: str | None = None):
    """A legend that stays readable: small font, outside on the right when there are many lines."""
    if n_lines > 5:
        ax.legend(fontsize=7, title=title, title_fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.legend(fontsize=8, title=title, title_fontsize=8)


def save(fig, path) -> Path:
    """Write `fig` as PNG atomically (`cachesim.files.atomic_path`: the usual file mode)."""
    from .files import atomic_path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
