"""Run a trainer's pure functions to chosen checkpoints, for one run or a batch of runs.

:func:`lazykit.train` records at evenly spaced steps and :func:`lazykit.lazy_sweep` varies
alpha and the seed. :func:`train_to_checkpoints` is the small driver in between for code
that holds its own :class:`lazykit.TrainState` objects (e.g. runs at different
initialization scales, widths or learning rates): it measures the state at step 0 and at
every checkpoint (any increasing steps, log-spaced say) in one jitted ``lax.scan``
(:attr:`lazykit.Trainer.run`), under ``jax.vmap`` for a stack of states, optionally with
data of their own per run.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision
from lazykit._measure import float_dtype
from lazykit._validation import positive_int

__all__ = ["checkpoint_lengths", "train_to_checkpoints"]


def checkpoint_lengths(checkpoints) -> np.ndarray:
    """Chunk lengths that measure at step 0 and after each checkpoint: the steps between
    consecutive checkpoints, then 0 (a last chunk that only measures).

    Examples:
        >>> from lazykit.schedule import checkpoint_lengths
        >>> checkpoint_lengths([1, 10, 100]).tolist()
        [1, 9, 90, 0]
    """
    steps = np.asarray(checkpoints)
    if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(f"checkpoints must be a non-empty 1-D sequence of integers; got "
                         f"{checkpoints!r}.")
    lengths = np.diff(np.concatenate([[0], steps]))
    if np.any(lengths <= 0):
        raise ValueError(f"checkpoints must be positive and strictly increasing; got "
                         f"{steps.tolist()}.")
    return np.concatenate([lengths, [0]]).astype(np.int32)


def train_to_checkpoints(trainer, state, x, y, checkpoints, *, x_test=None, y_test=None,
                         batched: bool = False, data_batched: bool = False, ntk: bool = False,
                         keep_params: bool = False):
    """Train from ``state`` to the last checkpoint on all training rows (full batch, with the
    trainer's optimizer: gradient descent by default), measuring at step 0 and after every
    checkpoint.

    Args:
        trainer: a :class:`lazykit.Trainer` (from :func:`lazykit.make_trainer`).
        state: its :class:`lazykit.TrainState` (from ``trainer.init``), or with ``batched``
            a stack of states along a leading axis (e.g. ``jax.vmap(trainer.init)``).
        x, y: the training inputs given to ``init`` and the targets (n, o).
        checkpoints: increasing positive step counts, e.g. ``[10, 100, 1000]``.
        x_test, y_test: optional test data, measured at every record.
        batched: ``state`` is a stack of runs, trained together under ``jax.vmap``.
        data_batched: with ``batched``, ``x``, ``y`` (and the test data) also carry the
            runs' axis: every run has its own data.
        ntk: measure the empirical NTK change (the trainer's ``ntk_points`` > 0).
        keep_params: also return the parameters at every checkpoint (stacked along a new
            axis after the runs' one), e.g. to follow the neurons of a ``Network``.

    Returns:
        (final state, :class:`lazykit.Measurement`): the measurements stacked over the
        ``len(checkpoints) + 1`` records (step 0 first), after the runs' axis if batched.
        The step counts are ``measurement.step``. With ``keep_params``, a third item: the
        parameters after each checkpoint. The runs compute in the dtype of the state's
        parameters (float64 without enabling x64 globally).

    Raises:
        ValueError: on checkpoints that are not positive, increasing integers, or
            ``data_batched`` without ``batched``.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.schedule import train_to_checkpoints
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(20, 2)), rng.normal(size=(20, 1))
        >>> model = lazykit.TwoLayer(64, alpha=10.0)
        >>> trainer = lazykit.make_trainer(model, tangent=False, ntk_points=0)
        >>> state = trainer.init(model.init(0, input_dim=2), x, learning_rate=64.0)
        >>> state, record = train_to_checkpoints(trainer, state, x, y, [1, 10, 100])
        >>> record.step.tolist()
        [0, 1, 10, 100]
        >>> bool(record.train_loss[-1] < record.train_loss[0])
        True
    """
    lengths = checkpoint_lengths(checkpoints)
    positive_int(int(lengths.max()), "the longest stretch between checkpoints")
    if data_batched and not batched:
        raise ValueError("data_batched=True needs batched=True (a stack of states).")
    batches = jnp.zeros((len(lengths), int(lengths.max()), 0), jnp.int32)
    run = _compiled_run(trainer, bool(batched), bool(data_batched), bool(keep_params))
    ntk = np.full(len(lengths), bool(ntk))
    with precision(float_dtype(state.params)):
        return run(state, x, y, batches, x_test, y_test, jnp.asarray(lengths), ntk)


def _run_keeping_params(trainer, state, x, y, batches, x_test, y_test, lengths, ntk):
    """``trainer.run`` one chunk at a time in a ``lax.scan``, keeping the parameters after
    each chunk but the last (which only measures)."""
    def chunk(state, inputs):
        rows, length, with_ntk = inputs
        state, (_, record) = trainer.run(state, x, y, rows[None], x_test, y_test,
                                         length[None], with_ntk[None])
        return state, (jax.tree_util.tree_map(lambda r: r[0], record), state.params)

    state, (records, params) = jax.lax.scan(chunk, state, (batches, lengths, ntk))
    return state, records, jax.tree_util.tree_map(lambda p: p[:-1], params)


def _run(trainer, state, x, y, batches, x_test, y_test, lengths, ntk):
    state, (_, records) = trainer.run(state, x, y, batches, x_test, y_test, lengths, ntk)
    return state, records


@functools.lru_cache(maxsize=32)
def _compiled_run(trainer, batched: bool, data_batched: bool, keep_params: bool):
    """The run, jitted, vmapped over states (and data) when batched."""
    run = functools.partial(_run_keeping_params if keep_params else _run, trainer)
    if batched:
        data = 0 if data_batched else None
        run = jax.vmap(run, in_axes=(0, data, data, None, data, data, None, None))
    return jax.jit(run)
