"""Figures of lazy-training runs (matplotlib is imported only when a figure is drawn)."""

from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from err
    return plt


def _axes(axes, count, width=4.2):
    plt = _pyplot()
    if axes is None:
        fig, axes = plt.subplots(1, count, figsize=(width * count, 3.4), squeeze=False)
        return fig, list(axes[0])
    axes = list(np.atleast_1d(axes))
    if len(axes) != count:
        raise ValueError(f"axes must hold {count} matplotlib axes; got {len(axes)}.")
    return axes[0].figure, axes


def _positive(values):
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0, values, np.nan)


def plot_trajectory(record, axes=None):
    """Three panels against time: losses, ||alpha f - alpha T f||, movements and changes."""
    fig, (ax_loss, ax_dev, ax_move) = _axes(axes, 3)
    # Log time: most of the fitting happens early. The record at t = 0 drops out.
    t = np.where(record.time > 0, record.time, np.nan)
    has_test = not np.all(np.isnan(record.test_loss))
    ax_loss.plot(t, _positive(record.train_loss), color="C0", label="network, train")
    ax_loss.plot(t, _positive(record.tangent_train_loss), "--", color="C1", label="tangent, train")
    if has_test:
        ax_loss.plot(t, _positive(record.test_loss), color="C2", label="network, test")
        ax_loss.plot(t, _positive(record.tangent_test_loss), "--", color="C3",
                     label="tangent, test")
    ax_loss.set(xscale="log", yscale="log", xlabel=record.time_label,
                ylabel=f"{record.loss_name} loss",
                title=f"alpha = {record.alpha:g}")
    ax_dev.plot(t, _positive(record.deviation_train), color="C0", label="train points")
    if has_test:
        ax_dev.plot(t, _positive(record.deviation_test), color="C2", label="test points")
    ax_dev.set(xscale="log", yscale="log", xlabel=record.time_label,
               ylabel="||alpha f - alpha Tf|| (rms)", title="network vs tangent model")
    series = [("param_movement", "||w - w0|| / ||w0||"), ("ntk_change", "NTK change (rel.)"),
              ("pattern_change", "ReLU patterns changed")]
    for i, (name, label) in enumerate(series):
        values = _positive(getattr(record, name))
        shown = np.isfinite(values) & np.isfinite(t)
        if shown.any():
            # Series measured at a few records only (the NTK change of a function) get
            # markers, their points joined across the records in between.
            marker = "o" if shown.sum() < 0.5 * np.isfinite(t).sum() or shown.sum() == 1 else None
            ax_move.plot(t[shown], values[shown], color=f"C{i}", marker=marker, ms=3,
                         label=label)
    ax_move.set(xscale="log", yscale="log", xlabel=record.time_label,
                title="how much moved")
    for ax in (ax_loss, ax_dev, ax_move):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_neurons(record, ax=None, dims=(0, 1), max_neurons: int = 200):
    """Paths of the TwoLayer neurons |c_j| (a_j[dims[0]], a_j[dims[1]]) during training.

    Coordinates index a_j = (input weights, bias); the last one (-1) is the bias.
    Filled dots mark the end of each path, colored by the sign of c_j.
    """
    if record.neurons is None:
        raise ValueError("this record has no neuron positions: train a lazykit.TwoLayer with "
                         "record_neurons=True.")
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.4))
    else:
        fig = ax.figure
    positions = record.neurons  # (records, m, d + 2): a_j then c_j
    a, c = positions[..., :-1], positions[..., -1]
    chosen = np.linspace(0, a.shape[1] - 1, min(max_neurons, a.shape[1])).astype(int)
    for j in chosen:
        path = np.abs(c[:, j, None]) * a[:, j, list(dims)]
        color = "C3" if c[-1, j] > 0 else "C0"
        ax.plot(path[:, 0], path[:, 1], color=color, lw=0.6, alpha=0.6)
        ax.plot(path[-1, 0], path[-1, 1], "o", color=color, ms=2.5)
    names = ["bias" if d in (-1, a.shape[2] - 1) else f"w[{d}]" for d in dims]
    ax.set(xlabel=f"|c| a_{names[0]}", ylabel=f"|c| a_{names[1]}",
           title=f"neurons (alpha = {record.alpha:g}); red c > 0, blue c < 0")
    fig.tight_layout()
    return fig


def plot_sweep(result, axes=None):
    """Log-log deviation and parameter movement against alpha, with fitted lines and intervals."""
    fig, (ax_dev, ax_move) = _axes(axes, 2)
    grid = np.geomspace(result.alpha.min(), result.alpha.max(), 50)
    panels = ((ax_dev, result.deviation, result.deviation_slope,
               "sup_t ||alpha f - alpha Tf|| (train)"),
              (ax_move, result.param_movement, result.movement_slope,
               "sup_t ||w - w0|| / ||w0||"))
    for ax, values, fit, label in panels:
        ax.loglog(result.alpha, values, "o", color="C0", ms=4, label="runs")
        line = np.exp(fit.intercept) * grid**fit.slope
        ci = "" if np.isnan(fit.ci_low) else \
            f" [{fit.ci_low:.2f}, {fit.ci_high:.2f}] ({100 * fit.confidence:.0f}% CI)"
        ax.loglog(grid, line, color="C1", label=f"fit: slope {fit.slope:.3f}{ci}")
        reference = line[0] * (grid / grid[0]) ** -1.0
        ax.loglog(grid, reference, ":", color="gray", label="slope -1")
        ax.set(xlabel="alpha", ylabel=label)
        ax.legend(fontsize=8)
    if not np.all(np.isnan(result.kappa)):
        ax_dev.set_title("kappa at init: " + ", ".join(
            f"{k:.2g}" for k in _per_alpha(result.alpha, result.kappa)), fontsize=8)
    fig.tight_layout()
    return fig


def _per_alpha(alpha, values):
    return [float(np.nanmean(values[alpha == a])) for a in np.unique(alpha)]
