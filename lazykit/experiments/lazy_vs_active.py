"""Lazy vs active training of a two-layer ReLU student (Chizat and Bach 2019, Figs. 2-3).

Teacher: y(x) = sum_k v_k relu(a*_k . x) with 3 unit neurons a*_k and v_k = +-1,
inputs uniform on the unit sphere of R^d (no bias). Student, in lazykit's
two-layer convention (``lazykit.TwoLayer`` without the input bias):

    f(w, x) = (1/m) sum_j c_j relu(a_j . x),

with a symmetric initialization at scale tau: a_j = tau u_j (u_j uniform on the
sphere), c_j = +tau for the first half and -tau for the mirrored second half
(u_{j + m/2} = u_j), so f(w_0) = 0 and |a_j| = |c_j| (the balance that gradient
flow of a ReLU net preserves). The model is 2-homogeneous: f at scale tau is
tau^2 f at scale 1, so the initialization scale plays the role of alpha ~ tau^2
(docs/architecture.md, "Lazy training"); the output scale itself stays 1.

Step size. Gradient descent on R(f) = mean_i (f(x_i) - y_i)^2 / 2 with

    lr(tau) = m * eta / max(1, tau^2).

The factor m is the mean-field scaling (each neuron moves at a width-independent
speed). The tangent kernel of f has size tau^2 / m, so for tau large the factor
1 / tau^2 keeps the function's speed (lr times kernel) independent of tau: every
tau trains for the same "kernel time" and is stable. For tau < 1 the neurons
grow to size O(1) during training, so the step is capped at m eta there. (The
authors' code uses the step min(10, 0.1 / tau^2) on sum_j c_j relu(a_j . x) with
an entrywise scale tau, hence |a_j| about 10 tau in d = 100; ours is the same
rule in the 1/m convention with |a_j| = tau.) eta = 10 is stable at every tau
here (20 was too, on the seeds tried).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from lazykit import Dense, Network, Relu, make_trainer, serial, train_to_checkpoints
from lazykit._dtypes import precision
from lazykit.experiments.results import ExperimentResult, mean_and_spread

SUMMARY_KEYS = ("test_loss_end", "test_loss_best", "train_loss_end", "neuron_travel")
DESCRIPTIONS = {
    "tau": "initialization scale tau (|a_j| = |c_j| = tau; large tau is lazy, small active)",
    "test_loss_end": "test loss (mean squared error / 2) at the end of training, mean over "
                     "runs",
    "test_loss_best": "lowest test loss during training, mean over runs",
    "train_loss_end": "training loss at the end of training, mean over runs",
    "neuron_travel": "mean over neurons of |w_j(T) - w_j(0)| / |w_j(0)|, w_j = (a_j, c_j): how "
                     "far the neurons moved, relative to their start",
    "spearman_end": "Spearman rank correlation of test_loss_end with tau (positive: lazier "
                    "generalizes worse)",
    "spearman_best": "Spearman rank correlation of test_loss_best with tau",
    "ratio_end_largest_to_smallest_tau": "test_loss_end at the largest tau / at the smallest",
    "ratio_best_largest_to_smallest_tau": "test_loss_best at the largest tau / at the smallest",
    "max_train_loss_end": "largest final training loss over tau (small: every scale fits the "
                          "training data)",
    "travel_smallest_tau": "neuron_travel at the smallest tau (active)",
    "travel_largest_tau": "neuron_travel at the largest tau (lazy)",
    "travel_2d_active": "neuron_travel of the 2-D picture run at its small tau (active)",
    "travel_2d_lazy": "neuron_travel of the 2-D picture run at its large tau (lazy)",
}

SETTINGS = {
    "quick": dict(dim=100, teacher_width=3, n_train=1000, n_test=1000, width=50,
                  taus=(0.01, 0.0562, 0.316, 1.78, 10.0), seeds=3, steps=1000,
                  record_every=10, eta=10.0,
                  picture=dict(dim=2, n_train=15, width=16, taus=(0.05, 10.0), eta=1.0,
                               steps=4000, record_every=10)),
    "full": dict(dim=100, teacher_width=3, n_train=1000, n_test=1000, width=50,
                 taus=tuple(float(t) for t in np.round(np.logspace(-2, 1, 13), 4)), seeds=4,
                 steps=5000, record_every=10, eta=10.0,
                 picture=dict(dim=2, n_train=15, width=16, taus=(0.05, 10.0), eta=1.0,
                              steps=20000, record_every=10)),
}
# float32: twice as fast as float64 on CPU, and ample for losses >= 1e-9 (checked
# against float64 on seed 0: test losses within 0.2%, median 2e-5).
DTYPE = "float32"


def unit_rows(rng, n: int, dim: int) -> np.ndarray:
    """``n`` points drawn uniformly on the unit sphere of R^dim, as rows."""
    x = rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def teacher_task(rng, dim: int, teacher_width: int, n_train: int, n_test: int) -> dict:
    """Teacher neurons and signs, train and test sets (inputs on the unit sphere)."""
    neurons = unit_rows(rng, teacher_width, dim)
    signs = rng.choice([-1.0, 1.0], size=teacher_width)
    task = dict(teacher=neurons, teacher_signs=signs)
    for split, n in (("train", n_train), ("test", n_test)):
        x = unit_rows(rng, n, dim)
        task["x_" + split], task["y_" + split] = x, np.maximum(x @ neurons.T, 0.0) @ signs
    return task


def symmetric_init(rng, width: int, dim: int):
    """Neurons at scale 1: directions in mirrored pairs, output weights +1 then -1."""
    if width % 2:
        raise ValueError(f"width must be even (symmetric initialization); got {width}.")
    directions = unit_rows(rng, width // 2, dim)
    half = np.ones(width // 2)
    return np.concatenate([directions, directions]), np.concatenate([half, -half])


def step_size(tau: float, width: int, eta: float) -> float:
    """lr(tau) = m eta / max(1, tau^2) (module docstring)."""
    return width * eta / max(1.0, tau**2)


def student_network(width: int, dim: int) -> Network:
    """f(w, x) = (1/m) sum_j c_j relu(a_j . x) as a lazykit description: in the NTK
    parameterization ``Dense(m, W_std=sqrt(d))`` multiplies its weights by 1 and the readout
    ``Dense(1, W_std=1 / sqrt(m))`` by 1 / m, without biases, so the parameters are
    [{"W": a^T}, {}, {"W": c[:, None]}] (:func:`to_params`)."""
    return serial(Dense(width, W_std=math.sqrt(dim)), Relu(), Dense(1, W_std=1 / math.sqrt(width)))


def student(a, c, x):
    """f(w, x) for a batch of students: ``a`` (..., m, d), ``c`` (..., m); shape (..., n)."""
    net = student_network(a.shape[-2], a.shape[-1])
    batch = a.shape[:-2]
    flat = jax.vmap(lambda a, c: net.apply(to_params(a, c), x)[:, 0])(
        a.reshape(-1, *a.shape[-2:]), c.reshape(-1, c.shape[-1]))
    return flat.reshape(*batch, x.shape[0])


def to_params(a, c) -> list:
    """The :func:`student_network` parameters of the neurons a (m, d) and c (m,)."""
    return [{"W": a.T}, {}, {"W": c[:, None]}]


def from_params(params):
    """The neurons (a (..., m, d), c (..., m)) of :func:`student_network` parameters."""
    return jnp.swapaxes(params[0]["W"], -1, -2), params[2]["W"][..., 0]


def train_scales(a0, c0, taus, lrs, data, *, checkpoints, keep_path=False):
    """Gradient descent from (tau a0, tau c0) for every tau at once, with lazykit's trainer.

    The runs are stacked :class:`lazykit.TrainState` objects (one per tau, each with its
    own step) trained under ``jax.vmap`` by :func:`lazykit.train_to_checkpoints`. Returns
    the final (a, c) of shapes (taus, m, d) and (taus, m), the train and test losses at
    step 0 and at every checkpoint (shape (taus, records)), and with ``keep_path`` the
    neurons (a_j, c_j) at every record, shape (taus, records, m, d + 1).
    """
    x, y, x_test, y_test = data
    model = student_network(a0.shape[0], a0.shape[1])
    trainer = make_trainer(model, tangent=False, center=False, ntk_points=0)
    init = jax.vmap(lambda tau, lr: trainer.init(to_params(tau * a0, tau * c0), x,
                                                 learning_rate=lr))
    states = init(taus, lrs)
    run = functools.partial(train_to_checkpoints, trainer, x=x, y=y[:, None],
                            x_test=x_test, y_test=y_test[:, None], batched=True)
    if not keep_path:
        end, record = run(states, checkpoints=checkpoints)
        return from_params(end.params), (record.train_loss, record.test_loss, None)
    end, record, kept = run(states, checkpoints=checkpoints, keep_params=True)
    path = jax.tree_util.tree_map(lambda p0, p: jnp.concatenate([p0[:, None], p], 1),
                                  states.params, kept)
    a, c = from_params(path)
    return from_params(end.params), (record.train_loss, record.test_loss,
                                     jnp.concatenate([a, c[..., None]], -1))


def neuron_travel(a0, c0, a, c) -> float:
    """Mean over neurons of |w_j(T) - w_j(0)| / |w_j(0)|, w_j = (a_j, c_j)."""
    start = np.column_stack([a0, c0])
    moved = np.linalg.norm(np.column_stack([a, c]) - start, axis=1)
    return float(np.mean(moved / np.linalg.norm(start, axis=1)))


def _train_task(cfg, task, rng, taus, steps, record_every, dtype, keep_path=False):
    a0, c0 = symmetric_init(rng, cfg["width"], task["x_train"].shape[1])
    lrs = [step_size(t, cfg["width"], cfg["eta"]) for t in taus]
    checkpoints = list(range(record_every, steps + 1, record_every))
    with precision(dtype):
        data = tuple(jnp.asarray(task[k], dtype) for k in ("x_train", "y_train", "x_test",
                                                            "y_test"))
        (a, c), (train, test, path) = train_scales(
            jnp.asarray(a0, dtype), jnp.asarray(c0, dtype), jnp.asarray(taus, dtype),
            jnp.asarray(lrs, dtype), data, checkpoints=checkpoints, keep_path=keep_path)
    return a0, c0, lrs, np.asarray(a), np.asarray(c), np.asarray(train), np.asarray(test), path


def run(setting: str = "quick", seed: int = 0, progress=None) -> ExperimentResult:
    """Test loss against the initialization scale tau, and 2-D neuron trajectories.

    Examples:
        >>> from lazykit.experiments import lazy_vs_active
        >>> lazy_vs_active.step_size(10.0, width=50, eta=10.0)
        5.0
        >>> result = lazy_vs_active.run("quick", seed=0)  # doctest: +SKIP
        >>> result.findings["spearman_end"] > 0  # doctest: +SKIP
        True
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {tuple(SETTINGS)}; got {setting!r}.")
    cfg = SETTINGS[setting]
    say = progress or (lambda message: None)
    taus = list(cfg["taus"])
    rows = []
    for s in range(cfg["seeds"]):
        rng = np.random.default_rng([seed, s])
        task = teacher_task(rng, cfg["dim"], cfg["teacher_width"], cfg["n_train"], cfg["n_test"])
        a0, c0, lrs, a, c, train, test, _ = _train_task(cfg, task, rng, taus, cfg["steps"],
                                                        cfg["record_every"], DTYPE)
        for i, tau in enumerate(taus):
            rows.append(dict(tau=tau, run=s, lr=lrs[i], train_loss_end=float(train[i, -1]),
                             test_loss_end=float(test[i, -1]), test_loss_best=float(test[i].min()),
                             null_test_loss=float(test[i, 0]),
                             neuron_travel=neuron_travel(tau * a0, tau * c0, a[i], c[i])))
        say(f"lazy_vs_active: run {s + 1}/{cfg['seeds']} done ({len(taus)} scales)")
    summary = mean_and_spread(sorted(rows, key=lambda r: r["tau"]), "tau", SUMMARY_KEYS)
    curves, trajectories, picture_rows = _picture(cfg["picture"], cfg, seed)
    say("lazy_vs_active: 2-D picture done")
    findings = _findings(summary, picture_rows)
    return ExperimentResult("lazy_vs_active", dict(cfg, setting=setting, seed=seed),
                            {"summary": summary, "runs": rows, "learning_curves": curves,
                             "picture": picture_rows, "trajectories": trajectories},
                            "summary", findings, descriptions=DESCRIPTIONS)



def _findings(summary, picture_rows):
    taus = [r["tau"] for r in summary]
    end = [r["test_loss_end"] for r in summary]
    best = [r["test_loss_best"] for r in summary]
    active, lazy = picture_rows
    return {
        "spearman_end": float(stats.spearmanr(taus, end)[0]),
        "spearman_best": float(stats.spearmanr(taus, best)[0]),
        "ratio_end_largest_to_smallest_tau": end[-1] / end[0],
        "ratio_best_largest_to_smallest_tau": best[-1] / best[0],
        "max_train_loss_end": max(r["train_loss_end"] for r in summary),
        "travel_smallest_tau": summary[0]["neuron_travel"],
        "travel_largest_tau": summary[-1]["neuron_travel"],
        "travel_2d_active": active["neuron_travel"],
        "travel_2d_lazy": lazy["neuron_travel"],
    }


def _picture(pic, cfg, seed):
    """The 2-D runs: learning curves, neuron paths |c_j| a_j / m, and their travel.

    f(x) = sum_j sign(c_j) relu((|c_j| / m) a_j . x), so |c_j| a_j / m is neuron j's
    contribution in the teacher's units: the neurons near a teacher neuron a*_k
    sum to a*_k when the student fits the teacher. (d = 2 needs a smaller eta
    than d = 100: the curvature grows like E[x x^T] = I / d.)
    """
    rng = np.random.default_rng([seed, 2])
    task = teacher_task(rng, pic["dim"], cfg["teacher_width"], pic["n_train"], 500)
    picture_cfg = dict(cfg, width=pic["width"], eta=pic["eta"])
    a0, c0, lrs, a, c, train, test, path = _train_task(
        picture_cfg, task, rng, list(pic["taus"]), pic["steps"], pic["record_every"], "float64",
        keep_path=True)
    path = np.asarray(path)  # (taus, records, m, dim + 1)
    steps = np.arange(path.shape[1]) * pic["record_every"]
    shown = np.unique(np.round(np.geomspace(1, len(steps), 80)).astype(int) - 1)
    curves, trajectories, picture_rows = [], [], []
    for i, (tau, regime) in enumerate(zip(pic["taus"], ("active", "lazy"), strict=True)):
        curves += [dict(regime=regime, tau=tau, step=int(t), train_loss=float(tr),
                        test_loss=float(te))
                   for t, tr, te in zip(steps, train[i], test[i], strict=True)]
        final_sign = np.sign(path[i, -1, :, -1])
        for j in range(pic["width"]):
            for k in shown:
                point = np.abs(path[i, k, j, -1]) * path[i, k, j, :-1] / pic["width"]
                trajectories.append(dict(regime=regime, neuron=j, step=int(steps[k]),
                                         sign=float(final_sign[j]), x=float(point[0]),
                                         y=float(point[1])))
        picture_rows.append(dict(regime=regime, tau=tau, lr=lrs[i],
                                 neuron_travel=neuron_travel(tau * a0, tau * c0, a[i], c[i]),
                                 train_loss_end=float(train[i, -1]),
                                 test_loss_end=float(test[i, -1])))
    for k, (neuron, sign) in enumerate(zip(task["teacher"], task["teacher_signs"], strict=True)):
        trajectories.append(dict(regime="teacher", neuron=k, step=0, sign=float(sign),
                                 x=float(neuron[0]), y=float(neuron[1])))
    return curves, trajectories, picture_rows


def plot(result: ExperimentResult) -> dict:
    """Two figures: test loss against tau, and the 2-D neuron trajectories."""
    import matplotlib.pyplot as plt

    figures = {}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    summary, runs = result.tables["summary"], result.tables["runs"]
    taus = np.array([r["tau"] for r in summary])
    for key, style, label in (("test_loss_end", "-", "end of training"),
                              ("test_loss_best", ":", "best during training")):
        mean = np.array([r[key] for r in summary])
        std = np.array([r[key + "_std"] for r in summary])
        line, = ax.plot(taus, mean, style, color="black" if style == "-" else "C3", lw=2.2,
                        marker="o", ms=4, label=f"{label} (mean of {result.settings['seeds']})")
        ax.fill_between(taus, np.maximum(mean - std, mean * 0.05), mean + std,
                        color=line.get_color(), alpha=0.15)
        ax.scatter([r["tau"] for r in runs], [r[key] for r in runs], s=8,
                   color=line.get_color(), alpha=0.4)
    null = np.mean([r["null_test_loss"] for r in runs])
    ax.axhline(null, color="0.5", ls="--", lw=1, label="predicting 0 (initial loss)")
    cfg = result.settings
    ax.set(xscale="log", yscale="log", xlabel=r"initialization scale $\tau$",
           ylabel="test loss  (mean squared error / 2)",
           title=f"Teacher-student ReLU, d={cfg['dim']}, n={cfg['n_train']}, width "
                 f"{cfg['width']}: lazy (large $\\tau$) generalizes worse")
    ax.title.set_fontsize(9.5)
    ax.legend(fontsize=8)
    figures["test_loss_vs_tau"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    paths = result.tables["trajectories"]
    teacher = [p for p in paths if p["regime"] == "teacher"]
    for ax, info in zip(axes, result.tables["picture"], strict=True):
        regime = info["regime"]
        mine = [p for p in paths if p["regime"] == regime]
        for j in sorted({p["neuron"] for p in mine}):
            pts = [p for p in mine if p["neuron"] == j]
            color = "C3" if pts[0]["sign"] > 0 else "C0"
            ax.plot([p["x"] for p in pts], [p["y"] for p in pts], color=color, lw=1)
            ax.scatter(pts[0]["x"], pts[0]["y"], s=12, facecolor="none", edgecolor=color)
            ax.scatter(pts[-1]["x"], pts[-1]["y"], s=25, color=color)
        radius = max(1.0, max(np.hypot(p["x"], p["y"]) for p in mine))
        for t in teacher:
            ax.annotate("", xy=(t["x"], t["y"]), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="-|>", lw=2,
                                        color="C3" if t["sign"] > 0 else "C0"))
        circle = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(circle), np.sin(circle), ":", color="0.4", lw=1)
        ax.set(xlim=(-1.1 * radius, 1.1 * radius), ylim=(-1.1 * radius, 1.1 * radius),
               aspect="equal", xlabel=r"first coordinate of $|c_j|\,a_j\,/\,m$",
               ylabel=r"second coordinate of $|c_j|\,a_j\,/\,m$",
               title=f"{regime}: $\\tau$ = {info['tau']:g}, mean relative travel "
                     f"{info['neuron_travel']:.2g}")
    handles = [plt.Line2D([], [], color="C3", label="neuron with c > 0 (path, end: dot)"),
               plt.Line2D([], [], color="C0", label="neuron with c < 0"),
               plt.Line2D([], [], color="k", marker=r"$\rightarrow$", ls="none", ms=12,
                          label="teacher neurons (unit length; color: sign)"),
               plt.Line2D([], [], color="0.4", ls=":", label="unit circle")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"Neuron trajectories in d=2 ({result.settings['picture']['n_train']} training "
                 f"points, width {result.settings['picture']['width']}): active vs lazy")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    figures["neurons"] = fig
    return figures
