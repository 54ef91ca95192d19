import sys

# `todoku explain` is run over whole bounce folders from scripts: with the usual arguments it
# goes straight to the analyzer, without loading click and the rest of the command line.
if len(sys.argv) > 1 and sys.argv[1] == "explain":
    from todoku.bounce.__main__ import plain_explain

    status = plain_explain(sys.argv[2:])
    if status is not None:
        sys.exit(status)

from todoku.cli.main import main

main()
