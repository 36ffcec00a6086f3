"""Finite networks next to their infinite-width kernels (the flagship experiment).

Task: scikit-learn's bundled handwritten digits (8 x 8 pixels, d = 64), labels
+1 for the digits 0-4 and -1 for 5-9, fitted by regression on the squared
loss. Inputs are centered with the training mean and scaled to norm sqrt(d),
so every input has the same NNGP variance.

One description, ``lazykit.mlp(depth, width)`` (ReLU, NTK parameterization),
gives both sides. Networks of several widths are trained by full-batch
gradient descent, side by side with their tangent models, on
R(alpha (f(w) - f(w_0))) / alpha^2 (``lazykit.train`` with ``alpha`` and
centering), with the same step size eta = 1 / lambda_max(Theta / n) and number
of steps for every width and alpha. The output then follows kernel gradient
flow for the same time T = steps x eta whatever alpha (docs/architecture.md, "Lazy
training"), so the analytic NTK regressor at that time, ``NTKRegressor(t=T)``,
is the network's infinite-width limit. Next to them: the NTK regressor at
t = infinity (the ridgeless interpolant) and the NNGP posterior mean.

Measured for every width, alpha and seed: test MSE and error rate; the
relative RMS distance of the network's test predictions to the analytic
NTK regressor's (falls with the width, like width^(-1/2) once lazy); the
largest deviation from the tangent model over training,
sup_t ||alpha f - alpha T f|| on the test points (falls with alpha); the
relative parameter movement ||w_T - w_0|| / ||w_0|| (falls like 1/alpha).
"""

from __future__ import annotations

import numpy as np

from lazykit.experiments.results import ExperimentResult

SETTINGS = {
    "quick": dict(n_train=256, n_test=256, depth=1, widths=(64, 256, 1024),
                  alphas=(0.1, 1.0, 10.0), seeds=1, steps=400, dtype="float32"),
    "full": dict(n_train=500, n_test=500, depth=1, widths=(64, 256, 1024, 4096),
                 alphas=(0.1, 1.0, 10.0, 100.0), seeds=3, steps=1000, dtype="float32"),
}
KERNEL_MODELS = ("NTK regressor, t = T", "NTK regressor, t = inf", "NNGP posterior mean")
DESCRIPTIONS = {
    "model": "'network' (a trained finite net) or an analytic kernel predictor",
    "width": "hidden width m of the network",
    "alpha": "output scale alpha: the net trains alpha (f - f_0), large alpha is lazy",
    "test_mse": "test mean squared error (labels +-1)",
    "test_error": "test classification error of the sign (fraction of test points)",
    "tangent_test_mse": "test MSE of the network's tangent (linearized) model, trained "
                        "alongside",
    "distance_to_ntk": "||f_net - f_NTK|| / ||f_NTK|| on the test points, f_NTK the analytic "
                       "NTK regressor at the same training time T",
    "deviation_from_tangent": "largest RMS of alpha (f - f_tangent) on the test points over "
                              "training",
    "param_movement": "relative parameter movement ||w_T - w_0|| / ||w_0||",
    "ntk_distance_slope": "log-log slope of distance_to_ntk against the width at the largest "
                          "alpha (about -1/2 once lazy)",
    "tangent_deviation_slope": "log-log slope of deviation_from_tangent against alpha at the "
                               "largest width",
    "movement_slope": "log-log slope of param_movement against alpha at the largest width "
                      "(about -1)",
    "widest_lazy_distance_to_ntk": "distance_to_ntk of the widest net at the largest alpha",
    "widest_lazy_test_mse": "test MSE of the widest net at the largest alpha",
    "ntk_test_mse": "test MSE of the analytic NTK regressor at time T",
}


def load_task(seed: int, n_train: int, n_test: int):
    """Digits as a +-1 regression task: (X_train, y_train, X_test, y_test), split by ``seed``."""
    from sklearn.datasets import load_digits

    images, digits = load_digits(return_X_y=True)
    if n_train + n_test > len(images):
        raise ValueError(f"n_train + n_test must be at most {len(images)} (the digits); got "
                         f"{n_train} + {n_test}.")
    order = np.random.default_rng([seed, 0]).permutation(len(images))
    train, test = order[:n_train], order[n_train:n_train + n_test]
    x = images - images[train].mean(axis=0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12) * np.sqrt(x.shape[1])
    y = np.where(digits < 5, 1.0, -1.0)
    return x[train], y[train], x[test], y[test]


def scores(prediction, y) -> dict:
    """Test MSE and error rate of the sign."""
    return dict(test_mse=float(np.mean((prediction - y) ** 2)),
                test_error=float(np.mean(np.sign(prediction) != y)))


def relative_rms(a, b) -> float:
    """||a - b|| / ||b||."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def kernel_predictions(network, x_train, y_train, x_test, time):
    """The three kernel predictors of ``KERNEL_MODELS`` on the test inputs."""
    from lazykit.estimators import NNGPRegressor, NTKRegressor

    ntk = NTKRegressor(network).fit(x_train, y_train)
    at_t, at_inf = ntk.predict(x_test, t=np.array([time, np.inf]))
    nngp = NNGPRegressor(network).fit(x_train, y_train).predict(x_test)
    return dict(zip(KERNEL_MODELS, (at_t, at_inf, nngp), strict=True))


def run(setting: str = "quick", seed: int = 0, progress=None) -> ExperimentResult:
    """Train networks of several widths and output scales; compare with the NTK and NNGP.

    Examples:
        >>> from lazykit import experiments
        >>> result = experiments.run("kernel_vs_network", "quick")  # doctest: +SKIP
        >>> result.findings["ntk_distance_slope"] < 0  # doctest: +SKIP
        True
    """
    from lazykit.network import mlp
    from lazykit.training import train

    cfg = SETTINGS[setting]
    say = progress or (lambda message: None)
    runs, kernel_rows = [], []
    for s in range(cfg["seeds"]):
        data_seed = seed * 1000 + s
        x_train, y_train, x_test, y_test = load_task(data_seed, cfg["n_train"], cfg["n_test"])
        description = mlp(cfg["depth"], width=1)  # the kernels do not depend on the width
        theta = description.kernel(x_train).ntk
        lr = float(len(y_train) / np.linalg.eigvalsh(theta)[-1])
        time = cfg["steps"] * lr
        kernels = kernel_predictions(description, x_train, y_train, x_test, time)
        kernel_rows += [dict(model=name, seed=data_seed, **scores(p, y_test))
                        for name, p in kernels.items()]
        say(f"kernel_vs_network: kernels of split {data_seed} done (T = {time:.4g})")
        for width in cfg["widths"]:
            for alpha in cfg["alphas"]:
                record = train(mlp(cfg["depth"], width), x_train, y_train, steps=cfg["steps"],
                               learning_rate=lr, alpha=alpha, X_test=x_test, y_test=y_test,
                               record_every=max(1, cfg["steps"] // 10), ntk_points=0,
                               verbose=False, dtype=cfg["dtype"], seed=data_seed)
                prediction = record.predict(x_test)[:, 0]
                tangent = record.predict(x_test, tangent=True)[:, 0]
                runs.append(dict(
                    width=width, alpha=alpha, seed=data_seed, time=time,
                    **scores(prediction, y_test),
                    tangent_test_mse=scores(tangent, y_test)["test_mse"],
                    distance_to_ntk=relative_rms(prediction, kernels[KERNEL_MODELS[0]]),
                    deviation_from_tangent=record.sup_deviation("test"),
                    param_movement=float(record.param_movement[-1])))
                say(f"kernel_vs_network: width {width}, alpha {alpha:g} trained "
                    f"(test MSE {runs[-1]['test_mse']:.4g})")
    summary = _summarize(runs, kernel_rows)
    findings = _findings(cfg, summary)
    return ExperimentResult("kernel_vs_network", dict(cfg, setting=setting, seed=seed),
                            {"summary": summary, "runs": runs, "kernels": kernel_rows},
                            "summary", findings, descriptions=DESCRIPTIONS)


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows]))


def _summarize(runs, kernel_rows):
    """Seed means: one row per (width, alpha) network, then one per kernel predictor."""
    summary = []
    for width in dict.fromkeys(r["width"] for r in runs):
        for alpha in dict.fromkeys(r["alpha"] for r in runs):
            group = [r for r in runs if r["width"] == width and r["alpha"] == alpha]
            summary.append(dict(model="network", width=width, alpha=alpha, **{
                key: _mean(group, key) for key in (
                    "test_mse", "test_error", "tangent_test_mse", "distance_to_ntk",
                    "deviation_from_tangent", "param_movement")}))
    for name in KERNEL_MODELS:
        group = [r for r in kernel_rows if r["model"] == name]
        summary.append(dict(model=name, width=None, alpha=None, test_mse=_mean(group, "test_mse"),
                            test_error=_mean(group, "test_error")))
    return summary


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _findings(cfg, summary):
    nets = [r for r in summary if r["model"] == "network"]
    widest, laziest = max(cfg["widths"]), max(cfg["alphas"])
    lazy = [r for r in nets if r["alpha"] == laziest]
    wide = [r for r in nets if r["width"] == widest]
    at_t = next(r for r in summary if r["model"] == KERNEL_MODELS[0])
    best = next(r for r in wide if r["alpha"] == laziest)
    return {
        "ntk_distance_slope": _slope([r["width"] for r in lazy],
                                     [r["distance_to_ntk"] for r in lazy]),
        "tangent_deviation_slope": _slope([r["alpha"] for r in wide],
                                          [r["deviation_from_tangent"] for r in wide]),
        "movement_slope": _slope([r["alpha"] for r in wide], [r["param_movement"] for r in wide]),
        "widest_lazy_distance_to_ntk": best["distance_to_ntk"],
        "widest_lazy_test_mse": best["test_mse"],
        "ntk_test_mse": at_t["test_mse"],
    }


def plot(result: ExperimentResult) -> dict:
    """One figure, three panels: distance to the NTK vs width, deviation from the tangent
    model vs alpha, test MSE vs width next to the kernel predictors."""
    import matplotlib.pyplot as plt

    summary = result.tables["summary"]
    nets = [r for r in summary if r["model"] == "network"]
    widths = sorted({r["width"] for r in nets})
    alphas = sorted({r["alpha"] for r in nets})
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.4))
    for alpha in alphas:
        rows = [r for r in nets if r["alpha"] == alpha]
        left.plot([r["width"] for r in rows], [r["distance_to_ntk"] for r in rows], "o-",
                  label=f"alpha = {alpha:g}")
        right.plot([r["width"] for r in rows], [r["test_mse"] for r in rows], "o-",
                   label=f"network, alpha = {alpha:g}")
    reference = np.array(widths, float)
    lazy = [r["distance_to_ntk"] for r in nets if r["alpha"] == alphas[-1]]
    left.plot(reference, lazy[0] * (reference / reference[0]) ** -0.5, "k:",
              label="slope -1/2")
    left.set(xscale="log", yscale="log", xlabel="hidden width m",
             ylabel="||f_net - f_NTK|| / ||f_NTK|| on test points",
             title="Network vs. analytic NTK regressor at the same time T")
    left.legend(fontsize=8)
    for width in widths:
        rows = [r for r in nets if r["width"] == width]
        middle.plot([r["alpha"] for r in rows], [r["deviation_from_tangent"] for r in rows],
                    "o-", label=f"width {width}")
    reference = np.array(alphas, float)
    deviation = [r["deviation_from_tangent"] for r in nets if r["width"] == widths[-1]]
    middle.plot(reference, deviation[0] * reference[0] / reference, "k:", label="slope -1")
    middle.plot(reference, deviation[0] * np.sqrt(reference[0] / reference), "k--",
                label="slope -1/2")
    middle.set(xscale="log", yscale="log", xlabel="output scale alpha",
               ylabel="sup_t RMS |alpha f - alpha Tf| on test points",
               title="Network vs. its tangent model during training")
    middle.legend(fontsize=8)
    styles = dict(zip(KERNEL_MODELS, (("black", "--"), ("0.5", ":"), ("tab:purple", "-.")),
                      strict=True))
    for row in summary:
        if row["model"] in styles:
            color, line = styles[row["model"]]
            right.axhline(row["test_mse"], color=color, ls=line, label=row["model"])
    right.set(xscale="log", xlabel="hidden width m", ylabel="test mean squared error",
              title="Test loss (digits 0-4 vs 5-9)")
    right.legend(fontsize=7)
    fig.suptitle(f"ReLU MLP of depth {result.settings['depth']}, {result.settings['n_train']} "
                 f"training digits, gradient descent for time T "
                 f"({result.settings['steps']} steps); mean over {result.settings['seeds']} "
                 "data split(s) and initialization(s)", fontsize=10)
    fig.tight_layout()
    return {"kernel_vs_network": fig}
