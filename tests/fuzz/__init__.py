"""Fuzz targets, one module per parser that reads untrusted bytes (issue 12).

Each target is a Hypothesis property that asserts what the parser promises (well-formed replies,
bounded buffers, round trips, clean refusals), not only that it does not crash. In CI they run
briefly: the ``todoku-fuzz`` settings profile of ``conftest.py`` gives each target a small number
of examples, about 30 s for the whole directory on a loaded 2-core machine.

A longer run, for instance before a release or after changing a parser::

    TODOKU_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/fuzz -q -p no:randomly \\
        --hypothesis-show-statistics

``TODOKU_FUZZ_EXAMPLES`` is the number of examples of the cheapest targets; the expensive ones
(whole corpus messages, the DSN composer) run a fixed fraction of it. Failures are saved in the
Hypothesis example database (``.hypothesis/``) and replayed first on the next run.

Known bugs that a target found are kept as explicit ``@example`` inputs in a test marked
``xfail(strict=True, reason="issue 12: ...")``: it fails the suite as soon as the bug is fixed,
so that the mark is removed and the example stays as a regression test.
"""
