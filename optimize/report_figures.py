"""The reports' figures and pictures, embedded as base64 images: best-so-far val CER curves,
the advisor x pair matrix, and page crops around an answer box.

matplotlib, numpy and PIL are imported when a figure is drawn; figure texts are drawn as
written (``write_report`` turns mathtext off), so any pair name survives.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from optimize.report_format import esc
from optimize.run_record import RunRecord

CROP_MAX = (420, 200)  # an error's page crop, pixels
THUMB_MAX = (260, 260)  # a demo page's thumbnail, pixels


def curves_section(runs: Sequence[RunRecord]) -> str:
    """Mean over pairs of the best-so-far full-val CER against answer-model evaluations, per run."""
    import numpy as np

    series = []
    for run in runs:
        curves = [c for c in (p.get("curve") or [] for p in run.pairs.values()) if c]
        if not curves:
            continue
        grid = np.unique(np.array([x for c in curves for x, _ in c], dtype=float))
        # A pair counts from its first full-val score on and keeps its last value after it stops.
        stacked = np.full((len(curves), len(grid)), np.nan)
        for i, curve in enumerate(curves):
            xs = np.array([x for x, _ in curve], dtype=float)
            ys = np.array([y for _, y in curve], dtype=float)
            idx = np.searchsorted(xs, grid, side="right") - 1
            stacked[i] = np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.nan)
        label = f"{run.optimizer} / {run.advisor} ({run.run_id[:8]})"
        series.append((label, grid, np.nanmean(stacked, axis=0), len(curves)))
    if not series:
        return "<p class='note'>no candidate was scored on the full val split</p>"

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for label, grid, values, n in series:
        ax.step(grid, values, where="post", marker="o", markersize=3, label=f"{label}, {n} pairs")
    ax.set_xlabel("answer-model evaluations per pair (prompt x example)")
    ax.set_ylabel("mean best-so-far val CER")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    note = ("<p class='note'>Each point: after that many evaluations of a pair's budget, the lowest val CER "
            "found so far, averaged over the pairs scored by then.</p>")
    return note + figure_html(fig, "best-so-far val CER against answer-model evaluations")


def matrix_figure(values: Any, winner: dict[str, set[str]]) -> Any:
    import numpy as np

    plt = _pyplot()
    data = values.to_numpy(dtype=float)
    # Wide enough for the longest pair name on the left (about 0.07 in a character at 8 pt).
    label_in = 0.07 * max(len(str(i)) for i in values.index)
    fig, ax = plt.subplots(figsize=(min(label_in + 2.5 + 1.0 * data.shape[1], 16), min(1.5 + 0.3 * data.shape[0], 30)))
    image = ax.imshow(np.clip(data, 0, 1), cmap="RdYlGn_r", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(data.shape[1]), [str(c) for c in values.columns], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(data.shape[0]), [str(i) for i in values.index], fontsize=8)
    for i, pair in enumerate(values.index):
        for j, advisor in enumerate(values.columns):
            if not math.isnan(data[i, j]):
                mark = "★" if advisor in winner.get(pair, ()) else ""
                ax.text(j, i, f"{data[i, j]:.2f}{mark}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="test CER (clipped at 1)")
    fig.tight_layout()
    return fig


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; the figures go into the HTML
    import matplotlib.pyplot as plt

    return plt


def figure_html(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # tight: long pair names and colorbar labels fit
    _pyplot().close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<figure><img alt='{esc(alt)}' src='data:image/png;base64,{data}'></figure>"


def crop_data_uri(image: str | None, bbox: Sequence[float] | None,
                   max_size: tuple[int, int] = CROP_MAX) -> str | None:
    """The page around ``bbox`` (outlined), downscaled, as a JPEG data URI; None if unreadable."""
    from PIL import Image, ImageDraw

    if not image:
        return None
    try:
        with Image.open(image) as img:
            page = img.convert("RGB")
    except (OSError, ValueError):
        return None
    if bbox and len(bbox) == 4:
        x1, y1, x2, y2 = (float(v) for v in bbox)
        ImageDraw.Draw(page).rectangle([x1 - 2, y1 - 2, x2 + 2, y2 + 2], outline=(220, 0, 0), width=2)
        # Enough context to read the field's label on its left and the lines around it.
        pad_x = max(60.0, 0.5 * (x2 - x1))
        pad_y = max(40.0, 2.0 * (y2 - y1))
        page = page.crop((max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y)),
                          min(page.width, int(x2 + pad_x)), min(page.height, int(y2 + pad_y))))
    page.thumbnail(max_size)
    buf = io.BytesIO()
    page.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
