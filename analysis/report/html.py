"""The report's HTML building blocks: escaping (every user string goes through esc(); JSON in a
<script> has <, > and & escaped), number formats, the summary cards, and the page's CSS and
JavaScript, which live beside this file (report.css, report.js, live.js)."""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from tuner.experiment import is_finite

PLOT_CONFIG = {"responsive": True, "displaylogo": False}


def _asset(name: str) -> str:
    # Read once, at import: the page is built many times while a search runs (live reports).
    return "\n" + (Path(__file__).with_name(name)).read_text(encoding="utf-8")


CSS = _asset("report.css")
SCRIPT = _asset("report.js")  # its `%s` is the plotly config
# While a search runs the page reloads itself; the scroll position survives the reload.
LIVE_SCRIPT = _asset("live.js")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def script_json(obj: Any) -> str:
    """JSON safe inside <script>: no `<`, `>` or `&` survives, so no `</script>` either."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )  # fmt: skip


def figure_spec(fig: go.Figure) -> dict[str, Any]:
    """{data, layout} as plain JSON (plotly's encoder turns numpy arrays and NaN into lists and
    null)."""
    return json.loads(pio.to_json(fig, validate=False, pretty=False, engine="json"))


def pct(value: Any) -> str:
    return f"{float(value):.2%}" if is_finite(value) else "n/a"


def points(new: Any, old: Any) -> str:
    """A change in accuracy, in percentage points, with its sign and a colour class."""
    if not (is_finite(new) and is_finite(old)):
        return ""
    delta = (float(new) - float(old)) * 100
    cls = "up" if delta > 0 else "down" if delta < 0 else ""
    return f'<span class="{cls}">{delta:+.2f} pts</span>'


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _when(stamp: Any) -> str:
    """An ISO timestamp from provenance as '2026-11-28 16:54 UTC' (as written if unparsable)."""
    try:
        moment = datetime.fromisoformat(str(stamp)).astimezone(timezone.utc)
    except ValueError:
        return str(stamp)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def card(key: str, value: str, detail: str = "") -> str:
    return (
        f'<div class="card"><div class="k">{key}</div><div class="v">{value}</div>'
        f'<div class="d">{detail}</div></div>'
    )
