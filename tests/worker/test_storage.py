"""Datasource access: local folders used in place, outputs uploaded with their layout, paths
from configs kept inside the datasource, errors naming what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from selfsup.errors import ConfigError, DataError
from selfsup.openapi_generated.swagger_client.models.datasource_data import DatasourceAccessData
from selfsup.worker import storage


def _access(kind: str, path: str, purpose: str = "LIGHTLY", **extra: Any) -> DatasourceAccessData:
    return DatasourceAccessData.model_validate(
        {"type": kind, "purpose": purpose, "full_path": path, **extra}
    )


def test_local_input_is_used_in_place_and_a_missing_one_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    assert storage.materialise_input(_access("LOCAL", str(tmp_path / "in"), "INPUT"), tmp_path) == (
        tmp_path / "in"
    )
    with pytest.raises(DataError, match="nope"):
        storage.materialise_input(_access("LOCAL", str(tmp_path / "nope"), "INPUT"), tmp_path)


def test_upload_keeps_the_layout_and_leaves_internal_state_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "filenames").mkdir(parents=True)
    (out / ".selfsup").mkdir()
    (out / "report.json").write_text("{}")
    (out / "filenames" / "sampled.txt").write_text("a.png\n")
    (out / ".selfsup" / "state.json").write_text("{}")
    target = tmp_path / "lightly"
    remote = storage.upload_folder(out, _access("LOCAL", str(target)), "runs/r1")
    assert Path(remote) == target / "runs" / "r1"
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == ["runs/r1/filenames/sampled.txt", "runs/r1/report.json"]


@pytest.mark.parametrize("bad", ["../secret.txt", "/etc/passwd", "a/../../b", ""])
def test_config_paths_must_stay_inside_the_datasource(bad: str) -> None:
    with pytest.raises(ConfigError, match="relative to the LIGHTLY datasource"):
        storage.safe_relative(bad, "relevant_filenames_file")


def test_fetch_file_copies_and_names_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "ds" / "lists").mkdir(parents=True)
    (tmp_path / "ds" / "lists" / "keep.txt").write_text("x.png\n")
    access = _access("LOCAL", str(tmp_path / "ds"))
    got = storage.fetch_file(access, "lists/keep.txt", "relevant_filenames_file", tmp_path / "k")
    assert got.read_text() == "x.png\n"
    with pytest.raises(ConfigError, match=r"relevant_filenames_file 'gone\.txt' does not exist"):
        storage.fetch_file(access, "gone.txt", "relevant_filenames_file", tmp_path / "g")


def test_s3_without_credentials_names_the_missing_key() -> None:
    access = _access("S3", "s3://bucket/x/", options={"s3_region": "eu-central-1"})
    with pytest.raises(ConfigError, match="s3_access_key_id"):
        storage.open_datasource(access)
