"""Where selfsup keeps its own files, and where commands write when given no folder.

One place for ``$SELFSUP_HOME`` (the server's database and data, the worker's work folder,
datapools, caches of ``selfsup view``) and for the timestamped default output folders of
``selfsup train``/``embed`` and ``selfsup run``. Bottom layer: imports nothing of selfsup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HOME_ENV = "SELFSUP_HOME"
DEFAULT_HOME = "~/.selfsup"


def selfsup_home() -> Path:
    """``$SELFSUP_HOME`` with ``~`` expanded; ``~/.selfsup`` when unset or empty.

    Read at each call, so a process (or a test) that sets the variable later is obeyed.
    """
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def timestamped_output_dir(folder: str, *, nested: bool = False) -> Path:
    """``./<folder>/<YYYY-MM-DD>_<HH-MM-SS>`` under the current directory, the output folder
    of a command given none; ``nested=True`` gives ``./<folder>/<YYYY-MM-DD>/<HH-MM-SS>``
    (the layout lightly's CLI users know from hydra).

    Both parts come from one reading of the clock, so a run started a moment before
    midnight never gets the next day's date with the old day's time.
    """
    now = time.localtime()
    day, clock = time.strftime("%Y-%m-%d", now), time.strftime("%H-%M-%S", now)
    stamp = Path(day) / clock if nested else Path(f"{day}_{clock}")
    return Path.cwd() / folder / stamp
