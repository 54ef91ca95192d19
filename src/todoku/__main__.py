"""``todoku`` and ``python -m todoku``: the console script's entry point (pyproject.toml).

Every command, ``todoku explain`` included, goes through click (cli/main.py). An earlier fast
path read ``explain``'s arguments by hand to skip loading click: measured on one bounce file
(CPU time, median of 20 runs, bytecode cached, shared machine at load 5), ``todoku explain``
now starts in about 135 ms against 61 ms then, most of the difference being the standard
library (dataclasses, json, tomllib, pathlib) and click. That is under the 150 ms target (91 ms
measured again after the scored classifier, load 1.5), so a second argument parser is not
worth keeping; a whole run's speed against Debian's Sisimai is set by the analyzer, not by the
start-up (bench/explain_accuracy.py --sisimai: 1.5x, see todoku/bounce/__main__.py).
"""


def run() -> None:
    from todoku.cli.main import main

    main()  # click ends the process with the command's exit status


if __name__ == "__main__":
    run()
