"""The 1-D spline limit of wide ReLU networks (Heiss, Teichmann and Wutte 2019).

Model: f(x) = a + b x + sum_j c_j relu(s_j (x - xi_j)), with a random, fixed
first layer (signs s_j = +-1, kink positions xi_j ~ Uniform[-L, L]) and the
last layer c trained with ridge lambda_rf ||c||^2 on the squared loss (the
affine part a + b x is not penalized).

Lambda mapping (derived here, checked by this experiment): f'' = sum_j c_j
|s_j| delta(x - xi_j), and the cheapest coefficients producing a curvature
density f'' put c_j = f''(xi_j) / (m g(xi_j)) on the m g(x) dx kinks near x, so
||c||^2 -> (1/m) int f''(x)^2 / g(x) dx with g = 1/(2L) the kink density (for
|w| = 1; in general g(x) E[w^2 | xi = x]). Hence ridge lambda_rf on the network
equals, as m grows, the natural cubic smoothing spline

    min_f sum_i (f(x_i) - y_i)^2 + lambda int f''(x)^2 dx,   lambda = 2 L lambda_rf / m,

which is SciPy's ``make_smoothing_spline(x, y, lam=lambda)``; without ridge
the minimum-norm least-squares network tends to the natural interpolating
spline (``CubicSpline(x, y, bc_type="natural")``). Gradient descent on the
squared loss from zero for t steps of size eta, taken in its continuous-time
limit (gradient flow for the time eta t, in closed form with lazykit's
``NTKRegressor`` on the network's empirical NTK K: f_t = (I - exp(-eta t K)) y on
the data), behaves like ridge with lambda_rf ~ 1 / (eta t): the experiment finds,
at each t, the smoothing spline closest to the network and reports its lambda.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import interpolate, linalg

from lazykit import Dense, Relu, empirical_ntk, serial
from lazykit._dtypes import precision
from lazykit.experiments.results import ExperimentResult, mean_and_spread

DISTANCES = ("ridge_to_smoothing_spline", "min_norm_to_interpolating_spline")
DESCRIPTIONS = {
    "width": "number m of random ReLU features (fixed first layer; only the last layer is "
             "trained)",
    "ridge_to_smoothing_spline": "RMS distance on the data interval between the net fitted by "
                                 "ridge on its last layer and the cubic smoothing spline, "
                                 "relative to the spline's RMS; mean over feature draws",
    "min_norm_to_interpolating_spline": "the same between the minimum-norm interpolating net "
                                        "and the natural interpolating cubic spline",
    "ridge_slope": "log-log slope of ridge_to_smoothing_spline against the width (negative: "
                   "the net converges to the spline)",
    "min_norm_slope": "log-log slope of min_norm_to_interpolating_spline against the width",
    "gd_lambda_slope": "log-log slope, against the number of gradient-descent steps t, of the "
                       "smoothing parameter lambda of the spline closest to the net (about -1: "
                       "early stopping acts as a ridge 1 / (eta t))",
    "gd_max_distance": "largest relative RMS distance between the gradient-descent net at some "
                       "t and its closest smoothing spline",
}

SETTINGS = {
    "quick": dict(n_data=24, noise=0.1, kink_range=1.5, smoothing=1e-3,
                  widths=(64, 256, 1024, 4096), seeds=3, gd_width=4096,
                  gd_steps=(10, 100, 1000, 10_000, 100_000)),
    "full": dict(n_data=40, noise=0.1, kink_range=1.5, smoothing=1e-3,
                 widths=(64, 256, 1024, 4096, 16384, 65536), seeds=10, gd_width=65536,
                 gd_steps=(10, 100, 1000, 10_000, 100_000, 1_000_000)),
}


def target(x):
    """The regression function of the experiment."""
    return np.sin(3 * x) + 0.5 * x


def make_data(rng, n: int, noise: float):
    """Jittered grid on [-1, 1] (gaps at least 0.4 * 2 / n: interpolation stays well posed)."""
    x = -1 + 2 * (np.arange(n) + 0.5 + rng.uniform(-0.3, 0.3, n)) / n
    return x, target(x) + noise * rng.normal(size=n)


def feature_layer(signs, kinks):
    """The fixed first layer as a lazykit description and its parameters: ``Dense(m)`` with
    weights s_j and biases -s_j xi_j (W_std = b_std = 1), then ReLU."""
    layer = serial(Dense(len(signs), W_std=1.0, b_std=1.0), Relu())
    params = [{"W": np.asarray(signs, float)[None, :],
               "b": -np.asarray(signs, float) * np.asarray(kinks, float)}, {}]
    return layer, params


def relu_features(x, signs, kinks):
    """relu(s_j (x - xi_j)) for every point (rows) and neuron (columns): the output of
    :func:`feature_layer`, in NumPy (no compilation per shape in the width sweep)."""
    return np.maximum(signs * (x[:, None] - kinks), 0.0)


def student(signs, kinks):
    """The network f(x) = sqrt(m) (a + b x) + sum_j c_j relu(s_j (x - xi_j)) with its first
    layer fixed: ``(apply_fn, params)`` at zero, params ``{"affine": (2,), "c": (m,)}``.

    The affine part is scaled by sqrt(m) so that it trains at the speed of the features.
    """
    layer, first = feature_layer(signs, kinks)
    scale = math.sqrt(len(signs))

    def apply(params, x):
        affine = scale * (params["affine"][0] + params["affine"][1] * x)
        return (affine + layer.apply(first, x[:, None]) @ params["c"])[:, None]

    return apply, {"affine": jnp.zeros(2), "c": jnp.zeros(len(signs))}


class RandomFeatureFit:
    """Ridge(less) fit of the last layer with an unpenalized affine part, in kernel form.

    With K = Phi Phi^T and P the projector removing span{1, x} on the data,
    c = Phi^T alpha where (P K P + lambda_rf I) alpha = P y (pseudo-inverse for
    lambda_rf = 0), and the affine coefficients fit the rest by least squares.
    """

    def __init__(self, x, y, signs, kinks, ridge: float):
        self.signs, self.kinks = signs, kinks
        phi = relu_features(x, signs, kinks)
        affine = np.column_stack([np.ones_like(x), x])
        q, _ = np.linalg.qr(affine)
        projector = np.eye(len(x)) - q @ q.T
        k = projector @ (phi @ phi.T) @ projector
        if ridge > 0:
            alpha = linalg.solve(k + ridge * np.eye(len(x)), projector @ y, assume_a="pos")
        else:
            alpha = np.linalg.pinv(k, rcond=1e-12, hermitian=True) @ (projector @ y)
        self.c = phi.T @ alpha
        self.theta = np.linalg.lstsq(affine, y - phi @ self.c, rcond=None)[0]

    def __call__(self, t):
        return self.theta[0] + self.theta[1] * t + relu_features(t, self.signs, self.kinks) @ self.c


def gradient_descent_path(x, y, signs, kinks, steps, grid):
    """Network trained from zero by gradient flow for the times of ``steps`` steps, on ``grid``.

    The kernel is the network's empirical NTK (:func:`lazykit.empirical_ntk` of
    :func:`student`: only its last layer and affine part train, so it stays fixed), and
    f_t = Theta(grid, X) Theta^{-1} (I - exp(-eta t Theta)) y is
    :class:`lazykit.NTKRegressor` on that Gram matrix, with the step eta = 1 / (largest
    eigenvalue of Theta): gradient descent on sum_i (f(x_i) - y_i)^2 / 2 for t steps,
    in the continuous-time limit (exp(-eta t lambda) for (1 - eta lambda)^t).

    Returns:
        (eta, a list of the network on ``grid``, one per entry of ``steps``).
    """
    from lazykit.estimators import NTKRegressor

    apply, params = student(signs, kinks)
    with precision("float64"):
        inputs, points = jnp.asarray(x, jnp.float64), jnp.asarray(grid, jnp.float64)
        params = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), params)
        kernel = np.asarray(empirical_ntk(apply, params, inputs))
        grid_kernel = np.asarray(empirical_ntk(apply, params, points, inputs))
    eta = 1.0 / np.linalg.eigvalsh(kernel)[-1]
    # NTKRegressor's time scale: s = learning_rate t / n, so learning_rate = n gives s = t.
    fit = NTKRegressor("precomputed", solver="eigh", learning_rate=len(x)).fit(kernel, y)
    return eta, list(fit.predict(grid_kernel, t=eta * np.asarray(steps, float)))


def relative_distance(f, g):
    """Root-mean-square difference over the grid, relative to the RMS of ``g``."""
    return float(np.sqrt(np.mean((f - g) ** 2) / np.mean(g**2)))


def run(setting: str = "quick", seed: int = 0, progress=None) -> ExperimentResult:
    """Distances between wide random-feature ReLU networks and cubic splines.

    Examples:
        >>> from lazykit.experiments import spline_1d
        >>> result = spline_1d.run("quick", seed=0)  # doctest: +SKIP
        >>> result.findings["ridge_slope"] < 0  # doctest: +SKIP
        True
    """
    cfg = SETTINGS[setting]
    say = progress or (lambda message: None)
    rng = np.random.default_rng(seed)
    x, y = make_data(rng, cfg["n_data"], cfg["noise"])
    grid = np.linspace(x[0], x[-1], 400)
    half_range = cfg["kink_range"]
    smoothing = interpolate.make_smoothing_spline(x, y, lam=cfg["smoothing"])(grid)
    interpolating = interpolate.CubicSpline(x, y, bc_type="natural")(grid)
    rows = []
    for width in cfg["widths"]:
        for s in range(cfg["seeds"]):
            features = np.random.default_rng([seed, width, s])
            signs = features.choice([-1.0, 1.0], size=width)
            kinks = features.uniform(-half_range, half_range, size=width)
            ridge = cfg["smoothing"] * width / (2 * half_range)
            ridge_fit = RandomFeatureFit(x, y, signs, kinks, ridge)(grid)
            min_norm = RandomFeatureFit(x, y, signs, kinks, 0.0)(grid)
            rows.append(dict(width=width, feature_seed=s,
                             ridge_to_smoothing_spline=relative_distance(ridge_fit, smoothing),
                             min_norm_to_interpolating_spline=relative_distance(
                                 min_norm, interpolating)))
        say(f"spline_1d: width {width} done")
    summary = mean_and_spread(rows, "width", DISTANCES)
    gd_rows = _gradient_descent_rows(cfg, seed, x, y, grid, half_range)
    say("spline_1d: gradient-descent path done")
    findings = {
        "ridge_slope": _slope(summary, "ridge_to_smoothing_spline"),
        "min_norm_slope": _slope(summary, "min_norm_to_interpolating_spline"),
        "gd_lambda_slope": float(np.polyfit(np.log([r["steps"] for r in gd_rows]),
                                            np.log([r["matched_lambda"] for r in gd_rows]), 1)[0]),
        "gd_max_distance": max(r["distance_to_matched_spline"] for r in gd_rows),
    }
    example = _example_curves(cfg, seed, x, y, grid, half_range, smoothing, interpolating)
    return ExperimentResult("spline_1d", dict(cfg, setting=setting, seed=seed),
                            {"summary": summary, "runs": rows, "gradient_descent": gd_rows,
                             "curves": example}, "summary", findings,
                            descriptions=DESCRIPTIONS)



def _slope(summary, key):
    widths = np.array([r["width"] for r in summary], float)
    return float(np.polyfit(np.log(widths), np.log([r[key] for r in summary]), 1)[0])


def _gradient_descent_rows(cfg, seed, x, y, grid, half_range):
    features = np.random.default_rng([seed, 7])
    width = cfg["gd_width"]
    signs = features.choice([-1.0, 1.0], size=width)
    kinks = features.uniform(-half_range, half_range, size=width)
    eta, paths = gradient_descent_path(x, y, signs, kinks, cfg["gd_steps"], grid)
    lambdas = np.logspace(-8, 2, 121)
    splines = [interpolate.make_smoothing_spline(x, y, lam=lam)(grid) for lam in lambdas]
    rows = []
    for steps, path in zip(cfg["gd_steps"], paths, strict=True):
        distances = [relative_distance(path, s) for s in splines]
        best = int(np.argmin(distances))
        rows.append(dict(steps=steps, matched_lambda=float(lambdas[best]),
                         predicted_lambda=float(2 * half_range / (width * eta * steps)),
                         distance_to_matched_spline=float(distances[best])))
    return rows


def _example_curves(cfg, seed, x, y, grid, half_range, smoothing, interpolating):
    rows = [dict(curve="data", x=float(a), y=float(b)) for a, b in zip(x, y, strict=True)]
    rows += [dict(curve="smoothing spline", x=float(a), y=float(b))
             for a, b in zip(grid, smoothing, strict=True)]
    rows += [dict(curve="interpolating spline", x=float(a), y=float(b))
             for a, b in zip(grid, interpolating, strict=True)]
    for width in (cfg["widths"][0], cfg["widths"][-1]):
        features = np.random.default_rng([seed, width, 0])
        signs = features.choice([-1.0, 1.0], size=width)
        kinks = features.uniform(-half_range, half_range, size=width)
        fit = RandomFeatureFit(x, y, signs, kinks, cfg["smoothing"] * width / (2 * half_range))
        rows += [dict(curve=f"ridge network, width {width}", x=float(a), y=float(b))
                 for a, b in zip(grid, fit(grid), strict=True)]
    return rows


def plot(result: ExperimentResult) -> dict:
    """Three figures: example fits, distance against width, the gradient-descent path."""
    import matplotlib.pyplot as plt

    figures = {}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    curves = result.tables["curves"]
    for name in dict.fromkeys(r["curve"] for r in curves):
        pts = [r for r in curves if r["curve"] == name]
        xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
        if name == "data":
            ax.scatter(xs, ys, s=14, color="black", zorder=3, label="training data")
        elif "spline" in name:
            ax.plot(xs, ys, lw=2.5, color="black" if "smoothing" in name else "0.6",
                    ls="--" if "smoothing" in name else ":", zorder=2, label=name)
        else:
            ax.plot(xs, ys, lw=1.3, label=name)
    ax.set(title="Ridge on the last layer of a random ReLU net vs. cubic splines",
           xlabel="input x", ylabel="output f(x)")
    ax.legend(fontsize=8)
    figures["fits"] = fig

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    summary = result.tables["summary"]
    widths = [r["width"] for r in summary]
    runs = result.tables["runs"]
    for key, label, slope in (
            ("ridge_to_smoothing_spline", "ridge net vs smoothing spline",
             result.findings["ridge_slope"]),
            ("min_norm_to_interpolating_spline", "min-norm net vs interpolating spline",
             result.findings["min_norm_slope"])):
        line, = ax.plot(widths, [r[key] for r in summary], marker="o",
                        label=f"{label} (fitted slope {slope:.2f})")
        ax.scatter([r["width"] for r in runs], [r[key] for r in runs], s=10, alpha=0.4,
                   color=line.get_color())
    ax.set(xscale="log", yscale="log", xlabel="width m (number of random ReLU features)",
           ylabel="relative RMS distance on the data interval",
           title=f"Distance to the spline limit (dots: {result.settings['seeds']} feature draws)")
    ax.legend(fontsize=8)
    figures["convergence"] = fig

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    gd = result.tables["gradient_descent"]
    steps = [r["steps"] for r in gd]
    left.plot(steps, [r["matched_lambda"] for r in gd], "o-", label="closest smoothing spline")
    left.plot(steps, [r["predicted_lambda"] for r in gd], "k--",
              label=r"$2L/(m\,\eta\,t)$ (ridge $1/(\eta t)$)")
    left.set(xscale="log", yscale="log", xlabel="gradient-descent steps t",
             ylabel="smoothing parameter lambda", title="Early stopping acts as a ridge")
    left.legend(fontsize=8)
    right.plot(steps, [r["distance_to_matched_spline"] for r in gd], "o-")
    right.set(xscale="log", yscale="log", xlabel="gradient-descent steps t",
              ylabel="relative RMS distance", title="Distance to the closest smoothing spline")
    fig.tight_layout()
    figures["gradient_descent"] = fig
    return figures
