"""Manifest records, their JSON-lines file and the filename lists."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from selfsup.curation.manifest import (
    CHECK_VERSION,
    CorruptReason,
    SampleRecord,
    assign_ids,
    count_by_reason,
    count_by_status,
    read_filename_list,
    read_filename_table,
    read_manifest,
    write_corrupt_filenames,
    write_duplicate_filenames,
    write_manifest,
)
from selfsup.errors import DataError


def _records() -> list[SampleRecord]:
    ok = SampleRecord(
        id=0,
        filename="a/img 1.png",
        source="a/img 1.png",
        frame_index=None,
        file_size=1234,
        mtime_ns=1_700_000_000_123_456_789,
        file_hash="ab" * 16,
        pixel_hash="cd" * 16,
        format="PNG",
        width=32,
        height=24,
        brightness=101.25,
        contrast=12.5,
        sharpness=1e6,
        saturation=0.0,
    )
    corrupt = SampleRecord(
        id=1,
        filename="b/ünïcode.jpg",
        source="b/ünïcode.jpg",
        frame_index=None,
        file_size=0,
        mtime_ns=5,
        status="corrupt",
        reason=CorruptReason.EMPTY,
        detail="the file has 0 bytes",
    )
    frame = SampleRecord(
        id=2,
        filename="v/clip-07-mp4.png",
        source="v/clip.mp4",
        frame_index=7,
        file_size=999,
        mtime_ns=6,
        pixel_hash="cd" * 16,
        width=32,
        height=24,
        status="duplicate",
        duplicate_of="a/img 1.png",
        warning="odd",
    )
    return [ok, corrupt, frame]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "data" / "manifest.jsonl"
    records = _records()
    write_manifest(path, records)
    manifest = read_manifest(path)
    assert list(manifest.records) == records
    assert manifest.check_version == CHECK_VERSION
    assert isinstance(manifest.records[1].reason, CorruptReason)
    # No temporary file is left beside the manifest.
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.jsonl"]


def test_older_manifest_without_optional_keys_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    header = {"format": "selfsup-manifest", "version": 1}
    row = {
        "id": 0,
        "filename": "x.png",
        "source": "x.png",
        "frame_index": None,
        "file_size": 3,
        "mtime_ns": 4,
        "a_future_key": [1, 2],
    }
    path.write_text(json.dumps(header) + "\n" + json.dumps(row) + "\n\n")
    manifest = read_manifest(path)
    assert manifest.check_version == 0  # unknown: never reused
    (record,) = manifest.records
    assert record.status == "ok"
    assert record.pixel_hash is None
    assert record.detail == ""


def test_check_version_1_manifest_loads_without_quality_scores(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    header = {"format": "selfsup-manifest", "version": 1, "check_version": 1}
    row = {
        "id": 0,
        "filename": "x.png",
        "source": "x.png",
        "frame_index": None,
        "file_size": 3,
        "mtime_ns": 4,
        "brightness": 10.0,
    }
    path.write_text(json.dumps(header) + "\n" + json.dumps(row) + "\n")
    manifest = read_manifest(path)
    assert manifest.check_version == 1  # not the current version: its records are re-checked
    (record,) = manifest.records
    assert record.brightness == 10.0
    assert (record.overexposure, record.blur, record.entropy, record.channel_spread) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"format": "other"}'], r"m\.jsonl:1: not a selfsup manifest"),
        (['{"format": "selfsup-manifest", "version": 99}'], "version 99 is not supported"),
        (['{"format": "selfsup-manifest", "version": 1}', "{not json"], r"m\.jsonl:2: not valid"),
        (
            ['{"format": "selfsup-manifest", "version": 1}', '{"id": 0, "filename": "x"}'],
            r"m\.jsonl:2: record lacks the required key\(s\) source, frame_index",
        ),
        (
            [
                '{"format": "selfsup-manifest", "version": 1}',
                '{"id": "0", "filename": "x", "source": "x", "frame_index": null, '
                '"file_size": 1, "mtime_ns": 1}',
            ],
            "key 'id' must be an integer",
        ),
        (
            [
                '{"format": "selfsup-manifest", "version": 1}',
                '{"id": 0, "filename": "x", "source": "x", "frame_index": null, '
                '"file_size": 1, "mtime_ns": 1, "status": "weird"}',
            ],
            "status 'weird' is not one of corrupt, duplicate, ok",
        ),
        (
            [
                '{"format": "selfsup-manifest", "version": 1}',
                '{"id": 0, "filename": "x", "source": "x", "frame_index": null, '
                '"file_size": 1, "mtime_ns": 1, "reason": "gremlins"}',
            ],
            "reason 'gremlins' is not one of empty",
        ),
        ([""], "empty file"),
    ],
)
def test_bad_manifest_names_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        read_manifest(path)


def test_assign_ids_orders_by_source_then_frame() -> None:
    def rec(source: str, frame: int | None) -> SampleRecord:
        name = source if frame is None else f"{source}-{frame}"
        return SampleRecord(id=-1, filename=name, source=source, frame_index=frame,
                            file_size=0, mtime_ns=0)  # fmt: skip

    shuffled = [rec("b.png", None), rec("a.mp4", 1), rec("a.mp4", None), rec("a.mp4", 0)]
    ordered = assign_ids(shuffled)
    assert [(r.source, r.frame_index) for r in ordered] == [
        ("a.mp4", None),
        ("a.mp4", 0),
        ("a.mp4", 1),
        ("b.png", None),
    ]
    assert [r.id for r in ordered] == [0, 1, 2, 3]
    assert [r.id for r in shuffled] == [-1, -1, -1, -1]  # input untouched


def test_counts() -> None:
    records = _records()
    assert count_by_status(records) == {"ok": 1, "corrupt": 1, "duplicate": 1}
    more = [*records, replace(records[1], filename="z", reason=CorruptReason.TRUNCATED)]
    assert count_by_reason(more) == {"empty": 1, "truncated": 1}


def test_metadata_view() -> None:
    meta = _records()[0].metadata()
    assert meta["brightness"] == 101.25
    assert meta["file_size"] == 1234
    assert meta["width"] == 32


def test_filename_lists(tmp_path: Path) -> None:
    records = _records()
    corrupt_path = tmp_path / "filenames" / "corrupt_filenames.txt"
    duplicate_path = tmp_path / "filenames" / "duplicate_filenames.txt"
    assert write_corrupt_filenames(corrupt_path, records) == 1
    assert write_duplicate_filenames(duplicate_path, records) == 1
    assert corrupt_path.read_text(encoding="utf-8") == (
        "b/ünïcode.jpg\tempty\tthe file has 0 bytes\n"
    )
    assert duplicate_path.read_text(encoding="utf-8") == "v/clip-07-mp4.png\ta/img 1.png\n"
    assert read_filename_list(corrupt_path) == ["b/ünïcode.jpg"]
    assert read_filename_table(duplicate_path) == [["v/clip-07-mp4.png", "a/img 1.png"]]


def test_filename_list_escapes_separators_in_names(tmp_path: Path) -> None:
    odd = "we\tird\\na\nme.png"
    record = replace(
        _records()[1],
        filename=odd,
        detail="multi\nline  message",
    )
    path = tmp_path / "c.txt"
    write_corrupt_filenames(path, [record])
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") == 1  # one line per sample, whatever the name holds
    assert read_filename_table(path) == [[odd, "empty", "multi line message"]]
