"""The API page documents functions and classes (not modules that share their names), and no
public docstring contains text that Markdown would swallow as an HTML tag.

Broken links and anchors are caught by ``mkdocs build --strict`` itself (``validation`` in
mkdocs.yml); these are the two failures it cannot see.
"""

import importlib
import inspect
import pathlib
import re

import pytest

import lazykit

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENTRIES = re.findall(r"^::: ([\w.]+)", (ROOT / "docs/api.md").read_text(), re.M)
# "<name ..." outside code: Markdown passes it through as an (unknown) HTML element and the
# browser hides it, as once happened to "<v, g>".
RAW_TAG = re.compile(r"<[A-Za-z][^<>\n]*>")
CODE = re.compile(r"``.*?``|`[^`\n]*`|^\s*(>>>|\.\.\.).*$", re.M)
FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)


def _resolve(dotted: str):
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def test_api_page_has_entries():
    assert len(ENTRIES) > 30


@pytest.mark.parametrize("entry", ENTRIES)
def test_api_entry_is_not_a_shadowed_module(entry):
    """``::: lazykit.laziness`` once rendered the module lazykit.laziness, not the function."""
    obj = _resolve(entry)
    exported = getattr(lazykit, entry.rsplit(".", 1)[-1], None)
    if inspect.ismodule(obj):
        assert not callable(exported) or inspect.ismodule(exported), (
            f"docs/api.md's '::: {entry}' renders the module, which hides the public "
            f"{type(exported).__name__} of the same name; write its full path instead")


def _public_docstrings():
    for name in lazykit.__all__:
        obj = getattr(lazykit, name)
        if inspect.getdoc(obj):
            yield f"lazykit.{name}", inspect.getdoc(obj)
        module = inspect.getmodule(obj)
        if module is not None and module.__name__.startswith("lazykit") and module.__doc__:
            yield module.__name__, module.__doc__


def _without_indented_code(doc: str) -> str:
    """Drop Markdown's indented code blocks: lines indented 4+ spaces after a blank line."""
    kept, in_code, previous_blank = [], False, True
    for line in doc.splitlines():
        indented = line.startswith("    ") and line.strip()
        in_code = bool(indented) and (in_code or previous_blank)
        if not in_code:
            kept.append(line)
        previous_blank = not line.strip()
    return "\n".join(kept)


@pytest.mark.parametrize("name,doc", sorted(dict(_public_docstrings()).items()))
def test_docstring_has_no_raw_html(name, doc):
    prose = CODE.sub("", FENCE.sub("", _without_indented_code(doc)))
    tags = RAW_TAG.findall(prose)
    assert not tags, f"{name}'s docstring has {tags} outside code: Markdown would hide it"
