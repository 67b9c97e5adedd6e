"""Render a report, held as a list of sections, to one self-contained HTML file and Markdown.

A `Section` holds paragraphs, tables and figures (PNG files). HTML embeds the PNGs as base64 so
the file reads offline; Markdown links the PNGs that sit beside it.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    columns: list[str]
    rows: list[list]
    caption: str = ""


@dataclass
class Figure:
    path: Path          # a PNG in the report folder
    caption: str


@dataclass
class Section:
    key: str            # stable id, e.g. "trace", used as the HTML anchor
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)


def _cell(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return "-" if v is None else str(v)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1.5em;color:#1d2330;line-height:1.5;background:#fff}
h1{font-size:1.9em;margin-bottom:.2em}h2{border-bottom:2px solid #e3e7ef;padding-bottom:.2em;margin-top:2em}
.summary{background:#f3f7ff;border:1px solid #c9d8f5;border-radius:8px;padding:1em 1.4em;margin:1.2em 0}
.summary h2{border:none;margin-top:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #d9dee8;
padding:.3em .7em;text-align:right}th{background:#f1f3f8}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #e3e7ef;border-radius:4px}
figcaption{color:#555;font-size:.9em}nav a{margin-right:1em}.meta{color:#666;font-size:.9em}
caption{caption-side:top;text-align:left;color:#555;font-size:.9em;padding-bottom:.3em}
"""


def to_html(title: str, subtitle: str, sections: list[Section]) -> str:
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(subtitle)}</p>",
           "<nav>" + "".join(f"<a href='#{s.key}'>{html.escape(s.title)}</a>" for s in sections)
           + "</nav>"]
    for i, s in enumerate(sections):
        cls = " class='summary'" if i == 0 else ""
        out.append(f"<section id='{s.key}'{cls}><h2>{html.escape(s.title)}</h2>")
        for p in s.paragraphs:
            out.append(f"<p>{html.escape(p)}</p>")
        if s.bullets:
            out.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in s.bullets) + "</ul>")
        for t in s.tables:
            out.append("<table>")
            if t.caption:
                out.append(f"<caption>{html.escape(t.caption)}</caption>")
            out.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in t.columns) + "</tr>")
            for r in t.rows:
                out.append("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>")
            out.append("</table>")
        for f in s.figures:
            data = base64.b64encode(Path(f.path).read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(f.caption)}' src='data:image/png;base64,"
                       f"{data}'><figcaption>{html.escape(f.caption)}</figcaption></figure>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def to_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    out = [f"# {title}", "", f"_{subtitle}_", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for p in s.paragraphs:
            out += [p, ""]
        for b in s.bullets:
            out.append(f"- {b}")
        if s.bullets:
            out.append("")
        for t in s.tables:
            if t.caption:
                out += [f"**{t.caption}**", ""]
            out.append("| " + " | ".join(t.columns) + " |")
            out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.columns))) + "|")
            for r in t.rows:
                out.append("| " + " | ".join(_cell(v) for v in r) + " |")
            out.append("")
        for f in s.figures:
            out += [f"![{f.caption}]({Path(f.path).name})", "", f"_{f.caption}_", ""]
    return "\n".join(out)
