"""Global convergence of wide two-layer nets in the mean-field regime (Chizat and Bach 2018).

Teacher-student on Gaussian inputs x ~ N(0, I_d): the teacher is
y(x) = sum_k v_k sigma(a*_k . x) with m0 neurons of norm ``teacher_norm`` and
output weights v_k = +-1; the student is

    f(w, x) = (1/m) sum_j c_j sigma(a_j . x)          (alpha = 1, no bias),

for sigma = ReLU and a sigmoid (lazykit's ``sigmoid_like``, 1/2 + erf(x / 2.402)/2,
an erf fit of the logistic sigmoid, which has a closed-form Gaussian dual). Because
the inputs are Gaussian, the population loss

    L(w) = E (f(x) - y(x))^2 / 2
         = (c^T K_ss c / m^2 - 2 c^T K_st v / m + v^T K_tt v) / 2,

with K[i, j] = E sigma(a_i . x) sigma(a_j . x) (the activation's Gaussian dual at
covariance (a_i . a_j, |a_i|^2, |a_j|^2), the same closed forms as lazykit's
NNGP), is exact: no sampling error, and gradient descent on it is the particle
discretization of the Wasserstein gradient flow that the paper studies.

Trained net: neurons start as the paper's theorems ask, spread over every
direction: for ReLU (2-homogeneous) (a_j, c_j) uniform on the unit sphere of
R^(d+1); for the sigmoid (homogeneous in c only) a_j ~ N(0, I_d) and c_j = 0
(with a_j on a sphere and c_j = 0, some sigmoid runs stalled on plateaus). They
take ``steps`` gradient steps of size lr = m * eta (the mean-field scaling: each
neuron moves at a width-independent speed). Random features of the same width: the a_j stay at their
initialization and c takes its optimal value, c / m = K_ss^+ K_st v, with
population loss (v^T K_tt v - v^T K_ts K_ss^+ K_st v) / 2.

Expected (the paper's Fig. 3): once m exceeds m0 by a margin, the trained net's
loss at convergence drops to the optimization floor (the loss after the step
budget, near 0: the problem is realizable), while random features stay far
above it, their error decreasing only slowly with m.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from lazykit import make_trainer, train_to_checkpoints
from lazykit._dtypes import precision
from lazykit.experiments.results import ExperimentResult
from lazykit.population import (
    gaussian_feature_kernel,
    pack_teacher,
    population_loss,  # noqa: F401 (part of this module's interface, used by its tests)
    population_model,
    random_features_loss,
    take_loss,
)


def relu_kernel(a1, a2=None):
    """E relu(a1_i . x) relu(a2_j . x) for x ~ N(0, I): the arc-cosine kernel
    (|a1_i| |a2_j| sin theta + (pi - theta) a1_i . a2_j) / (2 pi), theta the angle, from
    lazykit (:func:`lazykit.population.gaussian_feature_kernel`: differentiable at
    theta = 0 too)."""
    return gaussian_feature_kernel("relu", a1, a2)


def sigmoid_kernel(a1, a2=None):
    """E sigma(a1_i . x) sigma(a2_j . x) for lazykit's ``sigmoid_like``, x ~ N(0, I)."""
    return gaussian_feature_kernel("sigmoid_like", a1, a2)


def dual_kernel(activation, a1, a2):
    """E sigma(a1_i . x) sigma(a2_j . x) for x ~ N(0, I) from the activation's Gaussian dual."""
    return gaussian_feature_kernel(activation, a1, a2)


def sphere_init(rng, width: int, dim: int):
    """Neurons (a_j, c_j) uniform on the unit sphere of R^(d+1): covers every direction,
    the condition of the paper's theorem for 2-homogeneous units (ReLU)."""
    start = rng.standard_normal((width, dim + 1))
    start /= np.linalg.norm(start, axis=1, keepdims=True)
    return start[:, :-1], start[:, -1]


def gaussian_init(rng, width: int, dim: int):
    """a_j ~ N(0, I_d) and c_j = 0: full support in a, the theorem's condition for
    units that are homogeneous in c only (sigmoid)."""
    return rng.standard_normal((width, dim)), np.zeros(width)


# eta, tried on two teachers: ReLU 0.2 (at 1 the loss stalls near 2e-2, at 5 it diverges);
# sigmoid 1 (at 0.2 it is 5-10x slower, at 3 the loss oscillates at width 8).
ACTIVATIONS = {"relu": dict(kernel=relu_kernel, teacher_norm=1.0, eta=0.2, init=sphere_init),
               # Norm 3: the teacher's sigmoids work in their nonlinear range (with unit
               # norms they are nearly linear on Gaussian inputs, an easy target for any model).
               "sigmoid": dict(kernel=sigmoid_kernel, teacher_norm=3.0, eta=1.0,
                               init=gaussian_init)}

# Widths in one group are padded to the group's largest and trained in one batch.
SETTINGS = {
    "quick": dict(dim=10, teacher_width=5, width_groups=((4, 8, 16, 64),), seeds=2,
                  steps=3000, record_every=100),
    "full": dict(dim=10, teacher_width=5,
                 width_groups=((4, 8, 16, 32), (64,), (128,), (256,)), seeds=3,
                 steps=10000, record_every=200),
}


# A run whose loss still fell by more than 5% over the last 10% of its steps has not converged.
STILL_FALLING = 1.05

_RELATIVE = "population loss / loss of f = 0"
DESCRIPTIONS = {
    "activation": "activation sigma of the teacher and the student",
    "width": "student width m (the teacher has m0 neurons)",
    "trained_relative": f"trained net after the step budget: {_RELATIVE}, geometric mean over "
                        "teachers",
    "trained_relative_max": "the same, worst teacher",
    "random_features_relative": f"random features of width m with the optimal output layer: "
                                f"{_RELATIVE}, geometric mean over teachers",
    "random_features_relative_max": "the same, worst teacher",
    "late_decrease_min": "the trained net's loss 10% of the steps before the end / its final "
                         "loss, smallest over teachers: 1 = converged or stalled, above "
                         f"{STILL_FALLING} = still falling (not converged)",
}
for _act in ("relu", "sigmoid"):
    DESCRIPTIONS.update({
        f"{_act}_trained_widest": f"{_act}: trained_relative at the widest m",
        f"{_act}_random_features_widest": f"{_act}: random_features_relative at the widest m",
        f"{_act}_trained_worst_wide": f"{_act}: largest trained_relative_max over m >= 4 m0",
        f"{_act}_random_features_best": f"{_act}: smallest random_features_relative over m",
        f"{_act}_gap_widest": f"{_act}: random_features_relative / trained_relative at the "
                              "widest m",
        f"{_act}_trained_narrowest": f"{_act}: trained_relative at the narrowest m",
        f"{_act}_late_decrease_narrowest": f"{_act}: late_decrease_min at the narrowest m "
                                           "(about 1: stalled)",
        f"{_act}_late_decrease_wide_min": f"{_act}: smallest late_decrease_min over m >= 4 m0 "
                                          f"(above {STILL_FALLING}: not converged)",
    })


random_feature_loss = random_features_loss


def train_mean_field(kernel, a, c, live, teacher, teacher_weights, lr, *, steps,
                     record_every):
    """Gradient descent on the population loss for a batch of runs (leading axis of
    every argument, ``lr`` included), with lazykit's trainer: the student of
    :func:`lazykit.population.population_model` in stacked states, trained by
    :func:`lazykit.train_to_checkpoints`. ``live`` (0/1 per neuron) pads students of
    different widths to one size (one compilation).

    Returns the losses every ``record_every`` steps, shape (runs, steps // record_every),
    the random-feature losses at the initial a and the losses of f = 0, shape (runs,).
    """
    trainer = make_trainer(population_model(kernel), take_loss, tangent=False, center=False,
                           ntk_points=0)
    packed = jax.vmap(pack_teacher)(teacher, teacher_weights, live)
    targets = jnp.zeros((packed.shape[0], 1, 1), packed.dtype)
    states = jax.vmap(lambda a, c, x, lr: trainer.init({"a": a, "c": c}, x, learning_rate=lr))(
        a, c, packed, lr)
    checkpoints = list(range(record_every, steps + 1, record_every))
    _, record = train_to_checkpoints(trainer, states, packed, targets, checkpoints,
                                     batched=True, data_batched=True)
    random_features, null = _references(kernel, a, teacher, teacher_weights, live)
    return record.train_loss[:, 1:], random_features, null


@functools.partial(jax.jit, static_argnames="kernel")
def _references(kernel, a, teacher, teacher_weights, live):
    """Random-feature losses at the neurons ``a`` and losses of f = 0, for a batch of runs."""
    def one(a, teacher, teacher_weights, live):
        null = 0.5 * teacher_weights @ kernel(teacher, teacher) @ teacher_weights
        return random_features_loss(kernel, a, teacher, teacher_weights, live), null

    return jax.vmap(one)(a, teacher, teacher_weights, live)


def teacher_network(rng, dim: int, width: int, norm: float):
    """Teacher neurons of norm ``norm`` (rows) and output weights +-1."""
    neurons = rng.standard_normal((width, dim))
    neurons *= norm / np.linalg.norm(neurons, axis=1, keepdims=True)
    return neurons, rng.choice([-1.0, 1.0], size=width)


def run(setting: str = "quick", seed: int = 0, progress=None) -> ExperimentResult:
    """Population loss against width: mean-field gradient descent vs random features.

    Examples:
        >>> import jax.numpy as jnp
        >>> from lazykit.experiments import mean_field_convergence as mf
        >>> teacher = jnp.eye(2)  # two neurons; a student of the same neurons, c = m v
        >>> float(mf.population_loss(mf.relu_kernel, teacher, 2 * jnp.ones(2), teacher,
        ...                          jnp.ones(2)))
        0.0
        >>> result = mf.run("quick", seed=0)  # doctest: +SKIP
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {tuple(SETTINGS)}; got {setting!r}.")
    cfg = SETTINGS[setting]
    say = progress or (lambda message: None)
    rows, curves = [], []
    for act_name, spec in ACTIVATIONS.items():
        teachers = [teacher_network(np.random.default_rng([seed, s]), cfg["dim"],
                                    cfg["teacher_width"], spec["teacher_norm"])
                    for s in range(cfg["seeds"])]
        for widths in cfg["width_groups"]:
            runs, results = _train_group(cfg, spec, teachers, widths, seed)
            for (width, s), (row, curve) in zip(runs, results, strict=True):
                rows.append(dict(activation=act_name, run=s, width=width, **row))
                if s == 0:
                    curves += [dict(activation=act_name, width=width, step=step, loss=value)
                               for step, value in curve]
            say(f"mean_field_convergence: {act_name}, widths {widths} done")
    summary = _summarize(rows)
    return ExperimentResult("mean_field_convergence", dict(cfg, setting=setting, seed=seed),
                            {"summary": summary, "runs": rows, "learning_curves": curves},
                            "summary", _findings(summary, cfg),
                            convergence_notes(summary, cfg["steps"]), DESCRIPTIONS)


def _train_group(cfg, spec, teachers, widths, seed):
    """Runs of every teacher at every width of ``widths``, padded to the largest and
    trained together (one compilation); one (row, curve) per run, widths outermost."""
    size, dim = max(widths), cfg["dim"]
    runs = [(width, s) for width in widths for s in range(len(teachers))]
    a, c, live = np.zeros((len(runs), size, dim)), np.zeros((len(runs), size)), np.zeros(
        (len(runs), size))
    for r, (width, s) in enumerate(runs):
        a[r], start_c = spec["init"](np.random.default_rng([seed, s, width]), size, dim)
        c[r, :width], live[r, :width] = start_c[:width], 1.0
    with precision("float64"):
        losses, random_features, nulls = train_mean_field(
            spec["kernel"], jnp.asarray(a), jnp.asarray(c), jnp.asarray(live),
            jnp.asarray(np.stack([teachers[s][0] for _, s in runs])),
            jnp.asarray(np.stack([teachers[s][1] for _, s in runs])),
            jnp.asarray([w * spec["eta"] for w, _ in runs]), steps=cfg["steps"],
            record_every=cfg["record_every"])
    out = []
    for run_losses, rf, null in zip(np.asarray(losses), np.asarray(random_features),
                                    np.asarray(nulls), strict=True):
        if not np.all(np.isfinite(run_losses)):
            raise FloatingPointError(f"mean-field training diverged; lower eta (got "
                                     f"{spec['eta']}).")
        final, rf, null = float(run_losses[-1]), float(rf), float(null)
        row = dict(trained_loss=final, random_features_loss=rf, null_loss=null,
                   trained_relative=final / null, random_features_relative=rf / null,
                   late_decrease=float(run_losses[-len(run_losses) // 10 - 1] / final))
        steps = cfg["record_every"] * np.arange(1, len(run_losses) + 1)
        out.append((row, [(0, null), *zip(steps.tolist(), run_losses.tolist(), strict=True)]))
    return runs, out


def _summarize(rows):
    summary = []
    for act_name in ACTIVATIONS:
        for width in sorted({r["width"] for r in rows}):
            group = [r for r in rows if r["activation"] == act_name and r["width"] == width]
            entry = dict(activation=act_name, width=width)
            for key in ("trained_relative", "random_features_relative"):
                values = np.array([r[key] for r in group])
                entry[key] = float(np.exp(np.mean(np.log(np.maximum(values, 1e-300)))))
                entry[key + "_max"] = float(values.max())
            entry["late_decrease_min"] = min(r["late_decrease"] for r in group)
            summary.append(entry)
    return summary


def still_falling(summary, activation: str) -> list[int]:
    """Widths at which the trained net had not converged: its loss still fell by more than
    5% over the last 10% of the steps for every teacher (``late_decrease_min`` above
    ``STILL_FALLING``).

    Examples:
        >>> from lazykit.experiments.mean_field_convergence import still_falling
        >>> rows = [dict(activation="relu", width=4, late_decrease_min=1.0),
        ...         dict(activation="relu", width=8, late_decrease_min=1.4)]
        >>> still_falling(rows, "relu")
        [8]
    """
    return [r["width"] for r in summary
            if r["activation"] == activation and r["late_decrease_min"] > STILL_FALLING]


def convergence_notes(summary, steps: int) -> list[str]:
    """One note per activation whose trained nets had not converged after ``steps`` steps,
    saying whether their loss rises with the width because of it."""
    notes = []
    for act_name in ACTIVATIONS:
        widths = still_falling(summary, act_name)
        if not widths:
            continue
        rows = [r for r in summary if r["activation"] == act_name and r["width"] in widths]
        losses = [r["trained_relative"] for r in rows]
        rises = any(b > a for a, b in itertools.pairwise(losses))
        least = min(r["late_decrease_min"] for r in rows)
        notes.append(
            f"{act_name}: not converged at m = {', '.join(map(str, widths))}: the trained "
            f"loss was still falling after {steps} steps (by a factor of at least {least:.3g} "
            "over the last 10% of the steps), so trained_relative there is the step "
            "budget's, not the limit's"
            + ("; its rise with the width only says that wider nets converge more slowly."
               if rises else "."))
    return notes


def _findings(summary, cfg):
    findings = {}
    for act_name in ACTIVATIONS:
        rows = [r for r in summary if r["activation"] == act_name]
        wide = [r for r in rows if r["width"] >= 4 * cfg["teacher_width"]]
        findings[f"{act_name}_trained_widest"] = rows[-1]["trained_relative"]
        findings[f"{act_name}_random_features_widest"] = rows[-1]["random_features_relative"]
        findings[f"{act_name}_trained_worst_wide"] = max(r["trained_relative_max"] for r in wide)
        findings[f"{act_name}_random_features_best"] = min(
            r["random_features_relative"] for r in rows)
        findings[f"{act_name}_gap_widest"] = (rows[-1]["random_features_relative"]
                                              / rows[-1]["trained_relative"])
        findings[f"{act_name}_trained_narrowest"] = rows[0]["trained_relative"]
        # Loss ratio over the last 10% of the steps: still falling (> 1) or stalled (1).
        findings[f"{act_name}_late_decrease_narrowest"] = rows[0]["late_decrease_min"]
        findings[f"{act_name}_late_decrease_wide_min"] = min(r["late_decrease_min"]
                                                             for r in wide)
    return findings


def plot(result: ExperimentResult) -> dict:
    """Two figures: loss at the end of training against width, and the learning curves."""
    import matplotlib.pyplot as plt

    figures = {}
    cfg = result.settings
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for ax, act_name in zip(axes, ACTIVATIONS, strict=True):
        summary = [r for r in result.tables["summary"] if r["activation"] == act_name]
        runs = [r for r in result.tables["runs"] if r["activation"] == act_name]
        widths = [r["width"] for r in summary]
        for key, color, label in (
                ("trained_relative", "C3", "trained net (mean-field gradient descent)"),
                ("random_features_relative", "C0", "random features, optimal output layer")):
            ax.plot(widths, [r[key] for r in summary], "o-", color=color, lw=2, label=label)
            ax.scatter([r["width"] for r in runs], [r[key] for r in runs], s=10, color=color,
                       alpha=0.4)
        ax.axvline(cfg["teacher_width"], color="0.5", ls="--", lw=1,
                   label=f"teacher width m0 = {cfg['teacher_width']}")
        title = f"{act_name} (teacher norm {ACTIVATIONS[act_name]['teacher_norm']:g})"
        falling = still_falling(summary, act_name)
        if falling:
            title += f"\nnot converged at m = {', '.join(map(str, falling))}"
        ax.set(xscale="log", yscale="log", xlabel="student width m")
        ax.set_title(title, color="C3" if falling else "black", fontsize="medium")
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    axes[0].set_ylabel("population loss / loss of f = 0")
    fig.suptitle(f"Population loss after {cfg['steps']} steps (d = {cfg['dim']}, Gaussian "
                 f"inputs; lines: geometric mean of {cfg['seeds']} teachers, dots: runs)")
    fig.tight_layout()
    if any(still_falling(result.tables["summary"], a) for a in ACTIVATIONS):
        fig.text(0.5, -0.02, "Not converged: where marked, the trained nets' loss was still "
                 f"falling after {cfg['steps']} steps (by over {STILL_FALLING - 1:.0%} in the "
                 "last 10% of them). Their loss is the step budget's floor, not the limit;\n"
                 "a trained loss that rises with the width shows that wider nets converge "
                 "more slowly (see the learning curves), not how low they end.",
                 ha="center", va="top", fontsize=9, color="C3")
    figures["loss_vs_width"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    curves = result.tables["learning_curves"]
    for ax, act_name in zip(axes, ACTIVATIONS, strict=True):
        mine = [r for r in curves if r["activation"] == act_name]
        widths = sorted({r["width"] for r in mine})
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
        for width, color in zip(widths, colors, strict=True):
            pts = [r for r in mine if r["width"] == width and r["step"] > 0]
            null = next(r["loss"] for r in mine if r["width"] == width and r["step"] == 0)
            ax.plot([p["step"] for p in pts], [p["loss"] / null for p in pts], color=color,
                    label=f"m = {width}")
        ax.set(xscale="log", yscale="log", xlabel="gradient-descent steps",
               title=f"{act_name}: training curves (first teacher)")
        ax.legend(fontsize=8, ncol=2)
    axes[0].set_ylabel("population loss / loss of f = 0")
    fig.tight_layout()
    figures["learning_curves"] = fig
    return figures
