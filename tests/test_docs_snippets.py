"""The Python examples of README.md and the documentation pages run as written.

The code blocks of one page run in order in one namespace (later blocks use earlier names).
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/quickstart.md", "docs/estimators.md", "docs/kernels.md",
         "docs/lazy_training.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_pages_exist_and_have_examples():
    assert all((ROOT / page).is_file() for page in PAGES)
    assert sum(len(BLOCK.findall((ROOT / p).read_text())) for p in PAGES) >= 8


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a snippet writes stays out of the repository
    namespace = {"__name__": "__docs__"}
    for number, block in enumerate(BLOCK.findall((ROOT / page).read_text())):
        try:
            exec(compile(block, f"{page}[block {number}]", "exec"), namespace)
        except Exception as error:  # name the block in the failure
            raise AssertionError(f"{page}, code block {number} fails:\n{block}") from error
