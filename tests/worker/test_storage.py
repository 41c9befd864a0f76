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


def _local(path: Path, root: Path, purpose: str = "LIGHTLY") -> DatasourceAccessData:
    return _access("LOCAL", str(path), purpose, allowed_roots=[str(root)])


def test_local_input_is_used_in_place_and_a_missing_one_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    access = _local(tmp_path / "in", tmp_path, "INPUT")
    assert storage.materialise_input(access, tmp_path) == (tmp_path / "in").resolve()
    with pytest.raises(DataError, match="nope"):
        storage.materialise_input(_local(tmp_path / "nope", tmp_path, "INPUT"), tmp_path)


def _swapped_for_a_link(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A root with a datasource folder that was replaced by a symlink to a folder outside."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (outside / "lists").mkdir(parents=True)
    (outside / "lists" / "keep.txt").write_text("secret.png\n")
    root.mkdir()
    (root / "ds").symlink_to(outside, target_is_directory=True)
    return root, root / "ds", outside


def test_a_local_input_replaced_by_a_link_outside_the_roots_is_refused(tmp_path: Path) -> None:
    root, ds, outside = _swapped_for_a_link(tmp_path)
    with pytest.raises(DataError, match="outside the allowed roots") as info:
        storage.materialise_input(_local(ds, root, "INPUT"), tmp_path / "cache")
    assert str(ds) in str(info.value)
    assert str(outside) in str(info.value)  # where it leads
    assert str(root) in str(info.value)  # what is allowed


def test_fetch_file_through_a_link_outside_the_roots_is_refused(tmp_path: Path) -> None:
    root, ds, _ = _swapped_for_a_link(tmp_path)
    with pytest.raises(DataError, match=r"relevant_filenames_file .* outside the allowed roots"):
        storage.fetch_file(
            _local(ds, root), "lists/keep.txt", "relevant_filenames_file", tmp_path / "k"
        )
    assert not (tmp_path / "k").exists()
    # A file inside the datasource that is itself a link out is refused as well.
    (root / "real").mkdir()
    (root / "real" / "list.txt").symlink_to(tmp_path / "outside" / "lists" / "keep.txt")
    with pytest.raises(DataError, match="outside the allowed roots"):
        storage.fetch_file(
            _local(root / "real", root), "list.txt", "relevant_filenames_file", tmp_path / "k"
        )


def test_upload_into_a_link_outside_the_roots_writes_nothing_there(tmp_path: Path) -> None:
    root, ds, outside = _swapped_for_a_link(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    with pytest.raises(DataError, match="outside the allowed roots"):
        storage.upload_folder(out, _local(ds, root), "runs/r1")
    assert not (outside / "runs").exists()
    # The run folder inside a sound datasource replaced by a link: checked before each write.
    (root / "sound" / "runs").mkdir(parents=True)
    (root / "sound" / "runs" / "r1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="outside the allowed roots"):
        storage.upload_folder(out, _local(root / "sound", root), "runs/r1")
    assert not (outside / "report.json").exists()


def test_links_in_the_outputs_that_lead_out_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    (out / "data" / "leak.txt").symlink_to(secret)
    with pytest.raises(DataError, match=r"output file .*leak\.txt.* outside the allowed roots"):
        storage.upload_folder(out, _local(root / "lightly", root), "runs/r1")
    assert not (root / "lightly" / "runs" / "r1" / "data" / "leak.txt").exists()
    (out / "data" / "leak.txt").unlink()
    (out / "data" / "etc").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(DataError, match=r"output folder .*etc.* outside the allowed roots"):
        storage.output_files(out)
    # A link that stays inside the output folder (or a given source root) is followed.
    (out / "data" / "etc").unlink()
    (out / "data" / "report_copy.json").symlink_to(out / "report.json")
    (out / "data" / "input.txt").symlink_to(secret)
    files = storage.output_files(out, source_roots=[tmp_path])
    assert [parts for _, parts in files] == [
        ("report.json",),
        ("data", "input.txt"),
        ("data", "report_copy.json"),
    ]


def test_a_local_datasource_without_allowed_roots_means_the_server_is_too_old(
    tmp_path: Path,
) -> None:
    (tmp_path / "in").mkdir()
    access = _access("LOCAL", str(tmp_path / "in"), "INPUT")
    with pytest.raises(ConfigError, match=r"without allowed_roots.*server is too old"):
        storage.materialise_input(access, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigError, match="server is too old"):
        storage.upload_folder(out, _access("LOCAL", str(tmp_path / "l")), "runs/r1")


def test_upload_keeps_the_layout_and_leaves_internal_state_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "filenames").mkdir(parents=True)
    (out / ".selfsup").mkdir()
    (out / "report.json").write_text("{}")
    (out / "filenames" / "sampled.txt").write_text("a.png\n")
    (out / ".selfsup" / "state.json").write_text("{}")
    target = tmp_path / "lightly"
    remote = storage.upload_folder(out, _local(target, tmp_path), "runs/r1")
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
    access = _local(tmp_path / "ds", tmp_path)
    got = storage.fetch_file(access, "lists/keep.txt", "relevant_filenames_file", tmp_path / "k")
    assert got.read_text() == "x.png\n"
    with pytest.raises(ConfigError, match=r"relevant_filenames_file 'gone\.txt' does not exist"):
        storage.fetch_file(access, "gone.txt", "relevant_filenames_file", tmp_path / "g")


def test_s3_without_credentials_names_the_missing_key() -> None:
    access = _access("S3", "s3://bucket/x/", options={"s3_region": "eu-central-1"})
    with pytest.raises(ConfigError, match="s3_access_key_id"):
        storage.open_datasource(access)
