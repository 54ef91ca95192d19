"""``python -m todoku.bounce [--json] [--lang en|ja] FILE_OR_DIR...``: the analyzer alone.

The same as ``todoku explain`` without loading the rest of the command line (server, queue,
DNS): for scripts that explain large bounce folders, where start-up time counts. For the same
reason the usual argument shapes are read directly, and argparse (with the help formatter it
brings in) is loaded only for anything else: ``--help``, a mistake, an abbreviated option.
``python -m todoku explain ...`` takes the same path (plain_explain) before loading click.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

LANGUAGE_CHOICES = ("en", "ja")
DEFAULT_CONFIG_PATH = "todoku.toml"  # as cli.main.DEFAULT_CONFIG_PATH (tests/bounce/test_cli.py)


@dataclass(frozen=True, slots=True)
class Arguments:
    as_json: bool
    lang: str | None
    config: str | None
    inputs: list[str]


def plain_arguments(argv: list[str]) -> Arguments | None:
    """The arguments when ``argv`` uses only --json, --lang, --config (spelled out) and at least
    one input; None for anything else, which the full parser (argparse or click) handles."""
    as_json = False
    lang: str | None = None
    config: str | None = None
    inputs: list[str] = []
    only_inputs = False
    index = 0
    while index < len(argv):
        argument = argv[index]
        following = argv[index + 1] if index + 1 < len(argv) else None
        if only_inputs or argument == "-" or not argument.startswith("-"):
            inputs.append(argument)
        elif argument == "--":
            only_inputs = True
        elif argument == "--json":
            as_json = True
        elif argument == "--lang" and following in LANGUAGE_CHOICES:
            lang = following
            index += 1
        elif argument.startswith("--lang=") and argument[7:] in LANGUAGE_CHOICES:
            lang = argument[7:]
        elif argument == "--config" and following is not None and not following.startswith("-"):
            config = following
            index += 1
        elif argument.startswith("--config=") and len(argument) > 9:
            config = argument[9:]
        else:
            return None
        index += 1
    return Arguments(as_json, lang, config, inputs) if inputs else None


def _full_arguments(argv: list[str]) -> Arguments:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m todoku.bounce",
                                     description="Say why mail bounced and what to do.")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--lang", choices=LANGUAGE_CHOICES, default=None)
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="configuration file (default: $TODOKU_CONFIG, then ./todoku.toml)")
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    args = parser.parse_args(argv)
    return Arguments(args.json, args.lang, args.config, args.inputs)


def explain(arguments: Arguments) -> int:
    """Run the explanation and return the exit status (0, or 1 if an input was unreadable)."""
    from todoku.bounce.command import language_from_config, run_explain

    # The same search as `todoku --config`: --config, $TODOKU_CONFIG, then ./todoku.toml
    # (config.load is not imported: it pulls in the whole configuration schema).
    lang = arguments.lang or language_from_config(
        arguments.config or os.environ.get("TODOKU_CONFIG") or DEFAULT_CONFIG_PATH)
    out = sys.stdout
    try:
        # One write per line (print writes the line and its end separately: two system calls
        # each when the output is unbuffered, as PYTHONUNBUFFERED makes it).
        return run_explain(arguments.inputs, lang, arguments.as_json,
                           lambda line: out.write(line + "\n"),
                           lambda line: sys.stderr.write(line + "\n"))
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def plain_explain(argv: list[str]) -> int | None:
    """``todoku explain ARGS`` without click when ARGS are plain; None: let click handle them."""
    arguments = plain_arguments(argv)
    return None if arguments is None else explain(arguments)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return explain(plain_arguments(argv) or _full_arguments(argv))


if __name__ == "__main__":
    sys.exit(main())
