# lazykit: `make demo` runs the main job, `make test` runs every test.
# Each target builds the virtual environments it needs on first use.
PYTHON ?= python3
VENV := .venv
NT_VENV := .venv-nt
# The neural-tangents oracle only runs with these pins (design.md).
NT_PINS := "jax==0.5.3" "jaxlib==0.5.3" "neural-tangents==0.6.5" "numpy<2"

.PHONY: demo test lint docs oracle bench clean

# uv (installed from PyPI into the main environment) installs both environments
# several times faster than pip.
UV := $(VENV)/bin/uv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q uv
	$(UV) pip install -q --python $(VENV)/bin/python -e ".[test,docs]"
	touch $@

$(NT_VENV)/.installed: pyproject.toml $(VENV)/.installed
	$(UV) venv -q --allow-existing --python $(PYTHON) $(NT_VENV)
	$(UV) pip install -q --python $(NT_VENV)/bin/python -e ".[test]" $(NT_PINS)
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/lazykit run kernel_vs_network --quick --out results/kernel_vs_network --force

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check lazykit tests benchmarks examples

docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

oracle: $(NT_VENV)/.installed
	$(NT_VENV)/bin/python -m pytest -q -n 2 -p no:cacheprovider tests/oracle

test: lint docs $(NT_VENV)/.installed
	$(VENV)/bin/python -m pytest -q -n 2 tests lazykit --doctest-modules
	$(MAKE) oracle

bench: $(VENV)/.installed $(NT_VENV)/.installed
	$(VENV)/bin/python benchmarks/kernel_speed.py --nt-python $(NT_VENV)/bin/python
	$(VENV)/bin/python benchmarks/empirical_ntk_speed.py --nt-python $(NT_VENV)/bin/python
	$(VENV)/bin/python benchmarks/tangent_step.py

clean:
	rm -rf $(VENV) $(NT_VENV) .pytest_cache .ruff_cache
