"""File names as selfsup keeps them: exact bytes, one reversible escape per output format.

On Linux a file name is a byte string (anything but ``/`` and NUL); it need not be valid
UTF-8. selfsup follows Python's own convention (:pep:`383`, what :func:`os.fsdecode`,
:func:`os.listdir` and :func:`os.walk` return for ``str`` paths): in memory a name is a
``str`` where every byte that is not part of valid UTF-8 is the lone surrogate
``U+DC80 + byte`` (``b"caf\\xe9.png"`` is ``"caf\\udce9.png"``). :func:`name_to_bytes` and
:func:`name_from_bytes` convert between the two without loss, so ``open(root / name)``
opens the right file and every name in a run folder maps back to exactly one file.

Where a name goes into a file, the scheme is (one per format, all reversible):

Lists of names and CSV tables (``filenames/*.txt``, ``data/*.csv``)
    The name's exact bytes: the file is UTF-8 except inside names that are not UTF-8.
    Write and read them with ``encoding="utf-8", errors=NAME_ERRORS`` (surrogateescape);
    ``cut``, ``xargs -d '\\n'`` and shell loops see the real names.
JSON (``data/manifest.jsonl``, ``report.json``)
    JSON must be valid UTF-8 text, so each surrogate is written as the JSON escape
    ``\\udcXX`` (:func:`dumps_json`). Python's :func:`json.loads` gives back the exact
    in-memory name; every other character is written as itself (UTF-8), so names that are
    valid text read as plain text.
Text for people (PDF, plot labels, log lines)
    :func:`display_name`: each undecodable byte as ``\\xNN``. Not reversible (a name may
    contain those four characters); use it only where a person reads the name.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

#: ``errors=`` for opening files that hold names (lists, CSV): keeps the exact bytes.
NAME_ERRORS: Final = "surrogateescape"

_SURROGATE: Final = re.compile("[\udc80-\udcff]")


def name_from_bytes(raw: bytes) -> str:
    """The in-memory name of the file name ``raw`` (UTF-8 with surrogateescape).

    Equal to :func:`os.fsdecode` on Linux with a UTF-8 file system encoding, and independent
    of the locale.
    """
    return raw.decode("utf-8", NAME_ERRORS)


def name_to_bytes(name: str) -> bytes:
    """The exact file name bytes of an in-memory name (inverse of :func:`name_from_bytes`)."""
    return name.encode("utf-8", NAME_ERRORS)


def is_text_name(name: str) -> bool:
    """True when the name is valid UTF-8 text (no escaped bytes)."""
    return _SURROGATE.search(name) is None


def display_name(name: str) -> str:
    """The name for a person to read: undecodable bytes shown as ``\\xNN``; always valid text."""
    if is_text_name(name):
        return name
    return name_to_bytes(name).decode("utf-8", "backslashreplace")


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` whose output is valid text even when names hold escaped bytes.

    The text keeps non-ASCII characters as they are (``ensure_ascii=False``) except lone
    surrogates, which become ``\\udcXX`` escapes; :func:`json.loads` reads them back as the
    same surrogates, i.e. the same name. Keyword arguments go to :func:`json.dumps`.
    """
    kwargs.setdefault("ensure_ascii", False)
    text = json.dumps(obj, **kwargs)
    # Lone surrogates can only come from string values or keys, and inside a JSON string
    # "\\udcXX" is exactly their escape, so the substitution cannot change the structure.
    return _SURROGATE.sub(_escape_surrogate, text)
