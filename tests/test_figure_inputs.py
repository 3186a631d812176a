"""Every figure function survives degenerate inputs (issue 21): all values equal, all below 1e-3, one
entry, NaN present, nothing at all — a PNG that says so, never an exception — and the figures carry
what a reader needs: defined symbols, legends, whole-number ticks, shared scales, untruncated titles,
the kept epoch and an honest title when no second descent came."""

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from betenet.evaluation import figures
from betenet.evaluation.landscape import landscape_figure
from betenet.evaluation.screening import PRCurve, confusion, operating_point, precision_recall
from betenet.physics.units import BIN_CENTRES_MEV
from betenet.training import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: name → 1-D values of each degenerate kind
DEGENERATE = {
    "equal": np.full(5, 0.7),
    "tiny": np.array([1e-6, 2e-5, 3e-4, 5e-7]),
    "one": np.array([0.4]),
    "nan": np.array([0.2, np.nan, 0.9, 0.5]),
    "all_nan": np.full(3, np.nan),
    "empty": np.zeros(0),
}
KINDS = sorted(DEGENERATE)


def is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def saved_figures(monkeypatch):
    """Capture the Figure objects the modules save (to inspect titles, legends and ticks)."""
    saved = []
    original = Figure.savefig

    def spy(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return saved


def texts_of(fig) -> str:
    out = [t.get_text() for t in fig.texts]
    if fig._suptitle is not None:
        out.append(fig._suptitle.get_text())
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return "\n".join(out)


def assert_whole_ticks(axis):
    ticks = [t for t in axis.get_majorticklocs() if np.isfinite(t)]
    lo, hi = axis.get_view_interval()
    shown = [t for t in ticks if min(lo, hi) - 1e-9 <= t <= max(lo, hi) + 1e-9]
    assert shown and all(abs(t - round(t)) < 1e-9 for t in shown), shown


def assert_inside(fig):
    """No title, label or text of the figure runs past its edges (a clipped title)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    items = list(fig.texts) + ([fig._suptitle] if fig._suptitle is not None else [])
    for ax in fig.axes:
        items += [ax.title, ax.xaxis.label, ax.yaxis.label]
    for item in items:
        if not item.get_text() or not item.get_visible():
            continue
        box = item.get_window_extent(renderer)
        assert box.x0 >= -1 and box.x1 <= width + 1 and box.y0 >= -1 and box.y1 <= height + 1, item.get_text()


# --------------------------------------------------------------------------------------------
# evaluation figures on degenerate inputs
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_parity_and_distribution_survive(kind, tmp_path):
    v = DEGENERATE[kind]
    ax = figures.parity_plot(v, v * 1.1, "lambda", std=0.1 * np.abs(v))
    assert "n =" in ax.texts[0].get_text()
    assert is_png(figures.parity_grid({"lambda": v, "tc_K": v}, {"lambda": v, "tc_K": v}, tmp_path / "p.png",
                                      std_props={"lambda": 0.1 * v}))
    assert is_png(figures.distribution_plot({"lambda": v, "omega_log_K": v * 1000}, {"lambda": (0.1, 3.0)},
                                            tmp_path / "d.png", title=kind))


def test_distribution_of_values_below_1e3_has_increasing_bins(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    figures.distribution_plot({"lambda": DEGENERATE["tiny"]}, {}, tmp_path / "d.png")
    (ax,) = saved[-1].axes
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == DEGENERATE["tiny"].size  # every value lands in a bin
    lefts = [p.get_x() for p in ax.patches]
    assert lefts == sorted(lefts) and lefts[0] < 1e-6
    assert_whole_ticks(ax.yaxis)  # counts of materials


@pytest.mark.parametrize("kind", KINDS)
def test_spectra_panel_survives(kind, tmp_path):
    v = DEGENERATE[kind]
    k = v.size
    spectra = np.outer(np.nan_to_num(v, nan=0.1) if k else v, np.ones(BIN_CENTRES_MEV.size))
    if kind == "nan":
        spectra[1, 3] = np.nan
    out = figures.spectra_panel(BIN_CENTRES_MEV, spectra, {"CSO": spectra}, {"CSO": 0.1 * spectra},
                                [f"m{i}" for i in range(k)], tmp_path / "s.png")
    assert is_png(out)


def test_spectra_titles_are_not_clipped_and_symbols_are_defined(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    spectra = np.exp(-((BIN_CENTRES_MEV[None, :] - np.array([[20.0], [40.0], [60.0]])) / 8.0) ** 2)
    titles = [f"Nb3Sn{i}Al2Ge (mp-1234567{i})  Tc 18.3 K, pred 17.1 K  Δ̄ = 0.{i}2" for i in range(3)]
    figures.spectra_panel(BIN_CENTRES_MEV, spectra, {"CSO": spectra}, {"CSO": 0.1 * spectra}, titles,
                          tmp_path / "s.png", suptitle="CSO: best 3 by Δ̄")
    fig = saved[-1]
    assert_inside(fig)
    text = texts_of(fig)
    assert "mp-12345670" in text.replace("\n", "")  # the whole title, wrapped rather than cut
    assert "± 1 standard deviation over the ensemble members" in text
    assert r"$\bar{\Delta}$ = mean over" in text


@pytest.mark.parametrize("kind", KINDS)
def test_per_element_and_ensemble_size_survive(kind, tmp_path):
    v = DEGENERATE[kind]
    per = {f"X{i}": (float(x), 1) for i, x in enumerate(v)}
    assert is_png(figures.per_element_plot(per, tmp_path / "e.png"))
    sizes = list(range(1, v.size + 1))
    result = {"sizes": sizes, "n_draws": [3] * len(sizes),
              "properties": {"lambda": {"mae_mean": v, "mae_std": 0 * v, "r2_mean": v, "r2_std": 0 * v}}}
    assert is_png(figures.ensemble_size_plot(result, tmp_path / "n.png"))


def test_empty_inputs_draw_a_figure_that_says_so(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    figures.per_element_plot({}, tmp_path / "e.png")
    assert "no element" in texts_of(saved[-1])
    figures.ensemble_size_plot({"sizes": [], "properties": {}}, tmp_path / "n.png")
    assert "no ensemble size" in texts_of(saved[-1])
    figures.parity_grid({}, {}, tmp_path / "p.png")
    assert "no property in common" in texts_of(saved[-1])
    figures.pr_curve_plot({}, {}, float("nan"), tmp_path / "pr.png")
    assert "no precision-recall curve" in texts_of(saved[-1])
    landscape_figure({"run": "x", "alphas": [], "betas": [], "landscapes": {}}, tmp_path / "l.png")
    assert "no landscape" in texts_of(saved[-1])


def test_ensemble_size_ticks_are_whole_numbers_and_error_bars_defined(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    result = {"sizes": [1, 2, 3], "n_draws": [5, 5, 1],
              "properties": {"tc_K": {"mae_mean": [1.0, 0.8, 0.7], "mae_std": [0.1, 0.05, 0.0],
                                      "r2_mean": [0.5, 0.6, 0.7], "r2_std": [0.1, 0.05, 0.0]}}}
    figures.ensemble_size_plot(result, tmp_path / "n.png")
    fig = saved[-1]
    assert_whole_ticks(fig.axes[1].xaxis)
    assert "error bars: ± 1 standard deviation over the draws" in texts_of(fig)


def test_per_element_defines_delta(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    figures.per_element_plot({"Nb": (0.2, 3), "C": (0.1, 1)}, tmp_path / "e.png")
    assert r"$\bar{\Delta}$ = mean over" in texts_of(saved[-1])


def test_parity_grid_defines_error_bars(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    v = np.array([0.2, 0.5, 0.9])
    figures.parity_grid({"lambda": v}, {"lambda": v}, tmp_path / "p.png", std_props={"lambda": 0.1 * v})
    text = texts_of(saved[-1])
    assert "error bars: ± 1 standard deviation over the ensemble members" in text and "y = x" in text


@pytest.mark.parametrize("kind", ["equal", "one", "nan"])
def test_pr_curves_survive(kind, tmp_path):
    t = np.array([1.0, 6.0, 8.0, 2.0])
    p = {"equal": np.full(4, 5.0), "one": np.array([np.nan, 7.0, np.nan, np.nan]),
         "nan": np.array([1.0, np.nan, 9.0, 3.0])}[kind]
    curve = precision_recall(t, p, threshold_K=5.0)
    conf = confusion(t, p, 5.0, 5.0)
    assert is_png(figures.pr_curve_plot({"CSO": curve}, {"CSO": 0.5}, 0.5, tmp_path / "pr.png",
                                        operating_points={"CSO": operating_point(curve, precision=0.5)},
                                        confusions={"CSO": conf}))
    empty = PRCurve(np.zeros(0), np.zeros(0), np.zeros(0), 1, 4)
    assert is_png(figures.pr_curve_plot({"CSO": empty}, {}, 0.25, tmp_path / "pr0.png"))
    zero = dict(tp=0, fp=0, fn=0, tn=0, random=dict(tp=0.0, fp=0.0, fn=0.0, tn=0.0))
    assert is_png(figures.confusion_plot(zero, tmp_path / "c.png", title="nothing flagged"))


def test_pr_matrices_hide_no_curve_and_positive_is_defined(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 15, 40)
    p = t + rng.normal(0, 2, 40)
    curve = precision_recall(t, p, threshold_K=5.0)
    op = operating_point(curve, precision=0.8)
    conf = confusion(t, p, 5.0, op["threshold"])
    figures.pr_curve_plot({"CSO": curve, "CPD": curve}, {"CSO": 0.8, "CPD": 0.8}, 0.6, tmp_path / "pr.png",
                          operating_points={"CSO": op}, confusions={"CSO": conf}, threshold_K=5.0)
    fig = saved[-1]
    assert r"positive = reference $T_c \geq$ 5 K" in texts_of(fig)
    figures.pr_curve_plot({"CSO": curve}, {"CSO": 0.8}, 0.6, tmp_path / "pr1.png", threshold_K=8.5)
    assert r"positive = reference $T_c \geq$ 8.5 K" in texts_of(saved[-1])
    figures.pr_curve_plot({"CSO": curve}, {"CSO": 0.8}, 0.6, tmp_path / "pr2.png")  # caller did not say
    assert "the screening threshold (5 K unless --threshold)" in texts_of(saved[-1])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    pr_axes = [ax for ax in fig.axes if ax.get_xlabel() == "recall"]
    matrices = [ax for ax in fig.axes if ax.get_xlabel() == "predicted"]
    assert len(pr_axes) == 2 and len(matrices) == 1
    for pr in pr_axes:  # no matrix drawn over a precision-recall panel
        assert not pr.child_axes
        assert not pr.get_window_extent().overlaps(matrices[0].get_window_extent())
    assert_inside(fig)


@pytest.mark.parametrize("kind", ["equal", "nan", "one"])
def test_landscape_survives_and_shares_one_colour_scale(kind, tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    axis = [-1.0, 0.0, 1.0] if kind != "one" else [0.0]
    n = len(axis)
    flat = np.full((n, n), 0.3)
    other = flat.copy()
    if kind == "nan":
        other = np.arange(n * n, dtype=float).reshape(n, n) + 1.0
        other[0, 0] = np.nan
    lands = {r: {"losses": z.tolist(), "epoch": e, "minimum": {"alpha": 0.0, "beta": 0.0, "loss": 0.3}}
             for r, z, e in (("classical", flat, 3), ("modern", other, 40))}
    assert is_png(landscape_figure({"run": "r/seed_0", "alphas": axis, "betas": axis, "landscapes": lands},
                                   tmp_path / "l.png"))
    fig = saved[-1]
    colorbars = [ax for ax in fig.axes if "one scale for every regime" in ax.get_ylabel()]
    assert len(colorbars) <= 1
    contours = [c for ax in fig.axes for c in ax.collections if hasattr(c, "levels")]
    assert len({(float(c.norm.vmin), float(c.norm.vmax)) for c in contours}) <= 1  # one colour scale


def test_landscape_rows_share_their_colour_scale(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    axis = np.linspace(-1, 1, 5)
    aa, bb = np.meshgrid(axis, axis, indexing="ij")
    lands = {"classical": {"losses": (1 + aa ** 2 + bb ** 2).tolist(), "epoch": 5, "minimum": {"alpha": 0, "beta": 0}},
             "modern": {"losses": (10 + 5 * aa ** 2).tolist(), "epoch": 50, "minimum": {"alpha": 0, "beta": 0}}}
    landscape_figure({"run": "x", "alphas": axis.tolist(), "betas": axis.tolist(), "landscapes": lands},
                     tmp_path / "l.png")
    fig = saved[-1]
    contours = [c for ax in fig.axes for c in ax.collections if hasattr(c, "levels")]
    assert len(contours) == 2
    assert contours[0].norm.vmin == contours[1].norm.vmin and contours[0].norm.vmax == contours[1].norm.vmax
    assert contours[0].norm.vmin <= 0.0 + 1e-9 and contours[0].norm.vmax >= math.log10(15) - 1e-9
    assert len([ax for ax in fig.axes if "one scale for every regime" in ax.get_ylabel()]) == 1


# --------------------------------------------------------------------------------------------
# training figures
# --------------------------------------------------------------------------------------------
def history(n, val=None):
    e = np.arange(n)
    val = np.exp(-e / 10) + 0.1 if val is None else val
    return [{"epoch": int(i), "train_loss": float(np.exp(-i / 5) + 1e-3), "val_loss": float(v),
             "val_loss_smoothed": float(v), "regime": "classical"} for i, v in zip(e, val)]


@pytest.mark.parametrize("kind", KINDS)
def test_double_descent_survives(kind, tmp_path):
    v = DEGENERATE[kind]
    rows = history(v.size, val=v)
    regimes = {"classical": {"epoch": 0, "value": 0.1, "raw": 0.1}} if v.size else {}
    assert is_png(plots.plot_double_descent(rows, regimes, tmp_path / "dd.png", kept=0 if v.size else None))


def test_no_second_descent_is_titled_so_and_the_kept_epoch_is_marked(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    rows = history(30)
    plateau = {"classical": {"epoch": 12, "value": 0.2, "raw": 0.2},
               "critical": {"epoch": 20, "value": 0.3, "raw": 0.3}}
    plots.plot_double_descent(rows, plateau, tmp_path / "dd.png", kept=13, best_epoch=13)
    fig = saved[-1]
    (ax,) = fig.axes
    text = texts_of(fig)
    assert "no second descent" in ax.get_title() and "double descent" not in ax.get_title()
    assert "critical peak" not in text  # nothing to call a peak on a curve that never fell again
    assert "weights kept (epoch 13)" in text and "classical minimum (epoch 12)" in text
    assert_whole_ticks(ax.xaxis)
    assert_inside(fig)

    regimes = dict(plateau, modern={"epoch": 28, "value": 0.1, "raw": 0.1})
    plots.plot_double_descent(history(300), regimes, tmp_path / "dd2.png", kept=28, best_epoch=299)
    fig = saved[-1]
    text = texts_of(fig)
    assert "second descent came" in fig.axes[0].get_title()
    assert "critical peak (epoch 20)" in text and "modern minimum (epoch 28)" in text
    assert "weights kept (epoch 28)" in text and "best out-of-bag epoch (299)" in text
    assert_whole_ticks(fig.axes[0].xaxis)


def write_member(folder, n, modern: bool):
    from betenet.training.run_dir import RunDir
    from betenet.training.tempering import BASE_COLUMNS

    run = RunDir(folder)
    run.path.mkdir(parents=True)
    with open(run.metrics, "w") as fh:
        fh.write(",".join(BASE_COLUMNS) + "\n")
        for r in history(n):
            fh.write(f"{r['epoch']},{r['train_loss']},{r['val_loss']},{r['val_loss_smoothed']},classical\n")
    regimes = {"classical": {"epoch": 3, "value": 0.3, "raw": 0.3}}
    if modern:
        regimes |= {"critical": {"epoch": 5, "value": 0.5, "raw": 0.5}, "modern": {"epoch": n - 2, "value": 0.1,
                                                                                   "raw": 0.1}}
    run.write_regimes({"regimes": regimes, "final_regime": "modern" if modern else "best", "best_epoch": n - 1,
                       "kept_epoch": n - 2 if modern else n - 1})
    return run


def test_sweep_overlay_has_one_panel_per_variant_and_a_legend(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    groups = {"cso": [write_member(tmp_path / "cso" / f"seed_{k}", 20, modern=k == 0) for k in range(2)],
              "cpd": [write_member(tmp_path / "cpd" / "seed_0", 12, modern=False)]}
    plots.plot_sweep_overlay(groups, tmp_path / "overlay.png")
    fig = saved[-1]
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["cso: 2 members, 1 with a second descent",
                                                 "cpd: 1 member, 0 with a second descent"]
    for i, ax in enumerate(panels):
        assert ax.get_legend() is not None
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "out-of-bag loss (one line per member)" in labels and "weights kept" in labels
        colours = {line.get_color() for line in ax.get_lines() if line.get_color() != "grey"}
        assert colours == {f"C{i}"}  # one colour per variant
        assert_whole_ticks(ax.xaxis)
    assert panels[0].get_shared_y_axes().joined(panels[0], panels[1])  # the variants compare on one scale
    # degenerate: no member at all, a member without metrics, a plain list
    assert is_png(plots.plot_sweep_overlay({}, tmp_path / "o0.png"))
    assert is_png(plots.plot_sweep_overlay({"cso": [tmp_path / "nowhere"]}, tmp_path / "o1.png"))
    assert is_png(plots.plot_sweep_overlay([groups["cpd"][0].metrics], tmp_path / "o2.png"))
