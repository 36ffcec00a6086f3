"""Network descriptions as pytrees: numeric hyperparameters are leaves, structure is static.

A layer or network description is a frozen dataclass. Deriving from
:class:`Description` registers each subclass with JAX: the fields named in
``leaf_fields`` (``None``: all of them) are the pytree's children, every other
field (widths, parameterization, callables) is static. So ``jax.jit`` takes a
description as an argument and compiles once per *structure*, ``jax.grad``
differentiates with respect to ``W_std`` or an activation's parameters, and
``jax.vmap`` maps over stacked values. Rebuilding a description from its leaves
skips ``__post_init__``: traced values cannot be validated, and the structure
was validated when the description was first built.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax


class Description:
    """Mixin of frozen-dataclass descriptions whose ``leaf_fields`` are pytree leaves.

    Examples:
        >>> import dataclasses, jax
        >>> @dataclasses.dataclass(frozen=True)
        ... class Scale(Description):
        ...     factor: float = 2.0
        ...     name: str = "scale"
        ...     leaf_fields = ("factor",)
        >>> jax.tree_util.tree_leaves(Scale(3.0))
        [3.0]
        >>> jax.tree_util.tree_map(lambda v: v * 2, Scale(3.0))
        Scale(factor=6.0, name='scale')
    """

    leaf_fields: ClassVar[tuple[str, ...] | None] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(
            cls, _flatten_with_keys, lambda aux, children: _unflatten(cls, aux, children),
            _flatten)


def _split(obj):
    """(leaf names, static names) of a description instance."""
    if not dataclasses.is_dataclass(obj):
        return (), ()
    names = tuple(field.name for field in dataclasses.fields(obj))
    leaves = names if type(obj).leaf_fields is None else tuple(
        name for name in names if name in type(obj).leaf_fields)
    return leaves, tuple(name for name in names if name not in leaves)


def _flatten(obj):
    leaves, static = _split(obj)
    if not dataclasses.is_dataclass(obj):  # a plain user subclass: static as a whole
        return (), obj
    return (tuple(getattr(obj, name) for name in leaves),
            (leaves, tuple((name, getattr(obj, name)) for name in static)))


def _flatten_with_keys(obj):
    children, aux = _flatten(obj)
    names = _split(obj)[0]
    return tuple(zip((jax.tree_util.GetAttrKey(n) for n in names), children, strict=True)), aux


def _unflatten(cls, aux, children):
    if not isinstance(aux, tuple):  # see _flatten: the object itself
        return aux
    leaves, static = aux
    obj = object.__new__(cls)
    for name, value in (*zip(leaves, children, strict=True), *static):
        object.__setattr__(obj, name, value)
    return obj
