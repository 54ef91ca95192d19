"""``todoku`` and ``python -m todoku``: the console script's entry point (pyproject.toml).

`todoku explain` is run over whole bounce folders from scripts: with the usual arguments it goes
straight to the analyzer, without loading click and the rest of the command line (about a third
of a whole run's CPU time over the corpus otherwise).
"""

import sys


def run() -> int | None:
    if len(sys.argv) > 1 and sys.argv[1] == "explain":
        from todoku.bounce.__main__ import plain_explain

        status = plain_explain(sys.argv[2:])
        if status is not None:
            return status

    from todoku.cli.main import main

    return main()  # type: ignore[func-returns-value]  # click exits by itself


if __name__ == "__main__":
    sys.exit(run())
