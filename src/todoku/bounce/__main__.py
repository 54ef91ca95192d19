"""``python -m todoku.bounce [--json] [--lang en|ja] FILE_OR_DIR...``: the analyzer alone.

The same as ``todoku explain`` without loading the rest of the command line (server, queue,
DNS): for scripts that explain large bounce folders, where start-up time counts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from todoku.bounce.command import language_from_config, run_explain


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m todoku.bounce",
                                     description="Say why mail bounced and what to do.")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--lang", choices=("en", "ja"), default=None)
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    args = parser.parse_args()
    # The same search as `todoku --config`: $TODOKU_CONFIG, then ./todoku.toml (config.load is not
    # imported: it pulls in the whole configuration schema, which explain does not need).
    lang = args.lang or language_from_config(Path(os.environ.get("TODOKU_CONFIG") or "todoku.toml"))
    out = sys.stdout
    try:
        return run_explain(args.inputs, lang, args.json, lambda line: print(line, file=out),
                           lambda line: print(line, file=sys.stderr))
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
