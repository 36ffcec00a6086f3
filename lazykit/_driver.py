"""The host side of a training run: compiled functions of the pure trainer, the schedule of
records, blocks of steps on the device (a ``lax.scan``) or from the host (one jitted step per
call), progress and divergence checks between blocks (used by lazykit/training.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._progress import Progress
from lazykit.empirical import empirical_ntk


class Compiled(NamedTuple):
    init: Callable
    run: Callable
    step: Callable
    measured_step: Callable
    measure: Callable
    linearize: Callable


# Programs stepped from the host run convolutions in library calls; skipping LLVM's most
# expensive passes cut their compilation by a quarter to a third without slowing them down
# (CNN steps and per-example Jacobians, jax 0.10, two CPU cores).
HOST_COMPILER_OPTIONS = {"xla_llvm_disable_expensive_passes": True}


@functools.lru_cache(maxsize=64)
def compiled(trainer, batched, per_run_rows, host=False) -> Compiled:
    """Jitted functions of a trainer, vmapped over stacked runs if ``batched`` (``per_run_rows``:
    every run has its own SGD batches); ``host``: compiled for :func:`host_block`."""
    jit = functools.partial(jax.jit, compiler_options=HOST_COMPILER_OPTIONS if host else None)
    if not batched:
        return Compiled(*(jit(fn) for fn in (
            trainer.init, trainer.run, trainer.step, trainer.measured_step, trainer.measure,
            trainer.linearize)))
    rows = 0 if per_run_rows else None
    return Compiled(
        jit(jax.vmap(lambda p, x, a, lr: trainer.init(p, x, alpha=a, learning_rate=lr),
                     in_axes=(0, None, 0, None))),
        jit(jax.vmap(trainer.run, in_axes=(0, None, None, rows, None, None, None, None))),
        jit(jax.vmap(trainer.step, in_axes=(0, None, None, rows))),
        jit(jax.vmap(trainer.measured_step, in_axes=(0, None, None, rows, None, None, None))),
        jit(jax.vmap(trainer.measure, in_axes=(0, None, None, None, None, None))),
        jit(jax.vmap(trainer.linearize, in_axes=(0, None))))


def initial_states(trainer, params0, x, alphas, lr, batched, host):
    init = compiled(trainer, batched, False, host).init
    if not batched:
        return init(params0[0], x, alpha=alphas[0], learning_rate=lr)
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *params0)
    return init(stacked, x, jnp.asarray(alphas, x.dtype), lr)


# Host round trips per run: each updates the progress bar and checks for divergence.
BLOCKS = 10


class Schedule(NamedTuple):
    """Chunk r measures the state at step ``starts[r]`` (the NTK change if ``ntk[r]``), then
    takes ``lengths[r]`` steps; -1 pads the last block (nothing done)."""

    lengths: np.ndarray
    starts: np.ndarray
    ntk: np.ndarray
    per_block: int


def schedule(steps, record_every, ntk_every) -> Schedule:
    lengths = [record_every] * (steps // record_every)
    lengths += ([steps % record_every] if steps % record_every else []) + [0]
    ntk = np.zeros(len(lengths), bool)
    ntk[::ntk_every or len(lengths)] = True
    ntk[-1] = True
    per_block = -(-len(lengths) // min(len(lengths), BLOCKS))
    pad = -len(lengths) % per_block
    lengths = np.asarray(lengths + [-1] * pad, np.int32)
    starts = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))[:-1]])
    return Schedule(lengths, starts, np.concatenate([ntk, np.zeros(pad, bool)]), per_block)


def drive(trainer, states, data, rows, *, steps, record_every, ntk_every, alphas, divergence,
          on_host, host_ntk, verbose, label, batched):
    """Run the schedule in blocks of records; returns the final states, the measurements
    (runs, records) as NumPy arrays, and the divergence message of every diverged run (by
    index). ``on_host``: one jitted step per call instead of a ``lax.scan`` (see
    :func:`steps_on_host`)."""
    plan = schedule(steps, record_every, ntk_every)
    offsets = np.minimum(plan.starts[:, None] + np.arange(record_every), steps - 1)
    chunks = rows[..., offsets, :]  # (runs,) records, record_every, batch
    per_run = batched and rows.shape[-1] > 0
    if batched and not per_run:
        chunks = chunks[0]
    fns = compiled(trainer, batched, per_run, on_host)
    blocks, diverged, first = [], {}, None
    with Progress(steps, label, verbose) as bar:
        for b in range(0, len(plan.lengths), plan.per_block):
            part = slice(b, b + plan.per_block)
            args = (chunks[..., part, :, :], plan.lengths[part], plan.ntk[part])
            if on_host:
                states, (objectives, measured) = host_block(fns, states, data, *args,
                                                             plan.starts[part], host_ntk)
            else:
                states, (objectives, measured) = fns.run(states, *data[:2], args[0],
                                                         *data[2:], *args[1:])
            objectives = np.asarray(objectives, np.float64)
            measured = jax.tree_util.tree_map(np.asarray, measured)
            if not batched:
                objectives, measured = objectives[None], jax.tree_util.tree_map(
                    lambda v: v[None], measured)
            first = measured if first is None else first
            blocks.append(measured)
            for i, alpha in enumerate(alphas):
                if i not in diverged:
                    message = divergence(objectives[i], measured, i, first, plan.lengths[part],
                                         plan.starts[part], alpha)
                    if message:
                        diverged[i] = message
            bar.update(int(np.maximum(plan.lengths[part], 0).sum()),
                       postfix=postfix(measured, plan.lengths[part], len(alphas) - len(diverged)))
            if len(diverged) == len(alphas):
                break
    done = sum(len(m.step[0]) for m in blocks)
    kept = np.flatnonzero(plan.lengths[:done] >= 0)
    measured = jax.tree_util.tree_map(lambda *v: np.concatenate(v, axis=1)[:, kept], *blocks)
    return states, measured, diverged


class HostNTK(NamedTuple):
    """The jitted empirical NTK that the driver evaluates at the top level on the host path,
    the points it is measured on, and the NTK at w_0."""

    fn: Callable
    x: jax.Array
    ntk0: jax.Array | None = None


@functools.lru_cache(maxsize=64)
def ntk_function(key, batched):
    def ntk(params, x):
        return empirical_ntk(key, params, x)

    return jax.jit(jax.vmap(ntk, in_axes=(0, None)) if batched else ntk,
                   compiler_options=HOST_COMPILER_OPTIONS)


def host_block(fns, states, data, chunks, lengths, ntk, starts, host_ntk):
    """What ``run`` computes for a block, one jitted call per step: ``measured_step`` for
    every full-batch step (one compiled program; the measurement between records is
    dropped), ``step`` for SGD steps between records; the NTK by ``host_ntk``."""
    x, y, x_test, y_test = data
    full = chunks.shape[-1] == 0
    objectives, records, kernels = [], [], {}
    for r, (length, with_ntk) in enumerate(zip(lengths, ntk, strict=True)):
        if length < 0:
            objectives.append(())
            records.append(None)
            continue
        if with_ntk and host_ntk is not None and starts[r] > 0:
            kernels[r] = host_ntk.fn(states.params, host_ntk.x)
        batch = None if full else chunks[..., r, 0, :]
        new, value, record = fns.measured_step(states, x, y, batch, x_test, y_test, False)
        values = [value] if length else []
        states = new if length else states
        for i in range(1, length):
            if full:
                states, value, _ = fns.measured_step(states, x, y, None, x_test, y_test, False)
            else:
                states, value = fns.step(states, x, y, chunks[..., r, i, :])
            values.append(value)
        objectives.append(values)
        records.append(record)
    objectives, records, kernels = jax.device_get((objectives, records, kernels))
    like = next(r for r in records if r is not None)
    table = np.full((len(lengths), *np.shape(like.train_loss), chunks.shape[-2], 2), np.nan)
    for r, values in enumerate(objectives):
        for i, value in enumerate(values):
            table[r, ..., i, :] = value
    blank = jax.tree_util.tree_map(
        lambda v: np.full_like(v, -1 if v.dtype.kind == "i" else np.nan), like)
    stacked = jax.tree_util.tree_map(lambda *v: np.stack(v),
                                     *[blank if r is None else r for r in records])
    if host_ntk is not None:
        stacked.ntk_change[(ntk & (starts == 0))[:len(records)]] = 0.0
        ntk0 = np.asarray(host_ntk.ntk0, np.float64)
        for r, kernel in kernels.items():
            difference = np.asarray(kernel, np.float64) - ntk0
            stacked.ntk_change[r] = (np.linalg.norm(difference, axis=(-2, -1))
                                     / np.linalg.norm(ntk0, axis=(-2, -1)))
    if table.ndim == 4:  # batched: (records, runs, ...) -> (runs, records, ...)
        table = np.moveaxis(table, 1, 0)
        stacked = jax.tree_util.tree_map(lambda v: np.moveaxis(v, 1, 0), stacked)
    return states, (table, stacked)


def steps_on_host(f, params, x) -> bool:
    """Whether to step from the host, one jitted step per call: on CPU for models with
    convolutions. XLA:CPU canonicalizes convolution layouts only in the entry computation
    (``ConvCanonicalization``), so the gradient convolutions inside a ``lax.scan`` body fall
    back to an unoptimized loop: a CNN step ran 3-4 times slower in a scan than called
    directly (float32 and float64, jax 0.10)."""
    if jax.default_backend() != "cpu":
        return False
    return "conv_general_dilated" in str(jax.make_jaxpr(f)(params, x[:1]))


def postfix(measured, lengths, alive):
    last = np.flatnonzero(lengths >= 0)[-1]
    if measured.step.shape[0] > 1:
        return f"{alive} runs"
    return f"loss {measured.train_loss[0, last]:.3g}"


def batch_indices(n, steps, batch_size, seed):
    """(steps, batch) row indices; an empty second axis for full-batch gradient descent."""
    if batch_size is None:
        return np.zeros((steps, 0), np.int32)
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch_size // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return order[:steps * batch_size].reshape(steps, batch_size).astype(np.int32)
