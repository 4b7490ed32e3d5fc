"""Self-contained HTML documents: sections, embedded PNG figures, tables. No external assets.

Every capability (tabular studies, trust layer, imaging, wearables) contributes
:class:`Section` objects; :func:`render` joins them into one page that opens offline.

Examples
--------
>>> page = render("Demo", [Section("Hello", "<p>world</p>")])
>>> "<h2 id=\\"hello\\">Hello</h2>" in page
True
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d2733;line-height:1.45;padding:0 1rem}
h1{border-bottom:3px solid #1f6feb;padding-bottom:.3rem}
h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:right}
th{background:#f3f6fa}td:first-child,th:first-child{text-align:left}
.warn{background:#fff8e1;border-left:4px solid #f0a000;padding:.5rem .8rem;margin:.5rem 0}
.note{background:#eef6ff;border-left:4px solid #1f6feb;padding:.5rem .8rem;margin:.5rem 0}
.best{font-weight:700;background:#eaf7ea}
nav ul{columns:3;font-size:.9rem}
img{max-width:100%}
pre{background:#f6f8fa;padding:.8rem;overflow:auto;font-size:.85rem}
.figs{display:flex;flex-wrap:wrap;gap:1rem}.figs img{max-width:520px}
"""


@dataclass
class Section:
    """One titled part of a report; ``body`` is trusted HTML built by medpredict."""

    title: str
    body: str

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def escape(value: Any) -> str:
    """HTML-escape any value's string form."""
    return html.escape(str(value))


def figure(fig: plt.Figure, alt: str) -> str:
    """Embed a matplotlib figure as a base64 PNG ``<img>`` and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'


def table(
    rows: Iterable[Sequence[Any]],
    header: Sequence[str],
    highlight: int | None = None,
) -> str:
    """An HTML table; ``highlight`` marks one row (by position) as the best."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="best"' if i == highlight else ""
        cells = "".join(f"<td>{escape(c)}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def callout(text: str, kind: str = "warn") -> str:
    """A highlighted paragraph: ``kind`` is ``"warn"`` or ``"note"``."""
    return f'<div class="{kind}">{escape(text)}</div>'


def render(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """Join ``sections`` into a complete, self-contained HTML page."""
    nav = "".join(f'<li><a href="#{s.anchor}">{escape(s.title)}</a></li>' for s in sections)
    parts = [f'<h2 id="{s.anchor}">{escape(s.title)}</h2>\n{s.body}' for s in sections]
    sub = f"<p>{escape(subtitle)}</p>" if subtitle else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{sub}<nav><ul>{nav}</ul></nav>"
        + "\n".join(parts)
        + "</body></html>"
    )
