"""Hypothesis profiles of the property-based suite.

HYPOTHESIS_PROFILE selects one: "ci" (the default: a fixed seed, a few examples
per property, the whole suite in under two minutes on one core) or "long"
(many examples, random seeds; run by hand, e.g.
``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q tests/property``).
"""

import os

from hypothesis import HealthCheck, Phase, settings

# JIT compilation makes the first example of a new shape slow, and the inputs are
# built from small fixed sets on purpose (compiled kernels are reused).
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]

# No "explain" phase in CI: it reruns a failing test many times to annotate the report.
settings.register_profile(
    "ci", derandomize=True, max_examples=8, deadline=None, database=None,
    suppress_health_check=_SLOW_IS_FINE, print_blob=True,
    phases=(Phase.explicit, Phase.generate, Phase.shrink))
settings.register_profile(
    "long", max_examples=300, deadline=None, database=None,
    suppress_health_check=_SLOW_IS_FINE, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
