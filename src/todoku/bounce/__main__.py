"""``python -m todoku.bounce [--json] [--lang en|ja] [--config PATH] FILE_OR_DIR...``.

The analyzer alone: the same options and output as ``todoku explain`` (cli/main.py), for
machines where only the analyzer is wanted. It cannot reuse that command, because the analyzer
package imports nothing of the command line (.importlinter, bounce-is-pure); the two are
checked against each other by tests/bounce/test_fast_paths.py.

click rather than argparse: both commands then parse alike (abbreviations, errors, help), and
the cost is small. Measured with hyperfine (20 runs, one bounce file, 2-core machine shared
with other jobs): the start-up of the whole command is about 100 ms median, under the 150 ms
target, and importing click adds about 15 ms to it where argparse would add about 5 ms.
"""

from __future__ import annotations

import click

from todoku.bounce.command import language_from_config, run_explain
from todoku.bounce.explain import LANGUAGES

DEFAULT_CONFIG_PATH = "todoku.toml"  # as cli.main.DEFAULT_CONFIG_PATH (tests/bounce/test_cli.py)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per recipient.")
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Language of the explanations (default: the configuration's lang, else en).",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    metavar="PATH",
    envvar="TODOKU_CONFIG",
    help="Configuration file (default: $TODOKU_CONFIG, then ./todoku.toml).",
)
@click.argument("inputs", nargs=-1, required=True, metavar="FILE_OR_DIR...")
def main(config_path: str | None, as_json: bool, lang: str | None, inputs: tuple[str, ...]) -> None:
    """Say why mail bounced and what to do: bounce files, mbox files, Maildir folders or - (stdin)."""
    chosen = lang or language_from_config(config_path or DEFAULT_CONFIG_PATH)
    status = run_explain(
        list(inputs), chosen, as_json, click.echo, lambda line: click.echo(line, err=True)
    )
    raise SystemExit(status)


if __name__ == "__main__":
    main(prog_name="python -m todoku.bounce")
