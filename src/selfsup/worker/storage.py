"""Datasources through fsspec: materialise the INPUT datasource as a local folder, read files
from and upload a run's outputs to the LIGHTLY datasource.

LOCAL datasources are used in place; S3, GCS and Azure ones are downloaded into a cache
folder (the pipeline decodes every file several times, so a local copy is cheaper than
streaming). The S3 endpoint of an S3-compatible store (MinIO, moto, Ceph) is read from the
datasource option ``s3_endpoint_url`` when the server has one, else from
``$SELFSUP_S3_ENDPOINT_URL``: the server's S3 config has no endpoint field.
"""

from __future__ import annotations

import hashlib
import json
import os
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
    under ``cache_dir/<hash of the URL>`` (files already there are downloaded again)."""
    fs, root = open_datasource(access)
    if access.type.value == "LOCAL":
        folder = Path(root)
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
    """Copy ``relative`` (a file of the datasource named by config ``key``) to ``dest``."""
    fs, root = open_datasource(access)
    rel = safe_relative(relative, key)
    remote = f"{root}/{rel.as_posix()}"
    if not fs.isfile(remote):
        raise ConfigError(f"{key} {relative!r} does not exist in datasource {access.full_path!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fs.get_file(remote, str(dest))
    return dest


def upload_folder(local_dir: Path, access: DatasourceAccessData, folder: str) -> str:
    """Upload every file under ``local_dir`` to ``<datasource>/<folder>/`` keeping the layout;
    returns the remote folder. Internal state (``.selfsup/``) is not uploaded."""
    fs, root = open_datasource(access)
    rel = safe_relative(folder, "output folder")
    remote_root = f"{root}/{rel.as_posix()}"
    for path in sorted(local_dir.rglob("*")):
        if not path.is_file():
            continue
        parts = path.relative_to(local_dir).parts
        if parts[0] == ".selfsup" or parts[-1].endswith(".tmp"):
            continue
        remote = f"{remote_root}/{'/'.join(parts)}"
        if access.type.value == "LOCAL":
            fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), remote)
    return remote_root
