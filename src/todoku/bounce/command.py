"""`todoku explain`: the loop behind the command (the click wiring lives in cli/main.py)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable

from todoku.bounce.analyze import diagnose
from todoku.bounce.explain import LANGUAGES
from todoku.bounce.extract import parse_bounce
from todoku.bounce.render import as_json, as_text, error_json, error_text
from todoku.bounce.sources import read_inputs


def language_from_config(path: str | os.PathLike[str] | None) -> str:
    """The configuration's ``lang`` if a readable configuration names a valid one, else "en".

    explain works on a laptop without any server configuration, so a missing, unreadable or
    invalid configuration file is not an error here. Only ``lang`` is read (with tomllib, not
    config.load, which would import the whole configuration schema).
    """
    if path is None:
        return "en"
    try:
        with open(path, "rb") as file:
            lang = tomllib.load(file).get("lang", "en")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "en"
    return lang if isinstance(lang, str) and lang in LANGUAGES else "en"


def run_explain(
    arguments: list[str],
    lang: str,
    json_lines: bool,
    write: Callable[[str], None],
    write_error: Callable[[str], None],
) -> int:
    """Explain every message of every input; exit status 0, or 1 if an input was unreadable."""
    status = 0
    for item in read_inputs(arguments):
        if item.error:
            status = 1
            if json_lines:
                write(error_json(item.name, item.error))
            else:
                write_error(error_text(item.name, item.error, lang))
            continue
        for diagnosis in diagnose(parse_bounce(item.data), lang):
            write(
                as_json(item.name, diagnosis)
                if json_lines
                else as_text(item.name, diagnosis, lang) + "\n"
            )
    return status
