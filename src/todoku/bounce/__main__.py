"""``python -m todoku.bounce [--json] [--lang en|ja] [--config PATH] FILE_OR_DIR...``.

The analyzer alone: the same options and output as ``todoku explain`` (cli/main.py), for
machines where only the analyzer is wanted. It cannot reuse that command, because the analyzer
package imports nothing of the command line (.importlinter, bounce-is-pure); the two are
checked against each other by tests/bounce/test_fast_paths.py.

click rather than argparse: both commands then parse, report mistakes and print help alike.
Measured on one bounce file (CPU time, median of 20 interleaved runs, bytecode cached, on the
shared 2-core machine at load 5): this command starts in 127 ms with click and would in 117 ms
with argparse, under the 150 ms target either way. The analyzer's own imports are most of it
(105 ms); the hand-written argument reader and JSON writer this replaced started in 60 ms.
Measured again after the scored classifier (issue 13), at load 1.5: this command starts in
84 ms, ``todoku explain`` in 91 ms (CPU, median of 20 runs on one bounce). A whole run over the
520 messages of the development corpus is 1.6 times as fast as Debian's Sisimai 4.25 by CPU
time, ``todoku explain`` 1.5 times (bench/explain_accuracy.py --sisimai --rounds 5), short of the
2x target: click against argparse is about 9 ms of import, not the difference.
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
