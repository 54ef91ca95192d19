"""`todoku explain`: the loop behind the command (the click wiring lives in cli/main.py)."""

from __future__ import annotations

import os
from collections.abc import Callable

from todoku.bounce.analyze import diagnose
from todoku.bounce.explain import LANGUAGES
from todoku.bounce.extract import parse_bounce
from todoku.bounce.render import as_json, as_text, error_json, error_text
from todoku.bounce.sources import read_inputs


def language_from_config(path: str | os.PathLike[str] | None) -> str:
    """The configuration's ``lang`` if a readable configuration names a valid one, else "en".

    explain works on a laptop without any server configuration, so a missing or broken
    configuration file is not an error here. tomllib is imported only when there is a file to
    read: it is a sixth of the command's start-up otherwise.
    """
    if path is None or not os.path.isfile(path):
        return "en"
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError):
        return "en"
    plain = _plain_top_level_lang(text)
    if plain is not None:
        return plain
    import tomllib

    try:
        lang = tomllib.loads(text).get("lang", "en")
    except tomllib.TOMLDecodeError:
        return "en"
    return lang if lang in LANGUAGES else "en"


def _plain_top_level_lang(text: str) -> str | None:
    """The language of a configuration whose top-level part (before the first table) is plain
    ``key = value`` lines, read without tomllib (a sixth of explain's start-up); None when the
    text has any shape this does not follow for certain, for tomllib to read.

    "Plain" is narrow on purpose: no multi-line strings (a ``lang = ...`` line inside one is not
    a key) and at most one line naming ``lang``, written ``lang = "en"`` (or ``'en'``)."""
    if '"""' in text or "'''" in text:
        return None
    found: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            break  # the first table: keys after it are not top-level
        if "lang" not in stripped:
            continue
        if stripped.startswith("#"):
            continue
        key, equals, value = stripped.partition("=")
        if not equals:
            return None
        if key.strip().strip("\"'") != "lang":
            if "lang" in key:
                return None  # a dotted or quoted key that mentions lang: tomllib decides
            continue
        value = value.split("#", 1)[0].strip()
        if len(value) < 2 or value[0] not in "\"'" or value[-1] != value[0]:
            return None
        found.append(value[1:-1])
    if not found:
        return "en"
    if len(found) > 1:
        return None  # a duplicate key is an error for TOML: tomllib says so
    return found[0] if found[0] in LANGUAGES else "en"


def run_explain(arguments: list[str], lang: str, json_lines: bool,
                write: Callable[[str], None], write_error: Callable[[str], None]) -> int:
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
            write(as_json(item.name, diagnosis) if json_lines
                  else as_text(item.name, diagnosis, lang) + "\n")
    return status
