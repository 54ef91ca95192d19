"""``todoku`` and ``python -m todoku``: the console script's entry point (pyproject.toml).

Every command, ``todoku explain`` included, goes through click (cli/main.py). An earlier fast
path read ``explain``'s arguments by hand to skip loading click; measured with hyperfine (20
runs, one bounce file), the whole command starts in about 100 ms median with click, under the
150 ms target, so the second argument parser was not worth keeping.
"""


def run() -> None:
    from todoku.cli.main import main

    main()  # click ends the process with the command's exit status


if __name__ == "__main__":
    run()
