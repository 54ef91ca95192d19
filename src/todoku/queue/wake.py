"""The wake file: how ``todoku queue ...`` commands tell a running server to look at the queue
again. Kept apart from the runner so that the commands start without importing the delivery
machinery (asyncio, dnspython, the SMTP client): ``todoku queue flush`` is interactive."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from todoku.config import Config


def wake_path(config: Config) -> Path:
    """Touched by the CLI after it changes the queue; the running server watches it."""
    return config.data_dir / "run" / "queue.wake"


def touch_wake_file(path: Path) -> None:
    """What the CLI does after changing the queue, so a running server looks again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + f".{os.getpid()}")
    temp.write_text(str(os.getpid()))
    os.replace(temp, path)
