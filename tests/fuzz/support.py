"""What several fuzz targets share: their settings, a measure of retained memory, the corpus."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from hypothesis import settings

# The labelled bounce corpus (as tests/bounce/test_corpus.py): real bounces as seeds to mutate.
CORPUS = Path(os.environ.get("TODOKU_BOUNCE_CORPUS", "/work/shared/corpus/bounces")) / "maildir/bsd"


def fuzz_settings(fraction: float = 1.0) -> settings:
    """The ``todoku-fuzz`` profile (conftest.py), with ``fraction`` of its examples."""
    profile = settings.get_profile("todoku-fuzz")
    return settings(profile, max_examples=max(5, int(profile.max_examples * fraction)))


def retained_bytes(obj: object) -> int:
    """Octets of bytes, bytearray and str held by ``obj`` and whatever it refers to.

    A black-box measure of what a protocol core keeps between reads: it walks the object's
    attributes (``__dict__`` and ``__slots__``) and containers, whatever they are called, so the
    bound it checks survives a rewrite of the core's buffering.
    """
    seen: set[int] = set()
    total = 0
    stack: list[object] = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, (int, float, type)):
            continue
        seen.add(id(item))
        if isinstance(item, (bytes, bytearray, str)):
            total += len(item)
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset, deque)):
            stack.extend(item)
        else:
            stack.extend(getattr(item, "__dict__", {}).values())
            for klass in type(item).__mro__:
                for name in getattr(klass, "__slots__", ()):
                    if hasattr(item, name):
                        stack.append(getattr(item, name))
    return total


@cache
def corpus_messages() -> tuple[bytes, ...]:
    """Every corpus message (about 520, 3 MB), or none when the corpus is not on this machine."""
    if not CORPUS.is_dir():
        return ()
    return tuple(path.read_bytes() for path in sorted(CORPUS.glob("*.eml")))
