"""Random features vs neural tangent vs full training (Ghorbani, Mei, Misiakiewicz, Montanari 2019).

Model: f(x) = c + sum_{i<=N} a_i sigma(w_i . x) with the quadratic activation
sigma(t) = t^2, so every network is a quadratic form, f(x) = c + x^T M x with
M = W^T diag(a) W. The three regimes fit M in three different sets:

* RF (random features, output layer a trained): M in span{w_i w_i^T};
* NT (neural tangent, the linearization around (W, a) with every a_i != 0
  trained): the tangent directions w_i w_i^T and a_i (w_i u^T + u w_i^T) span
  {M : P_perp M P_perp = 0}, P the projector onto span{w_i};
* NN (everything trained): every symmetric M of rank <= N.

**Quadratic target.** x ~ N(0, I_d), f*(x) = x^T B x - tr B. With Gaussian
fourth moments (E[x^T D x] = tr D, Var[x^T D x] = 2 ||D||_F^2) the population
risk is exactly

    E[(f(x) - f*(x))^2] = 2 ||M - B||_F^2 + (tr M + c)^2,

so the best offset is c = -tr M and the risk normalized by Var f* = 2 ||B||_F^2
is ||M - B||_F^2 / ||B||_F^2: least squares in the Frobenius norm. Hence
R_RF = Frobenius projection of B onto span{w_i w_i^T} (an N x N system with Gram
(w_i . w_j)^2), R_NT = ||P_perp B P_perp||_F^2 / ||B||_F^2 (zero once N >= d), and
R_NN = the best rank-N approximation (Eckart-Young: keep the N eigenvalues of B
largest in modulus). The NN optimum is also reached (or nearly: gradient descent
can stop in a local minimum for N < d) by gradient descent on the population risk.

**Two-Gaussian mixture.** y = +-1 with probability 1/2 and
x | y ~ N(0, I_d + y Delta P_S), S the first ``signal_dim`` coordinates; the
Bayes rule thresholds ||x_S||^2. Each regime is fitted to n samples by least
squares on the labels (RF and NT in closed form on their features, NN by
gradient descent) and its sign classifies fresh test points. NT is fitted on
:func:`tangent_space_features`, a smaller basis of the span of the tangent
features (the same least-squares fit, faster).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from lazykit import Dense, Monomial, Network, make_trainer, serial, train_to_checkpoints
from lazykit._dtypes import precision
from lazykit.experiments.results import ExperimentResult

REGIMES = ("RF", "NT", "NN")
_RISK = "population risk / Var f* on the quadratic target (0: exact, 1: no better than 0)"
DESCRIPTIONS = {
    "width": "number of neurons N",
    "ratio": "N/d, neurons per input dimension",
    "RF": f"random features (output layer trained, first layer fixed): {_RISK}",
    "NT": f"neural tangent model (linearization around the random first layer): {_RISK}",
    "NN": f"best network of width N (global optimum: best rank-N approximation): {_RISK}",
    "NN_trained": f"network trained by gradient descent on the population risk: {_RISK}",
    "max_order_violation": "largest violation of NN <= NT <= RF over the runs (about 0)",
    "nt_risk_at_half": "NT risk at N/d = 1/2",
    "nn_risk_at_half": "NN risk at N/d = 1/2",
    "rf_risk_at_half": "RF risk at N/d = 1/2",
    "min_rf_over_nt_below_d": "smallest RF / NT risk ratio for N < d (> 1: the tangent model "
                              "beats random features)",
    "max_nt_risk_above_d": "largest NT risk for N >= d (0: the tangent model is exact there)",
    "max_nn_trained_excess": "largest NN_trained - NN (how far gradient descent stops from "
                             "the global optimum)",
    "mixture_bayes_error": "test error of the Bayes rule on the two-Gaussian mixture",
    "mixture_rf_minus_nt_below_d": "mixture: mean test error of RF minus NT over N < d",
    "mixture_nt_minus_nn_below_d": "mixture: mean test error of NT minus NN over N < d",
    "mixture_nt_minus_nn_above_d": "mixture: mean test error of NT minus NN over N >= d",
    "mixture_min_error": "mixture: lowest test error of any regime and width",
}
SETTINGS = {
    "quick": dict(dim=30, ratios=(0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0), seeds=2,
                  nn_steps=4000, nn_lr=0.1, mixture_dim=16, signal_dim=4, delta=0.5,
                  n_train=2000, n_test=20000, mixture_ratios=(0.125, 0.25, 0.5, 1.0, 2.0),
                  mixture_steps=1500, mixture_lr=0.02),
    "full": dict(dim=100, ratios=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25,
                                  1.5, 2.0), seeds=2, nn_steps=6000, nn_lr=0.1,
                 mixture_dim=40, signal_dim=10, delta=0.5, n_train=10000, n_test=50000,
                 mixture_ratios=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
                 mixture_steps=3000, mixture_lr=0.02),
}


def gaussian_symmetric_target(rng, dim: int) -> np.ndarray:
    """B = (G + G^T) / sqrt(2) for a Gaussian G (a GOE matrix), scaled to ||B||_F^2 = dim."""
    g = rng.normal(size=(dim, dim))
    b = (g + g.T) / np.sqrt(2)
    return b * np.sqrt(dim) / np.linalg.norm(b)


def population_risk(m, offset: float, b) -> float:
    """E[(c + x^T M x - (x^T B x - tr B))^2] for x ~ N(0, I_d), in closed form.

    Args:
        m: the network's quadratic form M = W^T diag(a) W, shape (d, d), symmetric.
        offset: the network's constant c.
        b: the target's matrix B, symmetric.

    Returns:
        2 ||M - B||_F^2 + (tr M + c)^2.

    Examples:
        >>> import numpy as np
        >>> b = np.diag([1.0, -1.0])
        >>> population_risk(np.zeros((2, 2)), 0.0, b)  # Var(x1^2 - x2^2) = 2 + 2
        4.0
    """
    m, b = np.asarray(m), np.asarray(b)
    return float(2 * np.sum((m - b) ** 2) + (np.trace(m) + offset) ** 2)


def normalized_risk(m, b) -> float:
    """Population risk with the best offset (c = -tr M), divided by Var f* = 2 ||B||_F^2."""
    return float(np.sum((np.asarray(m) - b) ** 2) / np.sum(np.asarray(b) ** 2))


def random_features_fit(w, b) -> np.ndarray:
    """Best M = sum_i a_i w_i w_i^T (rows w_i of ``w``): Frobenius projection of B."""
    gram = (w @ w.T) ** 2
    rhs = np.einsum("id,de,ie->i", w, b, w)
    a = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return w.T @ (a[:, None] * w)


def neural_tangent_fit(w, b) -> np.ndarray:
    """Best M in the tangent space {M : P_perp M P_perp = 0}: B - P_perp B P_perp."""
    basis = np.linalg.svd(w, full_matrices=False)[2]
    basis = basis[: np.linalg.matrix_rank(w)]
    perp = np.eye(b.shape[0]) - basis.T @ basis
    return b - perp @ b @ perp


def best_rank_fit(b, rank: int) -> np.ndarray:
    """Best symmetric M of rank <= ``rank`` (keep the eigenvalues largest in modulus)."""
    values, vectors = np.linalg.eigh(b)
    keep = np.argsort(-np.abs(values))[:rank]
    return (vectors[:, keep] * values[keep]) @ vectors[:, keep].T


def quadratic_student(width: int, dim: int, offset: bool = True) -> Network:
    """f(x) = c + sum_i a_i (w_i . x)^2: ``Dense(N, W_std=sqrt(d))`` (weights w_i as its
    columns: the NTK parameterization multiplies them by sqrt(d) / sqrt(d) = 1), the
    quadratic activation ``Monomial(2)``, and the readout ``Dense(1, W_std=sqrt(N))`` (weights
    a_i, times 1) with the bias c (b_std = 1) if ``offset``. Parameters: :func:`to_params`."""
    return serial(Dense(width, W_std=math.sqrt(dim)), Monomial(2),
                  Dense(1, W_std=math.sqrt(width), b_std=1.0 if offset else None))


def to_params(w, a, c=None) -> list:
    """:func:`quadratic_student` parameters of the neurons w (N, d), a (N,) and offset c."""
    readout = {"W": a[:, None]} if c is None else {"W": a[:, None], "b": jnp.reshape(c, (1,))}
    return [{"W": w.T}, {}, readout]


def quadratic_form(params):
    """M = W^T diag(a) W of :func:`quadratic_student` parameters."""
    w, a = params[0]["W"], params[2]["W"][:, 0]
    return w @ (a[:, None] * w.T)


def half_gradient(params, x):
    """M x_i = grad f(x_i) / 2 for each row x_i of ``x`` (f(x) = x^T M x, the
    :func:`quadratic_student` without offset): on the basis vectors, the rows of M. An
    ``apply_fn`` for the trainer, computed from the student's parameters as
    x (W^T diag(a) W) (d^2 N per input batch of the identity; the tests check it against
    autodiff through the network)."""
    return x @ quadratic_form(params)


def relative_frobenius(outputs, targets):
    """||outputs - targets||_F^2 / ||targets||_F^2: with the rows of M and of B (outputs of
    :func:`half_gradient` on the identity), the normalized population risk."""
    return jnp.sum((outputs - targets) ** 2) / jnp.sum(targets**2)


def _pad(w, width: int) -> np.ndarray:
    """Neurons w (N, d) padded with zero rows to ``width``: a zero neuron (w_i = 0, a_i = 0)
    adds nothing to f and gets zero gradients, so it stays zero."""
    return np.concatenate([w, np.zeros((width - len(w), w.shape[1]))])


def _descend(model, loss, starts, x, y, steps: int, lr: float, *, data_batched=False):
    """``steps`` steps of full-batch gradient descent with lazykit's trainer for a stack of
    runs (``starts``: a list of parameters of one shape); their final parameters, stacked."""
    trainer = make_trainer(model, loss, tangent=False, center=False, ntk_points=0)
    stack = jax.tree_util.tree_map(lambda *v: jnp.stack(v), *starts)
    init = jax.vmap(lambda p, inputs: trainer.init(p, inputs, learning_rate=lr),
                    in_axes=(0, 0 if data_batched else None))
    end, _ = train_to_checkpoints(trainer, init(stack, x), x, y, [steps], batched=True,
                                  data_batched=data_batched)
    return end.params


def train_networks_population(ws, bs, steps: int, lr: float) -> list:
    """Gradient descent on the normalized population risk ||W^T diag(a) W - B||_F^2 / ||B||_F^2
    for each pair of first layer ``w`` and target ``b``, all in one batch.

    Each starts from its first layer w and a = 0 (the network is 0 at the start and the
    signs of the a_i are chosen by the dynamics); returns the trained M. The students are
    :func:`quadratic_student` without offset, padded with zero neurons to the widest,
    trained with lazykit's trainer on :func:`half_gradient` at the basis vectors (the rows
    of M) against the rows of B (:func:`relative_frobenius`).
    """
    width, dim = max(len(w) for w in ws), ws[0].shape[1]
    with precision("float64"):
        starts = [to_params(jnp.asarray(_pad(w, width)), jnp.zeros(width)) for w in ws]
        basis = jnp.broadcast_to(jnp.eye(dim), (len(ws), dim, dim))
        params = _descend(half_gradient, relative_frobenius, starts, basis,
                          jnp.asarray(np.stack(bs)), steps, lr, data_batched=True)
        forms = jax.vmap(quadratic_form)(params)
        return list(np.asarray(forms))


def train_network_population(w, b, steps: int, lr: float) -> np.ndarray:
    """:func:`train_networks_population` for one first layer ``w`` and target ``b``."""
    return train_networks_population([w], [b], steps, lr)[0]


def sample_mixture(rng, n: int, dim: int, signal_dim: int, delta: float):
    """n points of the mixture: y = +-1, x | y ~ N(0, I + y delta P_S), S = first coordinates."""
    y = rng.choice([-1.0, 1.0], size=n)
    scale = np.ones((n, dim))
    scale[:, :signal_dim] = np.sqrt(1 + delta * y)[:, None]
    return rng.normal(size=(n, dim)) * scale, y


def bayes_error(x, y, signal_dim: int, delta: float) -> float:
    """Test error of the Bayes rule (log-likelihood ratio of the two Gaussians) on (x, y)."""
    energy = np.sum(x[:, :signal_dim] ** 2, axis=1)
    ratio = energy * (1 / (1 - delta) - 1 / (1 + delta)) / 2 + signal_dim / 2 * np.log(
        (1 - delta) / (1 + delta))
    return float(np.mean(np.where(ratio > 0, 1.0, -1.0) != y))


def random_features(x, w):
    """RF features of f = c + sum_i a_i (w_i . x)^2: a column of ones and (w_i . x)^2."""
    return np.column_stack([np.ones(len(x)), (x @ w.T) ** 2])


def tangent_features(x, w, a):
    """Gradient of f in (c, a, W) at (w, a): 1, (w_i . x)^2 and 2 a_i (w_i . x) x."""
    h = x @ w.T
    weights = (2 * a * h)[:, :, None] * x[:, None, :]
    return np.column_stack([np.ones(len(x)), h**2, weights.reshape(len(x), -1)])


def tangent_space_features(x, w):
    """A basis of the same span as :func:`tangent_features`, of dimension <= 1 + d(d+1)/2.

    With u = Q^T x and v = Q_perp^T x (Q an orthonormal basis of span{w_i}), the
    quadratic forms with P_perp M P_perp = 0 are spanned by u_i u_j (i <= j) and u_i v_k.
    """
    vh = np.linalg.svd(w, full_matrices=True)[2]
    rank = np.linalg.matrix_rank(w)
    u, v = x @ vh[:rank].T, x @ vh[rank:].T
    rows, cols = np.triu_indices(rank)
    return np.column_stack([np.ones(len(x)), u[:, rows] * u[:, cols],
                            (u[:, :, None] * v[:, None, :]).reshape(len(x), -1)])


def least_squares(features, y):
    """Minimum-norm least-squares coefficients."""
    return np.linalg.lstsq(features, y, rcond=None)[0]


def _mean_square(outputs, targets):
    return jnp.mean((outputs - targets) ** 2)


def train_networks_samples(x, y, ws, steps: int, lr: float) -> list:
    """Gradient descent on mean (f(x_i) - y_i)^2 over (c, a, W) from (0, 0, w) for each first
    layer w of ``ws``, in one batch (:func:`quadratic_student` padded with zero neurons to
    the widest, trained with lazykit's trainer); returns the functions f."""
    width, dim = max(len(w) for w in ws), ws[0].shape[1]
    model = quadratic_student(width, dim)
    with precision("float64"):
        starts = [to_params(jnp.asarray(_pad(w, width)), jnp.zeros(width), jnp.zeros(()))
                  for w in ws]
        params = _descend(model, _mean_square, starts, jnp.asarray(x),
                          jnp.asarray(y)[:, None], steps, lr)
        params = jax.tree_util.tree_map(np.asarray, params)

    def predictor(i):
        run = jax.tree_util.tree_map(lambda v: v[i], params)

        def predict(inputs):
            with precision("float64"):
                return np.asarray(model.apply(run, jnp.asarray(inputs)))[:, 0]

        return predict

    return [predictor(i) for i in range(len(ws))]


def train_network_samples(x, y, w, steps: int, lr: float):
    """:func:`train_networks_samples` for one first layer ``w``: the trained f."""
    return train_networks_samples(x, y, [w], steps, lr)[0]


def _error(scores, y) -> float:
    return float(np.mean(np.where(scores > 0, 1.0, -1.0) != y))


def _neurons(rng, count: int, dim: int):
    return rng.normal(size=(count, dim)) / np.sqrt(dim)


def _quadratic_rows(cfg, seed, say):
    dim = cfg["dim"]
    runs = []
    for s in range(cfg["seeds"]):
        b = gaussian_symmetric_target(np.random.default_rng([seed, s]), dim)
        for ratio in cfg["ratios"]:
            width = max(1, round(ratio * dim))
            runs.append((s, width, b, _neurons(np.random.default_rng([seed, s, width]), width,
                                               dim)))
    trained = train_networks_population([w for *_, w in runs], [b for _, _, b, _ in runs],
                                        cfg["nn_steps"], cfg["nn_lr"])
    say(f"regimes: quadratic target, {len(runs)} networks trained")
    return [dict(seed=s, width=width, ratio=width / dim,
                 RF=normalized_risk(random_features_fit(w, b), b),
                 NT=normalized_risk(neural_tangent_fit(w, b), b),
                 NN=normalized_risk(best_rank_fit(b, width), b),
                 NN_trained=normalized_risk(m, b))
            for (s, width, b, w), m in zip(runs, trained, strict=True)]


def _mixture_rows(cfg, seed, say):
    dim, signal, delta = cfg["mixture_dim"], cfg["signal_dim"], cfg["delta"]
    rng = np.random.default_rng([seed, 101])
    x, y = sample_mixture(rng, cfg["n_train"], dim, signal, delta)
    x_test, y_test = sample_mixture(rng, cfg["n_test"], dim, signal, delta)
    widths = [max(1, round(ratio * dim)) for ratio in cfg["mixture_ratios"]]
    ws = [_neurons(np.random.default_rng([seed, 102, width]), width, dim) for width in widths]
    nets = train_networks_samples(x, y, ws, cfg["mixture_steps"], cfg["mixture_lr"])
    say(f"regimes: mixture, {len(ws)} networks trained")
    rows = []
    for width, w, nn in zip(widths, ws, nets, strict=True):
        rf = least_squares(random_features(x, w), y)
        nt = least_squares(tangent_space_features(x, w), y)
        rows.append(dict(width=width, ratio=width / dim,
                         RF=_error(random_features(x_test, w) @ rf, y_test),
                         NT=_error(tangent_space_features(x_test, w) @ nt, y_test),
                         NN=_error(nn(x_test), y_test),
                         bayes=bayes_error(x_test, y_test, signal, delta)))
        say(f"regimes: mixture, N = {width} done")
    return rows


def _summarize(rows):
    summary = []
    for ratio in sorted({r["ratio"] for r in rows}):
        group = [r for r in rows if r["ratio"] == ratio]
        entry = {"width": group[0]["width"], "ratio": ratio}
        for key in (*REGIMES, "NN_trained"):
            entry[key] = float(np.mean([r[key] for r in group]))
        summary.append(entry)
    return summary


def run(setting: str = "quick", seed: int = 0, progress=None) -> ExperimentResult:
    """Risks of the RF, NT and NN regimes against N/d on the quadratic target and the mixture.

    Examples:
        >>> from lazykit.experiments import regimes
        >>> result = regimes.run("quick", seed=0)  # doctest: +SKIP
        >>> result.findings["max_order_violation"] < 1e-9  # doctest: +SKIP
        True
    """
    cfg = SETTINGS[setting]
    say = progress or (lambda message: None)
    runs = _quadratic_rows(cfg, seed, say)
    summary = _summarize(runs)
    mixture = _mixture_rows(cfg, seed, say)
    below = [r for r in summary if r["ratio"] < 1]
    above = [r for r in summary if r["ratio"] >= 1]
    findings = {
        "max_order_violation": max(max(r["NN"] - r["NT"], r["NT"] - r["RF"]) for r in runs),
        "nt_risk_at_half": _at(summary, 0.5, "NT"),
        "nn_risk_at_half": _at(summary, 0.5, "NN"),
        "rf_risk_at_half": _at(summary, 0.5, "RF"),
        "min_rf_over_nt_below_d": min(r["RF"] / r["NT"] for r in below),
        "max_nt_risk_above_d": max(r["NT"] for r in above),
        "max_nn_trained_excess": max(r["NN_trained"] - r["NN"] for r in runs),
        "mixture_bayes_error": mixture[0]["bayes"],
        "mixture_rf_minus_nt_below_d": _mean_gap(mixture, "RF", "NT", below_d=True),
        "mixture_nt_minus_nn_below_d": _mean_gap(mixture, "NT", "NN", below_d=True),
        "mixture_nt_minus_nn_above_d": _mean_gap(mixture, "NT", "NN", below_d=False),
        "mixture_min_error": min(r[k] for r in mixture for k in REGIMES),
    }
    return ExperimentResult("regimes", dict(cfg, setting=setting, seed=seed),
                            {"summary": summary, "runs": runs, "mixture": mixture}, "summary",
                            findings, descriptions=DESCRIPTIONS)


def _mean_gap(rows, worse, better, below_d):
    """Mean test-error difference worse - better over the widths N < d (or N >= d)."""
    return float(np.mean([r[worse] - r[better] for r in rows if (r["ratio"] < 1) == below_d]))


def _at(summary, ratio, key):
    return min(summary, key=lambda r: abs(r["ratio"] - ratio))[key]


def plot(result: ExperimentResult) -> dict:
    """Two figures: normalized risk against N/d (quadratic target), test error (mixture)."""
    import matplotlib.pyplot as plt

    styles = {"RF": ("C0", "o"), "NT": ("C1", "s"), "NN": ("C2", "^")}
    labels = {"RF": "RF (output layer)", "NT": "NT (linearization)",
              "NN": "NN (all weights)"}
    settings = result.settings
    figures = {}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    summary, runs = result.tables["summary"], result.tables["runs"]
    ratios = [r["ratio"] for r in summary]
    for key in REGIMES:
        color, marker = styles[key]
        name = labels[key] + (", global optimum" if key == "NN" else "")
        ax.plot(ratios, [r[key] for r in summary], marker=marker, color=color, label=name)
    ax.scatter([r["ratio"] for r in runs], [r["NN_trained"] for r in runs], marker="x",
               color="C2", zorder=3, label="NN trained by gradient descent")
    ax.axvline(1.0, color="0.5", ls=":", label="N = d")
    ax.set(xlabel="neurons per input dimension N/d", ylabel="test risk / Var f*",
           title=f"Quadratic target, quadratic activation, d = {settings['dim']} (population)",
           ylim=(-0.03, 1.05))
    ax.legend(fontsize=8)
    figures["quadratic_risk"] = fig

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    mixture = result.tables["mixture"]
    ratios = [r["ratio"] for r in mixture]
    for key in REGIMES:
        color, marker = styles[key]
        ax.plot(ratios, [100 * r[key] for r in mixture], marker=marker, color=color,
                label=labels[key])
    ax.axhline(100 * mixture[0]["bayes"], color="black", ls="--", label="Bayes error")
    ax.axvline(1.0, color="0.5", ls=":", label="N = d")
    ax.set(xlabel="neurons per input dimension N/d", ylabel="test error (%)",
           title=(f"Two-Gaussian mixture, d = {settings['mixture_dim']}, signal in "
                  f"{settings['signal_dim']} dims, n = {settings['n_train']}"))
    ax.legend(fontsize=8)
    figures["mixture_error"] = fig
    return figures
