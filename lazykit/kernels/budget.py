"""The memory budget of lazykit's memory checks: the memory available now, or the user's.

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
"""

from __future__ import annotations

import contextvars
from numbers import Integral, Real

_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("lazykit_memory_budget",
                                                                     default=None)


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
        >>> from lazykit.kernels.budget import current_budget, memory_budget
        >>> with memory_budget(2**30):
        ...     current_budget()
        1073741824
    """
    return _BUDGET.get()


def set_memory_budget(nbytes) -> int | None:
    """Set the budget for the rest of this context (None: back to the memory available now).

    Returns the budget it replaces.

    Examples:
        >>> from lazykit.kernels.budget import current_budget, set_memory_budget
        >>> previous = set_memory_budget(4 * 2**30)
        >>> current_budget() == 4 * 2**30
        True
        >>> _ = set_memory_budget(previous)
    """
    previous = _BUDGET.get()
    _BUDGET.set(_check(nbytes))
    return previous


class memory_budget:
    """``with memory_budget(nbytes): ...``: the budget of every memory check inside the block.

    Args:
        nbytes: bytes lazykit may plan with (90% of them are used), or None
            for the memory available now.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.budget import memory_budget
        >>> with memory_budget(10**6):  # 1 MB: a 1000 x 1000 kernel does not fit
        ...     try:
        ...         lazykit.mlp(1).kernel(np.ones((1000, 3)))
        ...     except lazykit.InsufficientMemoryError:
        ...         print("refused before computing")
        refused before computing
    """

    def __init__(self, nbytes):
        self.nbytes = _check(nbytes)
        self._tokens = []

    def __enter__(self):
        self._tokens.append(_BUDGET.set(self.nbytes))
        return self

    def __exit__(self, *exc):
        _BUDGET.reset(self._tokens.pop())
        return False
