"""Datasources through fsspec: materialise the INPUT datasource as a local folder, read files
from and upload a run's outputs to the LIGHTLY datasource.

LOCAL datasources are used in place; S3, GCS and Azure ones are downloaded into a cache
folder (the pipeline decodes every file several times, so a local copy is cheaper than
streaming). The S3 endpoint of an S3-compatible store (MinIO, moto, Ceph) is read from the
datasource option ``s3_endpoint_url`` when the server has one, else from
``$SELFSUP_S3_ENDPOINT_URL``: the server's S3 config has no endpoint field.

LOCAL paths are checked where they are used, not only when the datasource was set: a folder
accepted by the server can be replaced by a symlink to anywhere afterwards. Every LOCAL path
is resolved (all links followed) right before it is read or written and must lie inside the
datasource's ``allowed_roots``, which the server sends with each job; a LOCAL datasource
without them is refused (the server predates the check). What remains is the short window
between the check and the ``open`` of one file, which a path check cannot close.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from selfsup.errors import ConfigError, DataError
from selfsup.openapi_generated.swagger_client.models.datasource_data import DatasourceAccessData

S3_ENDPOINT_ENV = "SELFSUP_S3_ENDPOINT_URL"


def _require(access: DatasourceAccessData, key: str) -> str:
    value = access.credentials.get(key) or access.options.get(key)
    if not value:
        raise ConfigError(
            f"{access.type.value} datasource {access.full_path!r} has no {key!r}; set the "
            "datasource again with its credentials"
        )
    return str(value)


def open_datasource(access: DatasourceAccessData) -> tuple[Any, str]:
    """The fsspec filesystem of a datasource and its root path in it (no protocol).

    fsspec ships no type information, so the filesystem is typed ``Any``.
    """
    kind = access.type.value
    if kind == "LOCAL":
        # fsspec has no stubs or py.typed marker.
        from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]

        return LocalFileSystem(), str(Path(access.full_path))
    if kind == "S3":
        import s3fs  # type: ignore[import-untyped]  # no stubs or py.typed marker

        endpoint = access.options.get("s3_endpoint_url") or os.environ.get(S3_ENDPOINT_ENV)
        client_kwargs: dict[str, Any] = {"region_name": _require(access, "s3_region")}
        if endpoint:
            client_kwargs["endpoint_url"] = endpoint
        fs = s3fs.S3FileSystem(
            key=_require(access, "s3_access_key_id"),
            secret=_require(access, "s3_secret_access_key"),
            client_kwargs=client_kwargs,
            skip_instance_cache=True,
        )
        return fs, access.full_path.removeprefix("s3://").rstrip("/")
    if kind == "GCS":
        gcsfs = _optional("gcsfs", "GCS")
        token = json.loads(_require(access, "gcs_credentials"))
        fs = gcsfs.GCSFileSystem(project=_require(access, "gcs_project_id"), token=token)
        return fs, access.full_path.removeprefix("gs://").rstrip("/")
    if kind == "AZURE":
        adlfs = _optional("adlfs", "AZURE")
        fs = adlfs.AzureBlobFileSystem(
            account_name=_require(access, "account_name"),
            sas_token=_require(access, "account_key"),
        )
        return fs, access.full_path.rstrip("/")
    raise ConfigError(f"datasource type {kind!r} is not supported (LOCAL, S3, GCS, AZURE)")


def _optional(module: str, kind: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{kind} datasources need the {module!r} package on the worker: pip install {module}"
        ) from None


def local_roots(access: DatasourceAccessData) -> list[Path]:
    """The allowed roots of a LOCAL datasource as absolute paths (links in them are not
    followed: the server sends real paths).

    Raises:
        ConfigError: the server sent none, so nothing about the path can be checked.
    """
    if not access.allowed_roots:
        raise ConfigError(
            f"LOCAL {access.purpose.value} datasource {access.full_path!r} came without "
            "allowed_roots, so the worker cannot check that the folder is still inside them; "
            "the selfsup server is too old for this worker: upgrade and restart 'selfsup serve'"
        )
    return [Path(os.path.abspath(root)) for root in access.allowed_roots]


def _inside(real: Path, roots: Sequence[Path]) -> bool:
    return any(real == root or real.is_relative_to(root) for root in roots)


def check_inside(path: Path, roots: Sequence[Path], what: str) -> Path:
    """The real path of ``path`` (every existing link followed), which must lie inside one of
    ``roots``; ``what`` names the path in the error.

    Raises:
        DataError: the path leads outside every root, naming the path, where it leads and
            the roots.
    """
    real = path.resolve(strict=False)
    if _inside(real, roots):
        return real
    via = "" if real == Path(os.path.abspath(path)) else f" (it resolves to {str(real)!r})"
    raise DataError(
        f"{what} {str(path)!r}{via} is outside the allowed roots "
        f"{', '.join(repr(str(r)) for r in roots)}; refusing to use it (was a folder replaced "
        "by a symlink?)"
    )


def safe_relative(path: str, key: str) -> PurePosixPath:
    """``path`` as a relative POSIX path without ``..``; raises ConfigError naming ``key``."""
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ConfigError(
            f"{key} {path!r} must be a path relative to the LIGHTLY datasource, without '..'"
        )
    return rel


def materialise_input(access: DatasourceAccessData, cache_dir: Path) -> Path:
    """A local folder with the datasource's files: the folder itself for LOCAL, else a copy
    under ``cache_dir/<hash of the URL>`` (files already there are downloaded again).

    A LOCAL folder is returned as its real path, checked against the datasource's allowed
    roots (see :func:`check_inside`)."""
    fs, root = open_datasource(access)
    if access.type.value == "LOCAL":
        folder = check_inside(Path(root), local_roots(access), "INPUT datasource")
        if not folder.is_dir():
            raise DataError(f"INPUT datasource {access.full_path!r} is not an existing folder")
        return folder
    if not fs.exists(root):
        raise DataError(f"INPUT datasource {access.full_path!r} does not exist or is empty")
    digest = hashlib.sha256(f"{access.type.value}:{access.full_path}".encode()).hexdigest()
    target = cache_dir / digest[:16]
    target.mkdir(parents=True, exist_ok=True)
    for remote in fs.find(root):
        rel = PurePosixPath(remote).relative_to(root)
        if ".." in rel.parts:
            continue
        local = target.joinpath(*rel.parts)
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(local))
    return target


def fetch_file(access: DatasourceAccessData, relative: str, key: str, dest: Path) -> Path:
    """Copy ``relative`` (a file of the datasource named by config ``key``) to ``dest``.

    A LOCAL file is read from its real path, checked against the allowed roots first."""
    fs, root = open_datasource(access)
    rel = safe_relative(relative, key)
    remote = f"{root}/{rel.as_posix()}"
    if access.type.value == "LOCAL":
        remote = str(check_inside(Path(remote), local_roots(access), key))
    if not fs.isfile(remote):
        raise ConfigError(f"{key} {relative!r} does not exist in datasource {access.full_path!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fs.get_file(remote, str(dest))
    return dest


def output_files(
    local_dir: Path, source_roots: Sequence[Path] = ()
) -> list[tuple[Path, tuple[str, ...]]]:
    """The files of a run's output folder to upload: ``(real path, parts relative to
    local_dir)``, sorted, without internal state (``.selfsup/``) or temporary ``*.tmp`` files.

    A symlink (to a file or a folder) is followed only when it leads inside ``local_dir`` or
    one of ``source_roots``; anything else would copy a file from elsewhere on the worker
    into the datasource.

    Raises:
        DataError: a link leads outside, naming the link, its target and the roots.
    """
    top = local_dir.resolve()
    roots = [top, *(Path(r).resolve() for r in source_roots)]
    found: list[tuple[Path, tuple[str, ...]]] = []
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        here = Path(dirpath)
        rel = here.relative_to(top).parts
        if rel[:1] == (".selfsup",):
            dirnames.clear()
            continue
        real_dir = check_inside(here, roots, "output folder")
        if real_dir in seen:  # a link back to a folder already listed: no loops, no copies
            dirnames.clear()
            continue
        seen.add(real_dir)
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".tmp"):
                continue
            real = check_inside(here / name, roots, "output file")
            if real.is_file():
                found.append((real, (*rel, name)))
    return found


def upload_folder(
    local_dir: Path,
    access: DatasourceAccessData,
    folder: str,
    source_roots: Sequence[Path] = (),
    check: Callable[[], None] | None = None,
) -> str:
    """Upload every file under ``local_dir`` to ``<datasource>/<folder>/`` keeping the layout;
    returns the remote folder. Internal state (``.selfsup/``) is not uploaded.

    Args:
        local_dir: the run's output folder.
        access: the LIGHTLY datasource.
        folder: relative folder in the datasource (``runs/<run_id>``).
        source_roots: further folders that links inside ``local_dir`` may lead into
            (:func:`output_files`).
        check: called before each file; raising stops the upload (the worker stops when its
            lease is gone, so a run taken back never overwrites anything).

    Raises:
        DataError: a LOCAL destination resolves outside the datasource's allowed roots (it is
            resolved right before each write), or an output link leads outside.
    """
    fs, root = open_datasource(access)
    rel = safe_relative(folder, "output folder")
    remote_root = f"{root}/{rel.as_posix()}"
    local = access.type.value == "LOCAL"
    roots = local_roots(access) if local else []
    for path, parts in output_files(local_dir, source_roots):
        if check is not None:
            check()
        remote = f"{remote_root}/{'/'.join(parts)}"
        if local:
            target = Path(remote)
            # The parent is checked before it is created (makedirs through a link would
            # create folders outside), the file itself right before the write.
            check_inside(target.parent, roots, "output folder")
            fs.makedirs(str(target.parent), exist_ok=True)
            remote = str(check_inside(target, roots, "output file"))
        fs.put_file(str(path), remote)
    return remote_root
