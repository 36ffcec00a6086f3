"""Implicit bias of the logistic loss for wide two-layer nets (Chizat and Bach 2020).

Data: a k x k grid of square clusters in the first two coordinates, labelled
like a checkerboard (y = (-1)^(row + column)), and d - 2 spurious coordinates of
uniform noise on [-1, 1] that carry no information.

Model: the 2-homogeneous ReLU net f(x) = (1/m) sum_j c_j relu(a_j . (x, 1)),
trained by full-batch gradient descent on the unregularized logistic loss
mean_i log(1 + exp(-y_i f(x_i))) in two ways:

* both layers (mean-field scaling, steps multiplied by m, small initialization):
  its direction converges to a max-margin classifier for the variation norm
  ||f||_F1 = (1/m) sum_j |c_j| ||a_j||, which adapts to the two useful coordinates;
* the output layer only, with a random fixed first layer a_j on the unit sphere:
  a linear logistic regression on random features, whose direction converges to
  the max-margin classifier in the RKHS norm ||f||_F2 = sqrt((1/m) sum_j c_j^2).

Normalized margins: min_i y_i f(x_i) / ||f||, with the norm of the regime
(F1 for both layers, F2 for the output layer; the F1 margin of the random-feature
classifier is reported as well: F1 <= F2 so it is the larger of its two margins).
Expected: the both-layers classifier generalizes better as spurious dimensions
are added, and has the larger F1 margin.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg, optimize

from lazykit import Dense, Network, Relu, TwoLayer, make_trainer, serial
from lazykit._dtypes import precision
from lazykit.experiments.results import ExperimentResult
from lazykit.schedule import train_to_checkpoints

REGIMES = ("both layers", "output layer")
_GAP = "output-layer test error minus both-layers test error (positive: both layers better)"
DESCRIPTIONS = {
    "dim": "input dimension d (2 informative coordinates + d - 2 spurious ones)",
    "n": "number of training points",
    "both layers": "test error (fraction) of the net with both layers trained (F1 max-margin "
                   "regime), mean over draws",
    "both layers margin": "its normalized margin min_i y_i f(x_i) / ||f||_F1 at the end of "
                          "training",
    "output layer": "test error (fraction) of the output layer alone on random ReLU features "
                    "(F2 / RKHS max-margin classifier), mean over draws",
    "output layer margin": "its normalized margin min_i y_i f(x_i) / ||f||_F2 (the F2 "
                           "max-margin)",
    "error_gap_by_dim": f"{_GAP}, at each d",
    "error_gap_at_smallest_dim": f"{_GAP}, at the smallest d (no spurious coordinate)",
    "max_error_gap_by_dim": f"largest {_GAP} over d",
    "mean_error_gap_spurious_dims": f"mean {_GAP} over the d with spurious coordinates",
    "error_gap_at_largest_n": f"{_GAP}, at the largest n",
    "max_final_train_loss": "largest final logistic training loss of the both-layers nets "
                            "(small: the training data are separated)",
    "min_margin_ratio_F1_over_F2": "smallest ratio, over the runs, of the both-layers "
                                   "F1-normalized margin to the F2 max-margin (> 1 expected)",
}
SETTINGS = {
    "quick": dict(grid=3, cluster_width=0.5, width=100, init_scale=0.1, lr=1.0, steps=3000,
                  n_test=4000, dims=(2, 4, 6, 8, 10), n_fixed=300, ns=(50, 100, 200, 400),
                  d_fixed=4, seeds=1, checkpoints=12),
    "full": dict(grid=3, cluster_width=0.5, width=200, init_scale=0.1, lr=1.0, steps=5000,
                 n_test=10000, dims=(2, 4, 6, 8, 10, 12, 15), n_fixed=500,
                 ns=(50, 100, 200, 400, 800), d_fixed=6, seeds=2, checkpoints=20),
}


def cluster_grid(rng, n: int, dim: int, grid: int = 3, cluster_width: float = 0.5):
    """n points of the k x k checkerboard of clusters, with dim - 2 spurious coordinates.

    Args:
        rng: a NumPy Generator.
        n: number of points.
        dim: input dimension d >= 2 (2 informative coordinates, d - 2 spurious ones).
        grid: k, the number of clusters along each informative axis.
        cluster_width: side of a cluster relative to the grid spacing (0 < width <= 1).

    Returns:
        (x, y): inputs in [-1, 1]^d, shape (n, d), and labels +-1, shape (n,).

    Examples:
        >>> import numpy as np
        >>> x, y = cluster_grid(np.random.default_rng(0), 5, dim=4)
        >>> x.shape, sorted(set(y.tolist())) <= [-1.0, 1.0]
        ((5, 4), True)
    """
    if dim < 2:
        raise ValueError(f"dim must be at least 2 (two informative coordinates); got {dim}.")
    if not 0 < cluster_width <= 1:
        raise ValueError(f"cluster_width must lie in (0, 1]; got {cluster_width}.")
    cells = rng.integers(0, grid, size=(n, 2))
    spacing = 2.0 / grid
    offsets = (rng.uniform(-0.5, 0.5, size=(n, 2)) * cluster_width + 0.5) * spacing
    informative = -1.0 + cells * spacing + offsets
    spurious = rng.uniform(-1.0, 1.0, size=(n, dim - 2))
    labels = np.where(cells.sum(axis=1) % 2 == 0, 1.0, -1.0)
    return np.column_stack([informative, spurious]), labels


def student(width: int) -> TwoLayer:
    """f(x) = (1/m) sum_j c_j relu(a_j . (x, 1)): lazykit's TwoLayer at alpha = 1, with the
    parameters ``{"a": (m, d + 1), "c": (m,)}`` of :func:`init_params`."""
    return TwoLayer(width, "relu", alpha=1.0, symmetric=False)


def network(params, x):
    """f(x) = (1/m) sum_j c_j relu(a_j . (x, 1)), shape (n,)."""
    return student(params["c"].shape[0]).apply(params, x)[:, 0]


def f1_margin(params, x, y) -> float:
    """min_i y_i f(x_i) / ||f||_F1 with ||f||_F1 = (1/m) sum_j |c_j| ||a_j||."""
    margin = jnp.min(y * network(params, x))
    return float(margin / jnp.mean(jnp.abs(params["c"]) * jnp.linalg.norm(params["a"], axis=1)))


def init_params(rng, width: int, dim: int, init_scale: float):
    """Balanced neurons: a_j uniform on the sphere of radius ``init_scale`` in R^(d+1) and
    c_j = +-init_scale, so that |c_j| = ||a_j|| (small: the active regime)."""
    a = rng.normal(size=(width, dim + 1))
    a *= init_scale / np.linalg.norm(a, axis=1, keepdims=True)
    return {"a": a, "c": init_scale * rng.choice([-1.0, 1.0], size=width)}


def _padded(params, x, dim: int):
    """Parameters and inputs with zero coordinates appended up to ``dim`` (the bias column of
    ``a`` stays last): zero inputs meet zero weights, so f, its gradients and the norms are
    those of the unpadded net, and the zero weights never move."""
    a, extra = np.asarray(params["a"]), dim - np.shape(x)[1]
    a = np.concatenate([a[:, :-1], np.zeros((len(a), extra)), a[:, -1:]], axis=1)
    return {"a": a, "c": np.asarray(params["c"])}, np.pad(np.asarray(x), ((0, 0), (0, extra)))


def train_both_layers_batched(starts, xs, ys, *, steps: int, lr: float, checkpoints: int = 1):
    """:func:`train_both_layers` for several runs of the same n (inputs of any dimensions),
    trained together: padded to the largest dimension and stacked under ``jax.vmap``."""
    model = student(len(starts[0]["c"]))
    dim = max(np.shape(x)[1] for x in xs)
    padded = [_padded(p, x, dim) for p, x in zip(starts, xs, strict=True)]
    marks = np.unique(np.geomspace(1, steps, checkpoints).astype(int))
    trainer = make_trainer(model, "logistic", tangent=False, ntk_points=0)
    with precision("float64"):
        params = jax.tree_util.tree_map(lambda *v: jnp.asarray(np.stack(v)),
                                        *[p for p, _ in padded])
        inputs = jnp.asarray(np.stack([x for _, x in padded]))
        targets = jnp.asarray(np.stack(ys))[..., None]
        states = jax.vmap(lambda p, x: trainer.init(p, x, learning_rate=lr * model.width))(
            params, inputs)
        states, record = train_to_checkpoints(trainer, states, inputs, targets, marks,
                                              batched=True, data_batched=True)
        out = []
        for i, (x, y) in enumerate(zip(inputs, targets[..., 0], strict=True)):
            history = []
            for step, loss, neurons in zip(record.step[i, 1:], record.train_loss[i, 1:],
                                           record.neurons[i, 1:], strict=True):
                p = {"a": neurons[:, :-1], "c": neurons[:, -1]}
                history.append(dict(step=int(step), loss=float(loss), margin=f1_margin(p, x, y)))
            a = np.asarray(states.params["a"][i])
            d = np.shape(xs[i])[1]
            final = {"a": np.concatenate([a[:, :d], a[:, -1:]], axis=1),
                     "c": np.asarray(states.params["c"][i])}
            out.append((final, history))
        return out


def train_both_layers(params, x, y, *, steps: int, lr: float, checkpoints: int = 1):
    """Gradient descent of both layers on the logistic loss, step lr * m (mean-field scaling).

    lazykit's trainer (:func:`lazykit.make_trainer`, driven by
    :func:`lazykit.train_to_checkpoints`). Returns the final parameters and, at
    ``checkpoints`` log-spaced steps, the training loss and the F1-normalized margin.
    """
    return train_both_layers_batched([params], [x], [y], steps=steps, lr=lr,
                                     checkpoints=checkpoints)[0]


def relu_feature_network(dim: int) -> Network:
    """The description whose NNGP is the random-feature kernel of :func:`relu_feature_kernel`.

    For a ~ N(0, I / (d + 1)), a . (x, 1) has covariance (<x, x'> + 1) / (d + 1): the
    pre-activation of ``Dense(W_std=sqrt(d / (d + 1)), b_std=sqrt(1 / (d + 1)))``; ReLU is
    1-homogeneous and E|a|^2 = 1, so the Gaussian a gives the same kernel as a uniform on the
    unit sphere. The readout ``Dense(1)`` (W_std = 1, no bias) leaves E[relu relu] as NNGP.
    """
    width = dim + 1
    return serial(Dense(1, W_std=math.sqrt(dim / width), b_std=math.sqrt(1 / width)), Relu(),
                  Dense(1))


def relu_feature_kernel(x1, x2):
    """E_a[relu(a . x1~) relu(a . x2~)] for a uniform on the unit sphere of R^(d+1), x~ = (x, 1).

    The kernel of the infinitely wide random-feature layer, ||u|| ||v|| (sin theta +
    (pi - theta) cos theta) / (2 pi (d + 1)) with u, v = x1~, x2~ and theta their angle:
    the NNGP of :func:`relu_feature_network` (lazykit's arc-cosine kernel, float64, NumPy).
    """
    with precision("float64"):
        return np.asarray(_feature_kernel(jnp.asarray(x1, jnp.float64),
                                          jnp.asarray(x2, jnp.float64)))


@jax.jit
def _feature_kernel(x1, x2):
    """The NNGP of :func:`relu_feature_network` from its jitted ``kernel_fn`` (one small
    compilation per shape; ``Network.kernel``'s tiled path compiles more per shape)."""
    return relu_feature_network(x1.shape[1]).kernel_fn(x1, x2).nngp


def rkhs_max_margin(kernel, y):
    """Hard-margin SVM without intercept: f = sum_i alpha_i y_i k(x_i, .) maximizing
    min_i y_i f(x_i) / ||f||_H. Solves the dual max 1^T alpha - alpha^T Q alpha / 2,
    alpha >= 0, Q = (y y^T) * K, as non-negative least squares.

    Returns:
        (coefficients alpha_i y_i, normalized margin min_i y_i f(x_i) / ||f||_H).
    """
    q = (y[:, None] * y[None, :]) * kernel
    jitter = 1e-10 * np.trace(q) / len(q)
    factor = np.linalg.cholesky(q + jitter * np.eye(len(q)))
    # 1/2 a^T L L^T a - 1^T a = 1/2 ||L^T a - L^{-1} 1||^2 + const.
    alpha = optimize.nnls(factor.T, linalg.solve_triangular(factor, np.ones(len(q)),
                                                            lower=True), maxiter=50 * len(q))[0]
    coefficients = alpha * y
    outputs = kernel @ coefficients
    return coefficients, float(np.min(y * outputs) / np.sqrt(coefficients @ outputs))


def _error(scores, y) -> float:
    return float(np.mean(np.where(scores > 0, 1.0, -1.0) != y))


def _draw(cfg, seed, n, dim, tag):
    """One draw: training and test data, and the initial neurons."""
    rng = np.random.default_rng([seed, tag, n, dim])
    x, y = cluster_grid(rng, n, dim, cfg["grid"], cfg["cluster_width"])
    x_test, y_test = cluster_grid(rng, cfg["n_test"], dim, cfg["grid"], cfg["cluster_width"])
    start = init_params(np.random.default_rng([seed, tag, n, dim, 1]), cfg["width"], dim,
                        cfg["init_scale"])
    return dict(n=n, dim=dim, x=x, y=y, x_test=x_test, y_test=y_test, start=start)


def _fit_both(cfg, draws):
    """Both regimes on draws of the same n (both-layers nets trained in one batch): per draw,
    rows with test error and normalized margin, and the margin history of the net."""
    trained = train_both_layers_batched(
        [d["start"] for d in draws], [d["x"] for d in draws], [d["y"] for d in draws],
        steps=cfg["steps"], lr=cfg["lr"], checkpoints=cfg["checkpoints"])
    out = []
    for draw, (params, history) in zip(draws, trained, strict=True):
        x, y, x_test, y_test = (draw[k] for k in ("x", "y", "x_test", "y_test"))
        with precision("float64"):
            scores = np.asarray(network(jax.tree_util.tree_map(jnp.asarray, params),
                                        jnp.asarray(x_test)))
        coefficients, f2_margin = rkhs_max_margin(relu_feature_kernel(x, x), y)
        svm_scores = relu_feature_kernel(x_test, x) @ coefficients
        common = dict(n=draw["n"], dim=draw["dim"])
        rows = [dict(common, regime="both layers", test_error=_error(scores, y_test),
                     margin=history[-1]["margin"], train_loss=history[-1]["loss"]),
                dict(common, regime="output layer", test_error=_error(svm_scores, y_test),
                     margin=f2_margin, train_loss=0.0)]
        out.append((rows, history))
    return out


def run(setting: str = "quick", seed: int = 0, progress=None) -> ExperimentResult:
    """Test error and normalized margins of the F1 (both layers) and F2 (output layer) classifiers.

    Examples:
        >>> from lazykit.experiments import implicit_bias
        >>> result = implicit_bias.run("quick", seed=0)  # doctest: +SKIP
        >>> result.findings["max_error_gap_by_dim"] > 0.1  # doctest: +SKIP
        True
    """
    cfg = SETTINGS[setting]
    say = progress or (lambda message: None)
    by_dim, by_n, margins = [], [], []
    for s in range(cfg["seeds"]):
        draws = [_draw(cfg, seed * 1000 + s, cfg["n_fixed"], dim, 0) for dim in cfg["dims"]]
        for dim, (rows, history) in zip(cfg["dims"], _fit_both(cfg, draws), strict=True):
            by_dim += [dict(r, draw=s) for r in rows]
            if s == 0 and dim == cfg["d_fixed"]:
                margins = [dict(h, f2_max_margin=rows[1]["margin"]) for h in history]
        say(f"implicit_bias: draw {s + 1}, d = {', '.join(map(str, cfg['dims']))} done")
        for n in cfg["ns"]:
            ((rows, _),) = _fit_both(cfg, [_draw(cfg, seed * 1000 + s, n, cfg["d_fixed"], 1)])
            by_n += [dict(r, draw=s) for r in rows]
            say(f"implicit_bias: draw {s + 1}, n = {n} done")
    dim_summary = _summarize(by_dim, "dim")
    n_summary = _summarize(by_n, "n")
    gaps = [r["output layer"] - r["both layers"] for r in dim_summary]
    findings = {
        "error_gap_by_dim": gaps,
        "error_gap_at_smallest_dim": gaps[0],
        "max_error_gap_by_dim": max(gaps),
        "mean_error_gap_spurious_dims": float(np.mean(gaps[1:])),
        "error_gap_at_largest_n": n_summary[-1]["output layer"] - n_summary[-1]["both layers"],
        "max_final_train_loss": max(r["train_loss"] for r in by_dim + by_n),
        "min_margin_ratio_F1_over_F2": min(
            a["margin"] / b["margin"] for a, b in zip(by_dim[::2], by_dim[1::2], strict=True)),
    }
    return ExperimentResult("implicit_bias", dict(cfg, setting=setting, seed=seed),
                            {"by_dim": dim_summary, "by_n": n_summary, "runs_dim": by_dim,
                             "runs_n": by_n, "margins": margins}, "by_dim", findings,
                            descriptions=DESCRIPTIONS)


def _summarize(rows, key):
    summary = []
    for value in sorted({r[key] for r in rows}):
        entry = {key: value}
        for regime in REGIMES:
            group = [r for r in rows if r[key] == value and r["regime"] == regime]
            entry[regime] = float(np.mean([r["test_error"] for r in group]))
            entry[f"{regime} margin"] = float(np.mean([r["margin"] for r in group]))
        summary.append(entry)
    return summary


def plot(result: ExperimentResult) -> dict:
    """Two figures: test error against d and against n; normalized margins during training."""
    import matplotlib.pyplot as plt

    settings = result.settings
    colors = {"both layers": "C3", "output layer": "C0"}
    labels = {"both layers": "both layers (F1 max-margin)",
              "output layer": "output layer only (F2 / RKHS max-margin)"}
    figures = {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, table, runs, key, xlabel, fixed in (
            (left, "by_dim", "runs_dim", "dim", "input dimension d (2 informative + d-2 spurious)",
             f"n = {settings['n_fixed']}"),
            (right, "by_n", "runs_n", "n", "training points n",
             f"d = {settings['d_fixed']}")):
        summary = result.tables[table]
        for regime in REGIMES:
            ax.plot([r[key] for r in summary], [100 * r[regime] for r in summary], "o-",
                    color=colors[regime], label=labels[regime])
            points = [r for r in result.tables[runs] if r["regime"] == regime]
            ax.scatter([r[key] for r in points], [100 * r["test_error"] for r in points],
                       s=10, alpha=0.4, color=colors[regime])
        ax.set(xlabel=xlabel, ylabel="test error (%)",
               title=f"{settings['grid']}x{settings['grid']} cluster checkerboard, {fixed}")
        ax.legend(fontsize=8)
    right.set_xscale("log")
    sizes = [r["n"] for r in result.tables["by_n"]]
    right.set_xticks(sizes, [str(n) for n in sizes])
    right.minorticks_off()
    fig.tight_layout()
    figures["test_error"] = fig

    figures["margins"] = _plot_margins(result.tables["margins"], settings, colors)
    return figures


def _plot_margins(history, settings, colors):
    """Normalized margin of the both-layers net during training against the F2 max-margin.

    Left, the whole run on a symmetric-log axis (the margin starts negative, down to
    about -1, and ends positive near 1e-2: both are visible); right, the steps where the
    data are separated (margin > 0), on a log axis, next to the F2 max-margin.
    """
    import matplotlib.pyplot as plt

    f2 = history[-1]["f2_max_margin"]
    steps, margins = [r["step"] for r in history], [r["margin"] for r in history]
    style = dict(color=colors["both layers"], label="both layers: F1-normalized margin")
    f2_style = dict(color=colors["output layer"], ls="--",
                    label="output layer: F2 (RKHS) max-margin")
    fig, (whole, late) = plt.subplots(1, 2, figsize=(11, 4.2))
    whole.plot(steps, margins, "o-", **style)
    whole.axhline(f2, **f2_style)
    whole.axhline(0.0, color="0.5", lw=0.8)
    whole.set_yscale("symlog", linthresh=abs(f2) if f2 else 1e-3)
    low, high = min(*margins, f2, 0.0), max(*margins, f2, 0.0)
    whole.set(ylim=(1.6 * low, 1.6 * high), xscale="log", xlabel="gradient-descent steps",
              ylabel="min_i y_i f(x_i) / norm of f  (symmetric log)",
              title="Whole run: negative until the data are separated")
    whole.legend(fontsize=8)
    separated = [(s, m) for s, m in zip(steps, margins, strict=True) if m > 0]
    if separated:
        late.plot(*zip(*separated, strict=True), "o-", **style)
        late.axhline(f2, **f2_style)
        values = [m for _, m in separated] + ([f2] if f2 > 0 else [])
        late.set(xscale="log", yscale="log", ylim=(min(values) / 1.5, max(values) * 1.5),
                 xlim=(separated[0][0] / 1.5, steps[-1] * 1.5))
        late.set_xticks([s for s, _ in separated], [str(s) for s, _ in separated])
        late.xaxis.set_minor_formatter(plt.NullFormatter())
        late.legend(fontsize=8)
    else:
        late.text(0.5, 0.5, "the training data were never separated (margin <= 0)",
                  ha="center", va="center", transform=late.transAxes)
    late.set(xlabel="gradient-descent steps", ylabel="min_i y_i f(x_i) / norm of f",
             title="Once separated (margin > 0)")
    fig.suptitle(f"Normalized margins (d = {settings['d_fixed']}, n = {settings['n_fixed']})")
    fig.tight_layout()
    return fig
