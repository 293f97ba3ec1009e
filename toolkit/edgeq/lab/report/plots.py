"""The report's figures as PNG bytes: a trend per device × model and a sweep's Pareto plot.

A figure is drawn only from data: a panel needs at least two measured points (one point
makes no trend, and matplotlib would stretch its date axis over years), a figure with no
panel is not drawn at all. Dates use matplotlib's concise formatter.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from typing import Any

from ...status import look

P90, P50 = "#1f4e79", "#4f8fcc"  # blues; failures are marked in the fail colour + shape
BAND_ALPHA = 0.16
BANDS = {
    "latency_p90": "p90 band (median ± k·MAD)",
    "latency_p50": "p50 band",
    "accuracy": "tolerance below the median",
    "model_bytes": "size limit",
}
#: (metric(s), y label, scale) per panel, top to bottom.
PANELS = (
    (("latency_p90", "latency_p50"), "latency (ms)", 1.0),
    (("accuracy",), "accuracy (%)", 100.0),
    (("model_bytes",), "size (KB)", 1 / 1024),
)


def _when(utc: str) -> datetime:
    return datetime.strptime(utc, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _png(fig) -> bytes:
    from ...plotting import plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110)  # laid out already: no second pass
    finally:
        plt.close(fig)
    return buf.getvalue()


def _dates(ax, xs: list[datetime]) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    lo, hi = min(xs), max(xs)
    pad = max((hi - lo) * 0.05, timedelta(minutes=30))
    ax.set_xlim(lo - pad, hi + pad)


def panels_for(points: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], str, float]]:
    """The panels with at least two measured points."""
    return [p for p in PANELS if max(sum(pt[m] is not None for pt in points) for m in p[0]) >= 2]


def trend_png(result: dict[str, Any]) -> bytes | None:
    """The trend figure of one result as PNG (None: nothing worth a plot)."""
    fig = trend_figure(result)
    return None if fig is None else _png(fig)


def trend_figure(result: dict[str, Any]):
    """p50/p90 latency, accuracy and size of one device × model over its last runs, each
    with the regression band regress used at every point and its regressions marked."""
    import numpy as np

    from ...plotting import plt

    points = result["trend"]
    panels = panels_for(points)
    if not panels:
        return None
    xs_all = [_when(p["started_utc"]) for p in points]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7.0, 0.6 + 2.2 * len(panels)), sharex=True, squeeze=False
    )
    fail = look("fail").css
    for ax, (metrics, ylabel, scale) in zip(axes[:, 0], panels, strict=True):
        for metric in metrics:
            pts = [(x, p) for x, p in zip(xs_all, points, strict=True) if p[metric] is not None]
            if len(pts) < 2:
                continue
            colour = P50 if metric == "latency_p50" else P90
            name = metric.replace("latency_", "")
            xs = [x for x, _ in pts]
            ys = np.array([p[metric] * scale for _, p in pts])
            lo = np.array([_edge(p, metric, "lower", scale) for _, p in pts])
            hi = np.array([_edge(p, metric, "upper", scale) for _, p in pts])
            med = np.array([_edge(p, metric, "median", scale) for _, p in pts])
            if metric in ("accuracy", "model_bytes"):
                # One-sided tolerance: shade from the median to the limit.
                lo, hi = np.where(np.isnan(lo), med, lo), np.where(np.isnan(hi), med, hi)
            _bands(ax, xs, lo, hi, colour, BANDS[metric], upper_edge=metric != "accuracy")
            solo = len(metrics) == 1 or all(p.get("latency_p90") is None for p in points)
            ax.plot(
                xs,
                ys,
                color=colour,
                lw=1.6 if colour == P90 or solo else 1.1,
                ls="-" if colour == P90 or solo else "--",
                marker="o",
                ms=3.5,
                label=name if metric.startswith("latency") else None,
            )
            bad = [(x, p) for x, p in pts if p["status"] == "fail" and metric not in p["regressed"]]
            reg = [(x, p) for x, p in pts if metric in p["regressed"]]
            first = metric == metrics[0]
            marks = (
                (bad, {"marker": "x", "s": 40, "color": fail, "zorder": 4},
                 "run failed (another check)"),
                (reg, {"marker": "^", "s": 90, "facecolor": fail, "edgecolor": "black",
                       "lw": 0.6, "zorder": 5}, "regression"),
            )  # fmt: skip
            for which, style, label in marks:
                if which:
                    ax.scatter(
                        [x for x, _ in which],
                        [p[metric] * scale for _, p in which],
                        label=label if first else None,
                        **style,
                    )
            if reg:
                x0, p0 = reg[0]
                ax.annotate(
                    f"regression ({name})",
                    (x0, p0[metric] * scale),
                    xytext=(-8, 10),
                    textcoords="offset points",
                    ha="right",
                    fontsize=8,
                    color=fail,
                )
        shown = set()
        for x, p in zip(xs_all, points, strict=True):
            if all(p[m] is None for m in metrics) and p["status"] != "pass":
                lk = look(p["status"])
                ax.axvline(
                    x,
                    color=lk.css,
                    ls=(0, (2, 2)),
                    lw=1.2,
                    label=None if p["status"] in shown else f"{p['status']} (not measured)",
                )
                shown.add(p["status"])
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best", framealpha=0.8)
    _dates(axes[-1, 0], xs_all)
    fig.suptitle(f"{result['device']} · {result['model_label']}", fontsize=10)
    fig.tight_layout()
    return fig


def _bands(ax, xs, lo, hi, colour: str, label: str, upper_edge: bool) -> None:
    """Each point's band as its own span (from halfway to the previous point to halfway
    to the next): the band moves as the baseline does, and is absent before judging."""
    import matplotlib.dates as mdates
    import numpy as np

    t = mdates.date2num(xs)
    gaps = np.diff(t)
    left = np.concatenate([[t[0] - gaps[0] / 2], t[1:] - gaps / 2])
    right = np.concatenate([t[:-1] + gaps / 2, [t[-1] + gaps[-1] / 2]])
    if np.all(np.isnan(lo) | np.isnan(hi)):
        return
    # One polygon (and one edge line) for all spans: [l0, r0, l1, r1, …], NaN where unjudged.
    x = np.column_stack([left, right]).ravel()
    lo2, hi2 = np.repeat(lo, 2), np.repeat(hi, 2)
    ax.fill_between(x, lo2, hi2, color=colour, alpha=BAND_ALPHA, lw=0, label=label)
    ax.plot(x, hi2 if upper_edge else lo2, color=colour, lw=0.8, ls=":")


def _edge(point: dict[str, Any], metric: str, key: str, scale: float) -> float:
    b = point["bands"].get(metric)
    v = None if b is None else b.get(key)
    return float("nan") if v is None else v * scale


def pareto_png(sweep: dict[str, Any], limits: dict[str, float] | None = None) -> bytes | None:
    """Size × accuracy and latency × accuracy of a sweep's candidates, fronts highlighted;
    `limits` (budget: model_bytes, latency, accuracy) are drawn as dashed lines."""
    from ...plotting import plt

    cands = sweep["candidates"]
    if not cands:
        return None
    has_latency = any(c["latency"] is not None for c in cands)
    cols = 2 if has_latency else 1
    fig, axes = plt.subplots(1, cols, figsize=(4.6 * cols, 3.8), squeeze=False)
    front_colour, other = look("pass").css, "#9a9a9a"
    markers = "osD^vP*"
    devices = sorted({c["device"] for c in cands})
    specs = [("model_bytes", "front_size", "size (KB)", 1 / 1024)]
    if has_latency:
        specs.append(("latency", "front_latency", f"{sweep['latency_metric']} (ms)", 1.0))
    for ax, (x, flag, xlabel, scale) in zip(axes[0], specs, strict=True):
        for k, device in enumerate(devices):
            mine = [c for c in cands if c["device"] == device and c[x] is not None]
            mark = markers[k % len(markers)]
            rest = [c for c in mine if not c[flag]]
            front = sorted((c for c in mine if c[flag]), key=lambda c: c[x])
            tag = f" ({device})" if len(devices) > 1 else ""
            ax.scatter(
                [c[x] * scale for c in rest],
                [c["accuracy"] * 100 for c in rest],
                marker=mark,
                s=28,
                color=other,
                label=f"dominated{tag}" if rest else None,
            )
            ax.plot(
                [c[x] * scale for c in front],
                [c["accuracy"] * 100 for c in front],
                marker=mark,
                ms=7,
                color=front_colour,
                drawstyle="steps-post",
                lw=1.4,
                label=f"Pareto front{tag}",
            )
            for c in front:
                ax.annotate(
                    c["model"],
                    (c[x] * scale, c["accuracy"] * 100),
                    xytext=(4, -10),
                    textcoords="offset points",
                    fontsize=7,
                )
        if limits and limits.get(x) is not None:
            top = max((c[x] for c in cands if c[x] is not None), default=0) * scale
            lim = limits[x] * scale
            if top and lim > 3 * top:  # far to the right: say it rather than squash the plot
                ax.text(0.98, 0.03, f"budget limit {lim:g} →", ha="right", transform=ax.transAxes,
                        fontsize=7, color="#c65d00")  # fmt: skip
            else:
                ax.axvline(lim, ls="--", lw=1, color="#c65d00", label="budget limit")
        if limits and limits.get("accuracy") is not None:
            ax.axhline(limits["accuracy"] * 100, ls="--", lw=1, color="#c65d00")
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("accuracy (%)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"sweep {sweep['run_id']}: cost vs accuracy", fontsize=10)
    fig.tight_layout()
    return _png(fig)
