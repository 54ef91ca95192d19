"""Hypothesis settings for the fuzz targets: a short CI run by default, a long one on demand.

The ``todoku-fuzz`` profile holds the number of examples of the cheap targets:
``CI_EXAMPLES``, or ``TODOKU_FUZZ_EXAMPLES=N`` when set (the long-run command is in
``tests/fuzz/__init__.py``). It is registered here, before pytest imports the test modules, and
never loaded globally, so the rest of the suite keeps Hypothesis's defaults; each target takes
``settings.get_profile("todoku-fuzz")`` (through ``support.fuzz_settings``) and expensive ones a
fraction of its count.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 100


def examples_from_environment() -> int:
    raw = os.environ.get("TODOKU_FUZZ_EXAMPLES", "").strip()
    if not raw:
        return CI_EXAMPLES
    value = int(raw)
    if value < 1:
        raise ValueError("TODOKU_FUZZ_EXAMPLES must be a positive number of examples")
    return value


settings.register_profile(
    "todoku-fuzz",
    max_examples=examples_from_environment(),
    deadline=None,  # a loaded CI machine must not turn slowness into failures
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,  # a failure prints the @reproduce_failure line that replays it
)
