"""The reports' cells: numbers as text, escaped names, HTML tables, cell colours.

Cells come as written in the results CSVs (text such as ``0.3000``, or empty); a cell that
is not a number reads as NaN and shows empty.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any


def html_table(frame: Any, prompt_columns: Sequence[str] = ()) -> str:
    """pandas' HTML table, every cell escaped here (so prompts can carry a class), as written."""
    formatters = {c: (lambda v: f"<span class='prompt'>{esc(v)}</span>") if c in prompt_columns else esc
                  for c in frame.columns}
    table = frame.to_html(index=False, escape=False, border=0, na_rep="", formatters=formatters)
    return f"<div class='scroll'>{table}</div>"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def fmt(value: Any, digits: int = 3) -> str:
    number = num(value)
    return "" if math.isnan(number) else f"{number:.{digits}f}"


def interval(low: Any, high: Any) -> str:
    lo, hi = num(low), num(high)
    return "" if math.isnan(lo) or math.isnan(hi) else f"[{lo:.3f}, {hi:.3f}]"


def mean(column: Any) -> float:
    values = [v for v in (num(x) for x in column) if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def shade(value: float) -> str:
    """A cell colour from green (CER 0) to red (CER >= 1); none for a missing value."""
    if math.isnan(value):
        return "transparent"
    t = min(max(value, 0.0), 1.0)
    return f"hsl({int(120 * (1 - t))},70%,85%)"
