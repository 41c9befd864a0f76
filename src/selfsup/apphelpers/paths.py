"""Path checks: LOCAL datasources stay inside the allowed roots, artifact names stay inside
their run's folder.

Escapes are refused, not repaired: a ``..`` component, a path outside every root (absolute or
through a symlink) or an unsafe artifact name is an error naming the path and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from selfsup.apphelpers.http_errors import ApiError

# Used with fullmatch: ``re.match`` with ``$`` would also accept a name ending in "\n".
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")


def _has_dotdot(path: str) -> bool:
    return any(part == ".." for part in re.split(r"[\\/]", path))


def resolve_local_path(full_path: str, roots: Sequence[Path]) -> Path:
    """The real path of a LOCAL datasource, which must lie inside one of ``roots``.

    A relative ``full_path`` is taken relative to the first root. Symlinks are resolved before
    the check, so a link inside a root that points outside is refused as well.

    Raises:
        ApiError: 403 when the server allows no local roots or the path is outside them;
            400 for ``..`` components or NUL bytes.
    """
    if not roots:
        raise ApiError(
            403,
            "LOCAL_DATASOURCES_DISABLED",
            "you may use no LOCAL folders on this server: an admin allows them per user with "
            "'selfsup token roots --user NAME --add DIR', or for every user with "
            "'selfsup serve --local-root DIR' (or SELFSUP_LOCAL_ROOTS)",
        )
    if "\x00" in full_path:
        raise ApiError(400, "INVALID_PATH", "local path contains a NUL byte")
    if _has_dotdot(full_path):
        raise ApiError(
            400,
            "PATH_ESCAPE",
            f"local path {full_path!r} contains '..'; give the folder itself, inside one of "
            f"the allowed roots: {', '.join(str(r) for r in roots)}",
        )
    candidate = Path(full_path).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    real = candidate.resolve(strict=False)
    for root in roots:
        real_root = root.expanduser().resolve(strict=False)
        if real == real_root or real.is_relative_to(real_root):
            return real
    via_link = "" if real == candidate.absolute() else f" (it resolves to {str(real)!r})"
    raise ApiError(
        403,
        "PATH_OUTSIDE_ROOTS",
        f"local path {full_path!r}{via_link} is outside the allowed roots: "
        f"{', '.join(str(r) for r in roots)}",
    )


def safe_artifact_name(file_name: str) -> str:
    """``file_name`` as a relative POSIX path that stays inside the run's folder.

    Each component starts with a letter, digit or ``_`` and holds only letters, digits,
    ``.``, ``_`` and ``-`` (so no ``..``, no hidden files, no absolute paths, no backslashes).
    """
    if not file_name or len(file_name) > 500:
        raise ApiError(400, "INVALID_FILE_NAME", "artifact file name must be 1 to 500 characters")
    parts = file_name.split("/")
    bad = [p for p in parts if not _SAFE_COMPONENT.fullmatch(p)]
    if bad or file_name.startswith("/"):
        raise ApiError(
            400,
            "INVALID_FILE_NAME",
            f"artifact file name {file_name!r} is not a safe relative path: each part must "
            "start with a letter, digit or '_' and contain only letters, digits, '.', '_' "
            "and '-' (e.g. 'report.pdf' or 'filenames/selected.txt')",
        )
    return str(PurePosixPath(*parts))


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside ``root``; for checks at access time."""
    real_root = root.resolve(strict=False)
    real = path.resolve(strict=False)
    return real == real_root or real.is_relative_to(real_root)
