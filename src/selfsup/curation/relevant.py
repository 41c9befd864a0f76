"""``relevant_filenames_file``: restrict a run to the listed files.

The file has one entry per line, relative to the input folder; a file is relevant when the
*last* line that matches it (or one of its parent folders) is a positive line. Videos are
listed by their file name; all frames of a relevant video are relevant.

Line syntax (gitignore's, read as "include" instead of "ignore")::

    image_1.png          # an exact relative path (a file, or a folder: everything in it)
    subdir/image_3.png
    subdir/*             # everything in subdir (``*`` matches a folder, and so all below it)
    subdir/              # same: a trailing slash matches folders only
    *.png                # a pattern without a slash matches at any depth
    **/cam1/*            # ``**`` matches any number of folders, ``*`` and ``?`` never a ``/``
    img_[0-9].jpg        # character classes, ``[!...]`` or ``[^...]`` negated
    !subdir/bad_*.png    # negation: exclude what earlier lines included
    ./*.jpg              # a leading ``./`` anchors a pattern to the top of the input folder
    \\#hash.png          # a backslash escapes ``#``, ``!``, a trailing space and ``*?[``

Blank lines and lines starting with ``#`` are ignored; spaces around a line are dropped
unless the trailing one is escaped (``\\ ``).

Deviations from gitignore, on purpose:

* A line with no wildcard and no slash (``image_1.png``) names the file at the top of the
  input folder, as lightly's list of filenames does, instead of a file of that name at any
  depth. Write ``**/image_1.png`` for the latter.
* A later line can re-include a file inside a folder that an earlier line excluded (git
  cannot, because it stops descending into ignored folders); here every file's full path is
  compared with every line, so "the last matching line wins" holds without exception.
* Leading spaces are dropped (git keeps them as part of the name).
* Lines that cannot name a file below the input folder are errors, with the line number:
  absolute paths (``/data/x.png``, ``C:\\x.png``), ``..`` components, a backslash used as a
  path separator, a lone ``!``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from selfsup.errors import DataError

_GLOB_CHARS: Final = frozenset("*?[")
# Characters a backslash may escape; anything else after a backslash is most likely a
# Windows path separator, which we reject with a hint instead of silently mis-reading it.
_ESCAPABLE: Final = frozenset("*?[]!# \\")


@dataclass(frozen=True, slots=True)
class RelevantPattern:
    """One parsed line of a relevant-filenames file.

    Attributes:
        text: The line as written (surrounding whitespace dropped).
        line: 1-based line number in ``source`` (0 for patterns not read from a file).
        source: File the line came from, for messages.
        negated: True for a ``!`` line (excludes what it matches).
        directory_only: True when the line ended with ``/`` (matches folders only).
        literal: The exact relative path for a line without wildcards, else ``None``.
        regex: For a wildcard line, a regex that fully matches the relative POSIX path of a
            file that the line matches itself or through one of its folders.
    """

    text: str
    line: int
    source: str
    negated: bool
    directory_only: bool
    literal: str | None
    regex: re.Pattern[str] | None

    def matches(self, path: str) -> bool:
        """True when this line matches the relative POSIX file path ``path``."""
        if self.regex is not None:
            return self.regex.fullmatch(path) is not None
        assert self.literal is not None
        if path.startswith(self.literal + "/"):
            return True
        return not self.directory_only and path == self.literal


def _error(source: str, number: int, text: str, why: str) -> DataError:
    location = f"{source}:{number}" if number else source
    return DataError(f"{location}: invalid relevant-filenames line {text!r}: {why}")


class _ErrorFactory:
    def __init__(self, source: str, number: int, text: str) -> None:
        self.source, self.number, self.text = source, number, text

    def __call__(self, why: str) -> DataError:
        return _error(self.source, self.number, self.text, why)


def _unescape_and_classify(body: str, err: _ErrorFactory) -> tuple[str, bool]:
    """Check the backslash escapes of ``body``; return (literal text, has wildcards)."""
    literal: list[str] = []
    wildcard = False
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise err("a line cannot end with a lone backslash")
            nxt = body[i + 1]
            if nxt not in _ESCAPABLE:
                raise err(
                    "a backslash only escapes one of * ? [ ] ! # space or \\; "
                    "use '/' to separate folders"
                )
            literal.append(nxt)
            i += 2
            continue
        if ch in _GLOB_CHARS:
            wildcard = True
        literal.append(ch)
        i += 1
    return "".join(literal), wildcard


def _strip_line(raw: str) -> str:
    """Drop the line end and surrounding spaces, keeping an escaped trailing space."""
    text = raw.rstrip("\r\n").lstrip()
    stripped = text.rstrip()
    if stripped.endswith("\\") and len(stripped) < len(text):
        # "name\ " keeps exactly the escaped space.
        count = len(stripped) - len(stripped.rstrip("\\"))
        if count % 2 == 1:
            return stripped + " "
    return stripped


def _translate_component(part: str) -> str:
    """Regex for one path component of a glob: ``*``/``?``/``[...]`` never match ``/``."""
    out: list[str] = []
    i = 0
    n = len(part)
    while i < n:
        ch = part[i]
        if ch == "\\" and i + 1 < n:
            out.append(re.escape(part[i + 1]))
            i += 2
        elif ch == "*":
            while i < n and part[i] == "*":
                i += 1  # "a**b" is "a*b": only a whole "**" component crosses folders
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            translated, end = _translate_class(part, i)
            out.append(translated)
            i = end
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


def _translate_class(part: str, start: int) -> tuple[str, int]:
    """Translate the bracket expression at ``part[start] == '['``; return (regex, next index).

    An unclosed ``[`` is a literal ``[``, as in fnmatch(3).
    """
    i = start + 1
    negate = False
    if i < len(part) and part[i] in "!^":
        negate = True
        i += 1
    items: list[str] = []
    first = True
    while i < len(part):
        ch = part[i]
        if ch == "]" and not first:
            body = "".join(items)
            # A class never matches "/" (FNM_PATHNAME); a negated one must exclude it.
            return (f"[^/{body}]" if negate else f"[{body}]"), i + 1
        if ch == "\\" and i + 1 < len(part):
            items.append(re.escape(part[i + 1]))
            i += 2
        elif ch == "-" and not first and i + 1 < len(part) and part[i + 1] != "]":
            items.append("-")
            i += 1
        else:
            items.append(re.escape(ch))
            i += 1
        first = False
    return re.escape("["), start + 1


def _glob_regex(parts: list[str], anchored: bool, directory_only: bool) -> re.Pattern[str]:
    pieces: list[str] = [] if anchored else ["(?:[^/]+/)*"]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            pieces.append(".*" if last else "(?:[^/]+/)*")
        else:
            pieces.append(_translate_component(part) + ("" if last else "/"))
    body = "".join(pieces)
    # The line matches a file when it matches the file's path or one of its folders, i.e. a
    # prefix of the path that ends just before a "/".
    suffix = "/.+" if directory_only else "(?:/.+)?"
    return re.compile(f"(?:{body}){suffix}", re.DOTALL)


def parse_relevant_line(
    raw: str, number: int = 0, source: str = "<relevant filenames>"
) -> RelevantPattern | None:
    """Parse one line; ``None`` for a blank or comment line.

    Raises:
        DataError: the line cannot name a file below the input folder (see module docstring);
            the message names ``source``, the line number and the line.
    """
    text = _strip_line(raw)
    if not text or text.startswith("#"):
        return None
    err = _ErrorFactory(source, number, text)
    negated = text.startswith("!")
    body = text[1:] if negated else text
    if not body:
        raise err("'!' must be followed by a pattern")
    if body.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", body) or body.startswith("~/"):
        raise err(
            "absolute paths are not accepted; write the path relative to the input folder "
            "(use './' to anchor a pattern at its top)"
        )
    directory_only = body.endswith("/")
    body = body.rstrip("/")
    anchored = False
    if body.startswith("./"):
        anchored = True
    raw_parts = body.split("/")
    parts = [p for p in raw_parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise err("'..' is not accepted: relevant files must lie inside the input folder")
    if not parts:
        raise err("the line names the input folder itself; list files or subfolders")
    anchored = anchored or len(parts) > 1
    literal_text, wildcard = _unescape_and_classify("/".join(parts), err)
    if not wildcard:
        return RelevantPattern(
            text=text,
            line=number,
            source=source,
            negated=negated,
            directory_only=directory_only,
            literal=literal_text,
            regex=None,
        )
    return RelevantPattern(
        text=text,
        line=number,
        source=source,
        negated=negated,
        directory_only=directory_only,
        literal=None,
        regex=_glob_regex(parts, anchored, directory_only),
    )


def parse_relevant_patterns(
    lines: Iterable[str], source: str = "<relevant filenames>"
) -> list[RelevantPattern]:
    """Parse lines (numbered from 1) into patterns, skipping blanks and comments.

    Raises:
        DataError: on the first invalid line, naming ``source`` and the line number.
    """
    patterns: list[RelevantPattern] = []
    for number, raw in enumerate(lines, start=1):
        pattern = parse_relevant_line(raw, number, source)
        if pattern is not None:
            patterns.append(pattern)
    return patterns


def read_relevant_filenames_file(path: str | os.PathLike[str]) -> list[RelevantPattern]:
    """Read and parse a relevant-filenames file (UTF-8; a BOM is accepted).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: the file is not UTF-8 text, or has an invalid line (with its number).
    """
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{os.fspath(path)}: the relevant filenames file must be UTF-8 text ({exc.reason} "
            f"at byte {exc.start})"
        ) from exc
    return parse_relevant_patterns(text.splitlines(), source=os.fspath(path))


def _as_patterns(patterns: Sequence[str | RelevantPattern]) -> list[RelevantPattern]:
    parsed: list[RelevantPattern] = []
    for number, item in enumerate(patterns, start=1):
        if isinstance(item, RelevantPattern):
            parsed.append(item)
        else:
            pattern = parse_relevant_line(item, number)
            if pattern is not None:
                parsed.append(pattern)
    return parsed


class RelevantMatcher:
    """Decides relevance for many paths against many lines in about O(depth + globs) a path.

    Literal lines (the common case: a long list of exact filenames) are looked up in a dict
    by the path and each of its folders; wildcard lines are tried from the last line back,
    and only those after the best literal hit, since the last matching line wins.
    """

    def __init__(self, patterns: Sequence[str | RelevantPattern]) -> None:
        self.patterns = _as_patterns(patterns)
        # literal -> (position of the last line naming it as file-or-folder, of the last
        # line naming it as folder only); -1 where none.
        self._literal: dict[str, tuple[int, int]] = {}
        self._globs: list[tuple[int, RelevantPattern]] = []
        for position, pattern in enumerate(self.patterns):
            if pattern.literal is not None:
                any_pos, dir_pos = self._literal.get(pattern.literal, (-1, -1))
                if pattern.directory_only:
                    dir_pos = position
                else:
                    any_pos = position
                self._literal[pattern.literal] = (any_pos, dir_pos)
            else:
                self._globs.append((position, pattern))
        self._globs.reverse()

    def deciding_line(self, path: str) -> RelevantPattern | None:
        """The last line that matches ``path``, or ``None`` if no line does."""
        best = -1
        if self._literal:
            hit = self._literal.get(path)
            if hit is not None:
                best = hit[0]
            cut = path.rfind("/")
            while cut > 0:
                hit = self._literal.get(path[:cut])
                if hit is not None:
                    best = max(best, hit[0], hit[1])
                cut = path.rfind("/", 0, cut)
        for position, pattern in self._globs:
            if position <= best:
                break
            if pattern.matches(path):
                best = position
                break
        return self.patterns[best] if best >= 0 else None

    def is_relevant(self, path: str) -> bool:
        """True when the last line matching ``path`` is a positive line."""
        line = self.deciding_line(path)
        return line is not None and not line.negated


def filter_relevant(
    filenames: Sequence[str], patterns: Sequence[str | RelevantPattern]
) -> list[str]:
    """The relevant ones of ``filenames`` (relative POSIX paths), in their given order.

    ``patterns`` are raw lines (parsed here; comments and blanks allowed) or parsed
    :class:`RelevantPattern` objects. With no pattern at all nothing is relevant.

    Raises:
        DataError: a raw line is invalid (see :func:`parse_relevant_line`).
    """
    matcher = RelevantMatcher(patterns)
    return [name for name in filenames if matcher.is_relevant(name)]


def unmatched_patterns(
    filenames: Sequence[str], patterns: Sequence[str | RelevantPattern]
) -> list[RelevantPattern]:
    """Lines that match none of ``filenames``: typos, or files missing from the input folder.

    A run reports them as a warning; they are not an error because a relevant-filenames
    file is often shared between runs over different folders.
    """
    parsed = _as_patterns(patterns)
    files = set(filenames)
    folders: set[str] = set()
    for name in filenames:
        cut = name.rfind("/")
        while cut > 0:
            folders.add(name[:cut])
            cut = name.rfind("/", 0, cut)
    unmatched: list[RelevantPattern] = []
    for pattern in parsed:
        if pattern.literal is not None:
            found = pattern.literal in folders or (
                not pattern.directory_only and pattern.literal in files
            )
        else:
            found = any(pattern.matches(name) for name in filenames)
        if not found:
            unmatched.append(pattern)
    return unmatched
