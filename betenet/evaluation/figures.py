"""Evaluation figures: parity plots with their metrics (Fig. 3/4), precision–recall curves with
operating points and confusion insets (Fig. 5), best/worst spectra (Fig. 4 j, k), per-element
error bars (Fig. 4 l) and metrics against ensemble size.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, no backend
switch), written as PNG; every ``*_plot``/``*_grid``/``*_panel`` function that takes ``path``
creates the parent folder and returns the written :class:`~pathlib.Path`. The double-descent
figures are training's own (:mod:`betenet.training.plots`).

Every symbol a figure uses is defined on it (Δ̄, error bars, shaded bands: in a legend, an axis label or
a caption line at the bottom), axes that count things have whole-number ticks, and panels that are
compared share their scales. Degenerate inputs (nothing to draw, one value, all values equal, NaN,
values too small for a log axis) give a figure that says so instead of an exception; inputs of
inconsistent shapes are still refused with ``ValueError``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from betenet.evaluation.metrics import TABLE_DIGITS, regression_metrics
from betenet.evaluation.screening import PRCurve
from betenet.physics.properties import PROPERTIES

__all__ = [
    "parity_plot",
    "parity_grid",
    "pr_curve_plot",
    "confusion_plot",
    "spectra_panel",
    "per_element_plot",
    "ensemble_size_plot",
    "distribution_plot",
]

DPI = 120
#: Axis labels of the properties (matplotlib mathtext).
AXIS_LABELS = {"lambda": r"$\lambda$", "omega_log_K": r"$\omega_{\log}$ (K)", "omega_2_K": r"$\omega_2$ (K)",
               "tc_K": r"$T_c$ (K)"}


#: Definitions written on the figures that use the symbol.
DELTA_BAR = (r"$\bar{\Delta}$ = mean over $\lambda$, $\omega_{\log}$, $\omega_2$ of |predicted − true| / |true| "
             "(one value per material)")
STD_BARS = "error bars: ± 1 standard deviation over the ensemble members"
STD_BAND = "shaded band: ± 1 standard deviation over the ensemble members"


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _caption(fig: Figure, lines) -> None:
    """Caption lines at the bottom left of a constrained-layout figure (room is made for them)."""
    lines = [line for line in lines if line]
    if not lines:
        return
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=7, color="0.25", ha="left", va="bottom")
    height = fig.get_figheight()
    share = min(0.4, (0.17 * len(lines) + 0.08) / height)
    fig.get_layout_engine().set(rect=(0, share, 1, 1 - share))


def _nothing(ax, text: str = "nothing to draw") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _finite(x) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def _metrics_text(metrics: Mapping, name: str) -> str:
    d = TABLE_DIGITS.get(name, 2)
    return (
        f"R² = {metrics['r2']:.2f}\nMAE = {metrics['mae']:.{d}f}\n"
        f"RMSE = {metrics['rmse']:.{d}f}\nn = {metrics['n']}"
    )


# --------------------------------------------------------------------------------------------
# Parity
# --------------------------------------------------------------------------------------------
def parity_plot(true, pred, name: str, metrics: Mapping | None = None, ax=None, std=None):
    """Predicted against true ``name`` (a property key or any label) with the y = x line, optional
    ±``std`` error bars and the metrics (``regression_metrics``; computed when None) in the panel.
    Draws on ``ax`` (a new figure when None) and returns the axes."""
    t = np.asarray(true, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"true and pred must be 1-D of equal length, got {t.shape} and {p.shape}")
    if ax is None:
        ax = Figure(figsize=(4, 4)).add_subplot()
    metrics = regression_metrics(t, p) if metrics is None else metrics
    if std is not None:
        ax.errorbar(t, p, yerr=np.asarray(std, dtype=np.float64), fmt="none", ecolor="tab:blue", alpha=0.3, lw=0.8,
                    label="± 1 std (members)")
    ax.scatter(t, p, s=10, color="tab:blue", alpha=0.7, edgecolors="none")
    finite = np.concatenate([_finite(t), _finite(p)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo or abs(hi) or 1.0)
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    label = AXIS_LABELS.get(name, name)
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.text(0.04, 0.96, _metrics_text(metrics, name), transform=ax.transAxes, va="top", fontsize=8,
            bbox=dict(boxstyle="round", fc="white", ec="0.7", alpha=0.9))
    ax.legend(loc="lower right", fontsize=7)
    if not finite.size:
        ax.text(0.5, 0.5, "no finite value", transform=ax.transAxes, ha="center", va="center", color="0.4")
    return ax


def parity_grid(true_props: Mapping, pred_props: Mapping, path, title: str | None = None,
                std_props: Mapping | None = None) -> Path:
    """One parity panel per property of :data:`PROPERTIES` present in both dicts (optional
    ``std_props`` of the same keys gives error bars, defined in the caption). No property in common:
    a figure that says so."""
    names = [k for k in PROPERTIES if k in true_props and k in pred_props]
    fig = Figure(figsize=(3.6 * max(1, len(names)), 4.3), layout="constrained")
    axes = fig.subplots(1, max(1, len(names)), squeeze=False)[0]
    if not names:
        _nothing(axes[0], "no property in common")
    with_std = False
    for ax, k in zip(axes, names):
        std = None if std_props is None else std_props.get(k)
        with_std |= std is not None
        parity_plot(true_props[k], pred_props[k], k, ax=ax, std=std)
    if title:
        fig.suptitle(title)
    _caption(fig, ["dashed: y = x (a perfect prediction); R², MAE, RMSE over the n materials with finite values",
                   STD_BARS if with_std else None])
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# Screening
# --------------------------------------------------------------------------------------------
def _confusion_matrix_axes(ax, conf: Mapping, title: str | None, fontsize: float) -> None:
    """2×2 matrix: rows true (neg, pos), columns predicted (neg, pos); random counts in brackets."""
    cells = np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]], dtype=float)
    ax.imshow(cells, cmap="Blues", vmin=0)
    rnd = conf.get("random")
    keys = (("tn", "fp"), ("fn", "tp"))
    for i in range(2):
        for j in range(2):
            text = f"{int(cells[i, j])}"
            if rnd is not None:
                text += f"\n({rnd[keys[i][j]]:.1f})"
            colour = "white" if cells[i, j] > 0.6 * cells.max() else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=colour)
    ax.set_xticks([0, 1], ["neg", "pos"], fontsize=fontsize)
    ax.set_yticks([0, 1], ["neg", "pos"], fontsize=fontsize)
    ax.set_xlabel("predicted", fontsize=fontsize)
    ax.set_ylabel("true", fontsize=fontsize)
    if title:
        ax.set_title(title, fontsize=fontsize + 1)


def confusion_plot(conf: Mapping, path=None, ax=None, title: str | None = None):
    """Confusion matrix of :func:`betenet.evaluation.screening.confusion` (x: predicted label,
    y: true label; the random classifier's expected counts in parentheses). Draws on ``ax`` and
    returns it, or, without ``ax``, writes ``path`` and returns the path."""
    if ax is not None:
        _confusion_matrix_axes(ax, conf, title, 9)
        return ax
    if path is None:
        raise ValueError("give path= (or ax=)")
    fig = Figure(figsize=(3.4, 3.2))
    _confusion_matrix_axes(fig.add_subplot(), conf, title, 10)
    fig.tight_layout()
    return _save(fig, path)


def pr_curve_plot(curves: Mapping[str, PRCurve], aps: Mapping[str, float], random_ap: float, path,
                  operating_points: Mapping[str, Mapping] | None = None,
                  confusions: Mapping[str, Mapping] | None = None, threshold_K: float | None = None) -> Path:
    """One precision–recall panel per model, the line coloured by the decision threshold
    (T_c^ML, K; one colour scale for all panels), titled "model (AP = ...)", with the random
    classifier's AP (``random_ap``, the prevalence) dashed. ``operating_points[model]`` (a dict
    with ``precision`` and ``recall``, e.g. from ``operating_point``) is drawn as a black marker;
    ``confusions[model]`` (from ``confusion``) as a matrix below its panel, where it hides no curve.
    ``threshold_K`` is the reference T_c from which a material counts as positive, written on the
    figure (None: unknown to the caller, the figure names the screening threshold and its default,
    :data:`~betenet.evaluation.screening.DEFAULT_THRESHOLD_K`). No curve: a figure that says so."""
    from betenet.evaluation.screening import DEFAULT_THRESHOLD_K

    positive = (rf"reference $T_c \geq$ {float(threshold_K):g} K" if threshold_K is not None else
                rf"reference $T_c \geq$ the screening threshold ({DEFAULT_THRESHOLD_K:g} K unless --threshold)")
    curves = dict(curves or {})
    confusions = {k: v for k, v in (confusions or {}).items() if v is not None and k in curves}
    nonempty = [np.asarray(c.thresholds, dtype=float) for c in curves.values() if len(c)]
    t_all = _finite(np.concatenate(nonempty)) if nonempty else np.zeros(0)
    t_lo, t_hi = (float(t_all.min()), float(t_all.max())) if t_all.size else (0.0, 1.0)
    norm = Normalize(vmin=t_lo, vmax=t_hi if t_hi > t_lo else t_lo + 1.0)
    n = max(1, len(curves))
    rows = 2 if confusions else 1
    fig = Figure(figsize=(4.0 * n + 0.9, 4.2 + 2.3 * (rows - 1) + 0.5), layout="constrained")
    grid = fig.subplots(rows, n, squeeze=False, height_ratios=[3.2, 1.6] if rows == 2 else None)
    axes = grid[0]
    if not curves:
        _nothing(axes[0], "no precision-recall curve")
    for col, (ax, (model, c)) in enumerate(zip(axes, curves.items())):
        if len(c) > 1:
            pts = np.column_stack([c.recall, c.precision])
            lines = LineCollection(np.stack([pts[:-1], pts[1:]], axis=1), cmap="viridis", norm=norm, lw=2)
            lines.set_array(np.asarray(c.thresholds[:-1], dtype=float))
            ax.add_collection(lines)
        if len(c):
            ax.scatter(c.recall, c.precision, c=c.thresholds, cmap="viridis", norm=norm, s=8, zorder=3)
        if np.isfinite(random_ap):
            ax.axhline(random_ap, color="0.4", ls="--", lw=1, label=f"random classifier (AP = {random_ap:.2f})")
        op = (operating_points or {}).get(model)
        if op is not None:
            label = "operating point"
            if "threshold" in op:
                label = rf"operating point, $T_c^{{\mathrm{{ML}}}} \geq$ {op['threshold']:.1f} K"
            ax.plot(op["recall"], op["precision"], "ko", ms=7, zorder=4, label=label)
        ap = aps.get(model, float("nan"))
        ax.set_title(f"{model} (AP = {ap:.2f})")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", fontsize=7)
        if rows == 2:
            below = grid[1, col]
            conf = confusions.get(model)
            if conf is None:
                below.set_axis_off()
            else:
                _confusion_matrix_axes(below, conf, "at the operating point", 7)
    fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=list(axes),
                 label=r"decision threshold $T_c^{\mathrm{ML}}$ (K)")
    _caption(fig, [
        f"positive = {positive}; a material is flagged when its predicted "
        r"$T_c^{\mathrm{ML}}$ is at or above the decision threshold (line colour)",
        "AP: average precision; dashed: a random classifier, whose AP is the share of positives"
        + ("; matrices: counts at the operating point, a random classifier's expected counts in brackets"
           if confusions else "")])
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# Spectra, per element, ensemble size
# --------------------------------------------------------------------------------------------
def _per_model(x, name: str) -> dict:
    if x is None:
        return {}
    if isinstance(x, Mapping):
        return {k: np.asarray(v, dtype=np.float64) for k, v in x.items()}
    return {name: np.asarray(x, dtype=np.float64)}


def _wrap(title: str, width: int) -> str:
    return "\n".join(textwrap.wrap(str(title), width=width, break_long_words=True)) or str(title)


def spectra_panel(omega, true_a2f, pred_mean, pred_std, titles, path, ncols: int = 3,
                  suptitle: str | None = None, overlays: Mapping | None = None) -> Path:
    """Grid of a2F panels (e.g. the six best or six worst materials): the true a2F [K, B] in black
    (rows of NaN draw nothing: no reference) and each prediction — ``pred_mean`` [K, B], or model
    name → [K, B] — as a line with a ±std band (``pred_std`` of the same form, or None). ``overlays``
    (label → [K, B]) are drawn dashed in grey, e.g. the phonon DOS. ``titles`` [K] label the panels,
    wrapped to the panel's width; the caption defines the band and, where a title uses it, Δ̄.
    No row (K = 0): a figure that says so."""
    w = np.asarray(omega, dtype=np.float64)
    truth = np.asarray(true_a2f, dtype=np.float64)
    means = _per_model(pred_mean, "prediction")
    stds = _per_model(pred_std, "prediction")
    titles = [str(t) for t in titles]
    if truth.size == 0 and not titles:
        truth = truth.reshape(0, w.size)
    if truth.ndim != 2 or truth.shape[1] != w.size or len(titles) != truth.shape[0]:
        raise ValueError(f"true_a2f must be [K, {w.size}] with K titles: {truth.shape}, {len(titles)} titles")
    for model, m in means.items():
        if m.size == 0 and truth.size == 0:
            continue
        if m.shape != truth.shape or (model in stds and stds[model].shape != truth.shape):
            raise ValueError(f"prediction {model!r} must have shape {truth.shape}")
    k = truth.shape[0]
    ncols = max(1, min(ncols, k))
    nrows = max(1, -(-k // ncols))
    fig = Figure(figsize=(3.5 * ncols, 2.9 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = [f"C{i}" for i in range(len(means))]
    band = False
    for i, ax in enumerate(axes):
        if i >= k:
            if k:
                ax.set_axis_off()
            else:
                _nothing(ax, "no spectrum")
            continue
        if np.isfinite(truth[i]).any():
            ax.plot(w, truth[i], color="k", lw=1.5, label="true")
        for j, (label, values) in enumerate((overlays or {}).items()):
            ax.plot(w, np.asarray(values, dtype=np.float64)[i], color="0.5", lw=1.0, ls=("--", ":")[j % 2],
                    label=label)
        for colour, (model, m) in zip(colours, means.items()):
            ax.plot(w, m[i], color=colour, lw=1.2, label=f"{model} (mean)" if model in stds else model)
            if model in stds:
                band = True
                ax.fill_between(w, m[i] - stds[model][i], m[i] + stds[model][i], color=colour, alpha=0.25, lw=0,
                                label=f"{model} ± 1 std" if i == 0 else None)
        ax.set_title(_wrap(titles[i], 40), fontsize=8)
        ax.set_xlabel(r"$\omega$ (meV)", fontsize=8)
        ax.set_ylabel(r"$\alpha^2F(\omega)$", fontsize=8)
        ax.tick_params(labelsize=7)
    if k and axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=6)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    uses_delta = any("Δ" in t for t in titles + [suptitle or ""])
    _caption(fig, [STD_BAND if band else None, DELTA_BAR if uses_delta else None])
    return _save(fig, path)


def per_element_plot(per_element: Mapping, path, title: str | None = None) -> Path:
    """Bars of mean Δ̄ per element, from :func:`betenet.evaluation.metrics.per_element_error`
    (element → (mean, count)), or model name → such a dict for grouped bars. Tick labels carry
    the number of materials (of the first model) containing the element; the caption defines Δ̄.
    Nothing to show: a figure that says so."""
    per_element = dict(per_element or {})
    first = next(iter(per_element.values()), None)
    models = per_element if isinstance(first, Mapping) else {"": per_element}
    elements: list[str] = []
    for tab in models.values():
        elements += [e for e in tab if e not in elements]
    ref = next(iter(models.values()), {})
    x = np.arange(len(elements))
    width = 0.8 / max(1, len(models))
    fig = Figure(figsize=(max(6.0, 0.32 * len(elements) * max(1, len(models) ** 0.5)), 4.0), layout="constrained")
    ax = fig.add_subplot()
    if not elements:
        _nothing(ax, "no element with a finite error")
    for i, (model, tab) in enumerate(models.items()):
        vals = [tab[e][0] if e in tab else np.nan for e in elements]
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=model or None)
    if elements:
        ax.set_xticks(x, [f"{e}\n{ref[e][1] if e in ref else 0}" for e in elements], fontsize=7)
        ax.set_xlim(-0.6, len(elements) - 0.4)
    ax.set_ylabel(r"mean $\bar{\Delta}$")
    ax.set_xlabel("element (number of materials containing it)")
    if len(models) > 1:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    _caption(fig, [DELTA_BAR + "; bar: its mean over the materials containing the element"])
    return _save(fig, path)


def ensemble_size_plot(result: Mapping, path, title: str | None = None) -> Path:
    """MAE (top row) and R² (bottom row) of each property against the number of members averaged,
    mean ± std over draws, from :func:`betenet.evaluation.metrics.metric_vs_ensemble_size`; whole-number
    ticks on the ensemble-size axis, the error bars defined in the caption. No property or size: a
    figure that says so."""
    sizes = np.asarray(result.get("sizes", []), dtype=float)
    props = dict(result.get("properties") or {})
    n = max(1, len(props))
    fig = Figure(figsize=(3.3 * n, 5.6), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, sharex=True)
    if not props or sizes.size == 0:
        _nothing(axes[0, 0], "no ensemble size to show")
        axes[1, 0].set_axis_off()
    positive = sizes[np.isfinite(sizes) & (sizes > 0)]
    log_x = positive.size > 1 and positive.max() / positive.min() >= 10
    for j, (name, st) in enumerate(props.items()):
        for i, (metric, label) in enumerate((("mae", "MAE"), ("r2", "R²"))):
            ax = axes[i, j]
            mean = np.asarray(st.get(f"{metric}_mean", []), dtype=float)
            std = np.asarray(st.get(f"{metric}_std", np.zeros_like(mean)), dtype=float)
            if mean.shape == sizes.shape and sizes.size:
                ax.errorbar(sizes, mean, yerr=std if std.shape == mean.shape else None, marker="o", ms=3, capsize=2)
            axis = AXIS_LABELS.get(name, name)
            ax.set_ylabel(f"{label} {axis.removesuffix(' (K)') if metric == 'r2' else axis}")
            if log_x:  # decades 1, 10, 100 written as whole numbers
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, j].set_xlabel("ensemble size (members averaged)")
    if title:
        fig.suptitle(title)
    draws = result.get("n_draws")
    _caption(fig, ["points: mean over random draws of that many members"
                   + (f" ({min(draws)}–{max(draws)} draws per size)" if draws else "")
                   + "; error bars: ± 1 standard deviation over the draws"])
    return _save(fig, path)


def _log_bins(v: np.ndarray, n: int = 30) -> np.ndarray:
    """Increasing logarithmic bin edges around the positive values ``v`` (all equal, or of any size)."""
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo * 1.0001:
        lo, hi = lo / 1.5, hi * 1.5
    return np.geomspace(lo, hi * 1.0001, n)


def distribution_plot(values: Mapping, ranges: Mapping, path, title: str | None = None) -> Path:
    """Histograms of predicted properties (``values``: property → [N]) with the typical range of real
    metals shaded (``ranges``: property → (lo, hi)); log axes for λ and frequencies (positive values;
    how many were zero or negative is written on the panel). Values of any size, all equal, NaN or none
    at all are drawn without error."""
    names = [k for k in values if np.isfinite(np.asarray(values[k], dtype=float)).any()]
    fig = Figure(figsize=(3.8 * max(1, len(names)), 3.6), layout="constrained")
    axes = fig.subplots(1, max(1, len(names)), squeeze=False)[0]
    if not names:
        _nothing(axes[0], "no finite value")
    for ax, k in zip(axes, names):
        v = _finite(values[k])
        pos = v[v > 0]
        if pos.size:
            ax.hist(pos, bins=_log_bins(pos), color="C0", label="predicted")
            ax.set_xscale("log")
        if pos.size < v.size:
            ax.text(0.98, 0.95, f"{v.size - pos.size} value(s) ≤ 0 not shown", transform=ax.transAxes,
                    ha="right", va="top", fontsize=7)
        if k in ranges:
            ax.axvspan(*ranges[k], color="C2", alpha=0.15, lw=0, label="typical range of real metals")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
        ax.set_xlabel(AXIS_LABELS.get(k, k))
        ax.set_ylabel("materials")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return _save(fig, path)
