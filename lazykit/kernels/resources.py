"""Resources in one place: the memory budget and the devices that lazykit computes on.

**Memory.** The memory budget of lazykit's memory checks: the memory available now, or the user's.

Every memory check (:func:`lazykit.kernels.compute.check_memory`, and the
solver choice of ``solver="auto"``) compares what a computation needs with
:func:`lazykit.kernels.compute.available_memory`: the memory the operating
system reports as available now (``MemAvailable``), or, when set, the budget
given here, which replaces it (a smaller budget keeps lazykit below a limit
of your own; a larger one trusts you where the system's figure is wrong, as
in some containers). 90% of it may be used.

Set it for a block of code (``with memory_budget(8 * 2**30): ...``), for the
rest of the session (:func:`set_memory_budget`), or per estimator
(``memory_budget=`` of the scikit-learn estimators). The setting is a
:class:`contextvars.ContextVar`: threads and asyncio tasks each see their own.

**Devices.** Kernel tiles and kernel products run on :func:`kernel_devices`:
all local JAX devices (``jax.local_devices()``), or those given to
:func:`use_devices` (a block of code) or :func:`set_devices` (the rest of the
session). On an accelerator, a tile's working set is also checked against the
memory free on each device (:func:`check_device_memory`), not against host RAM.
"""

from __future__ import annotations

import contextvars
from numbers import Integral, Real

import jax

_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("lazykit_memory_budget",
                                                                     default=None)


def _replace(var: contextvars.ContextVar, value):
    """Set a setting for the rest of this context; return the value it replaces."""
    previous = var.get()
    var.set(value)
    return previous


class _Scoped:
    """A context manager that sets one setting (a ContextVar) for a block; re-entrant."""

    def __init__(self, var: contextvars.ContextVar, value):
        self._var, self.value, self._tokens = var, value, []

    def __enter__(self):
        self._tokens.append(self._var.set(self.value))
        return self

    def __exit__(self, *exc):
        self._var.reset(self._tokens.pop())
        return False


def _check(nbytes, name: str = "nbytes") -> int | None:
    if nbytes is None:
        return None
    if isinstance(nbytes, bool) or not isinstance(nbytes, Real) or not nbytes > 0 \
            or nbytes != nbytes or nbytes == float("inf"):
        raise ValueError(f"{name} must be None (the memory available now) or a positive number "
                         f"of bytes such as 8 * 2**30; got {nbytes!r}.")
    return int(nbytes) if isinstance(nbytes, Integral) else int(nbytes // 1)


def current_budget() -> int | None:
    """The budget in force (bytes), or None when the memory available now is used.

    Examples:
        >>> from lazykit.kernels.resources import current_budget, memory_budget
        >>> with memory_budget(2**30):
        ...     current_budget()
        1073741824
    """
    return _BUDGET.get()


def set_memory_budget(nbytes) -> int | None:
    """Set the budget for the rest of this context (None: back to the memory available now).

    Returns the budget it replaces.

    Examples:
        >>> from lazykit.kernels.resources import current_budget, set_memory_budget
        >>> previous = set_memory_budget(4 * 2**30)
        >>> current_budget() == 4 * 2**30
        True
        >>> _ = set_memory_budget(previous)
    """
    return _replace(_BUDGET, _check(nbytes))


class memory_budget(_Scoped):
    """``with memory_budget(nbytes): ...``: the budget of every memory check inside the block.

    Args:
        nbytes: bytes lazykit may plan with (90% of them are used), or None
            for the memory available now.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.resources import memory_budget
        >>> with memory_budget(10**6):  # 1 MB: a 1000 x 1000 kernel does not fit
        ...     try:
        ...         lazykit.mlp(1).kernel(np.ones((1000, 3)))
        ...     except lazykit.InsufficientMemoryError:
        ...         print("refused before computing")
        refused before computing
    """

    def __init__(self, nbytes):
        super().__init__(_BUDGET, _check(nbytes))


_DEVICES: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("lazykit_devices",
                                                                       default=None)


def _check_devices(devices) -> tuple | None:
    if devices is None:
        return None
    try:
        devices = tuple(devices)
    except TypeError:
        devices = (devices,)
    local = set(jax.local_devices())
    wrong = [d for d in devices if not isinstance(d, jax.Device) or d not in local]
    if not devices or wrong:
        raise ValueError("devices must be None (all local JAX devices) or a non-empty sequence "
                         f"of this process's JAX devices (jax.local_devices()); got {devices!r}.")
    return devices


def kernel_devices() -> tuple:
    """The devices kernels are computed on: those set by :func:`use_devices`, else all local ones.

    Examples:
        >>> import jax
        >>> from lazykit.kernels.resources import kernel_devices
        >>> kernel_devices() == tuple(jax.local_devices())
        True
    """
    return _DEVICES.get() or tuple(jax.local_devices())


def set_devices(devices) -> tuple | None:
    """Compute kernels on ``devices`` for the rest of this context (None: all local devices).

    Returns the setting it replaces.

    Examples:
        >>> import jax
        >>> from lazykit.kernels.resources import kernel_devices, set_devices
        >>> previous = set_devices(jax.local_devices()[:1])
        >>> len(kernel_devices())
        1
        >>> _ = set_devices(previous)
    """
    return _replace(_DEVICES, _check_devices(devices))


class use_devices(_Scoped):
    """``with use_devices(devices): ...``: kernels inside the block run on ``devices``.

    Args:
        devices: a sequence of this process's JAX devices, or None for all of them.

    Examples:
        >>> import jax, numpy as np, lazykit
        >>> with lazykit.use_devices(jax.local_devices()[:1]):
        ...     lazykit.mlp(1).kernel(np.ones((3, 2))).ntk.shape
        (3, 3)
    """

    def __init__(self, devices):
        super().__init__(_DEVICES, _check_devices(devices))


def device_free_memory(device) -> int | None:
    """Bytes free on an accelerator (its allocator's limit minus what is in use); None on CPU,
    whose memory is the host's (see the memory budget), or when the device does not say."""
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def check_device_memory(per_device: int, what: str, hint: str, devices=None) -> None:
    """Raise ``InsufficientMemoryError`` when ``per_device`` bytes exceed 90% of the free
    memory of any accelerator in ``devices`` (default: :func:`kernel_devices`).

    Examples:
        >>> import jax
        >>> from lazykit.kernels.resources import check_device_memory
        >>> check_device_memory(2**40, "a tile", "", jax.devices("cpu"))  # CPU: the host's check
    """
    from lazykit.kernels.compute import InsufficientMemoryError

    for device in kernel_devices() if devices is None else devices:
        free = device_free_memory(device)
        if free is not None and per_device > 0.9 * free:
            raise InsufficientMemoryError(
                f"{what} needs {per_device / 2**30:.2f} GiB on each device but {device} has "
                f"only {free / 2**30:.2f} GiB free. {hint}")
