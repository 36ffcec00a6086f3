"""The public surface is explicit: everything in __all__ exists, nothing private leaks."""

import lazykit


def test_all_names_exist():
    for name in lazykit.__all__:
        assert hasattr(lazykit, name), name


def test_all_is_sorted_and_unique():
    names = [n for n in lazykit.__all__ if n != "__version__"]
    assert len(set(names)) == len(names)


def test_no_private_names_exported():
    assert not [n for n in lazykit.__all__ if n.startswith("_") and n != "__version__"]
