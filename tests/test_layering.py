"""Lower layers never import higher ones (docs/architecture.md, "Layers").

Every module's imports are read from its source (function-level imports included) and each
must point to a module of the same or a lower layer. A new module must be given a layer here
and on the architecture page.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "lazykit"

# The table of docs/architecture.md, by module prefix (the longest prefix wins).
LAYERS = {
    "lazykit._dtypes": 0, "lazykit._validation": 0, "lazykit._progress": 0, "lazykit._pytree": 0,
    "lazykit.kernels": 1,
    "lazykit.solvers": 2,
    "lazykit.activations": 3, "lazykit.network": 3, "lazykit.models": 3, "lazykit.interop": 3,
    "lazykit.tangent": 4, "lazykit.empirical": 4, "lazykit.monte_carlo": 4,
    "lazykit._problem": 4, "lazykit.population": 4,
    "lazykit.trainer": 5, "lazykit._measure": 5, "lazykit._driver": 5,
    "lazykit.trajectory": 5, "lazykit.training": 5, "lazykit.laziness": 5,
    "lazykit.lazy": 5, "lazykit.plotting": 5, "lazykit.schedule": 5,
    "lazykit.estimators": 6, "lazykit.experiments": 6, "lazykit.cli": 6, "lazykit.__main__": 6,
    "lazykit": 6,
}


def layer_of(module: str) -> int:
    matches = [prefix for prefix in LAYERS
               if module == prefix or (prefix != "lazykit" and module.startswith(prefix + "."))]
    if not matches:
        raise KeyError(module)
    return LAYERS[max(matches, key=len)]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every lazykit import in the file, relative imports resolved."""
    tree = ast.parse(path.read_text() if source is None else source)
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base == "lazykit" or (node.level and not node.module):
                # "from lazykit import x": x may be a submodule
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name.split(".")[0] == "lazykit"]


def _resolve(name: str) -> str:
    """A module name, dropping a trailing attribute (``lazykit.X`` where X is not a module)."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
        return name
    return name.rsplit(".", 1)[0]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert [module_name(p) for p in MODULES if _safe_layer(module_name(p)) is None] == []


def _safe_layer(module):
    try:
        return layer_of(module)
    except KeyError:
        return None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_never_reach_up(path):
    own = layer_of(module_name(path))
    upward = [f"line {line}: {name} (layer {layer_of(_resolve(name))})"
              for line, name in imported_modules(path) if layer_of(_resolve(name)) > own]
    assert not upward, f"{module_name(path)} (layer {own}) imports a higher layer: {upward}"


def test_the_check_sees_an_upward_import():
    """The checker itself: a function-level import of a higher layer is found."""
    fake = PACKAGE / "kernels" / "recursion.py"
    source = "def f():\n    from lazykit.empirical import empirical_ntk\n"
    modules = [name for _, name in imported_modules(fake, source)]
    assert modules == ["lazykit.empirical"]
    assert layer_of(modules[0]) > layer_of(module_name(fake))
