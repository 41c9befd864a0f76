"""Scan, corruptness check, exact duplicates, metadata in records, reuse, all-corrupt error."""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from _imports import loaded_after
from selfsup.curation import checks
from selfsup.curation._decode import _crashed
from selfsup.curation.checks import (
    CheckOptions,
    FileEntry,
    build_manifest,
    check_file,
    check_files,
    duplicate_groups,
    mark_exact_duplicates,
    pixel_hash,
    raise_if_all_corrupt,
    resolve_num_workers,
    scan_files,
)
from selfsup.curation.manifest import (
    CorruptReason,
    SampleRecord,
    read_manifest,
    write_manifest,
)
from selfsup.errors import DataError

FolderFactory = Callable[..., Path]


def _by_name(records: list[SampleRecord]) -> dict[str, SampleRecord]:
    return {r.filename: r for r in records}


def _save(arr: np.ndarray, path: Path, fmt: str | None = None, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path, format=fmt)
    return path


def _noise(seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ corrupt files


def test_planted_corrupt_files_have_the_right_reason(
    make_image_folder: FolderFactory, corrupt_files: Callable[..., list[str]], tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=3, root=tmp_path / "data")
    corrupt_files(root / "class_0")
    result = build_manifest(root, progress=False)
    records = _by_name(result.records)
    assert records["class_0/truncated.jpg"].reason == CorruptReason.TRUNCATED
    assert records["class_0/empty.png"].reason == CorruptReason.EMPTY
    assert records["class_0/notimage.png"].reason == CorruptReason.UNKNOWN_FORMAT
    assert "this is not an i" in records["class_0/notimage.png"].detail
    corrupt = sorted(r.filename for r in result.records if r.status == "corrupt")
    assert corrupt == ["class_0/empty.png", "class_0/notimage.png", "class_0/truncated.jpg"]
    ok = [r for r in result.records if r.is_ok]
    assert len(ok) == 6
    assert all(r.reason is None and r.pixel_hash and r.brightness is not None for r in ok)
    assert all(r.pixel_hash is None and r.brightness is None for r in result.records if not r.is_ok)


def test_png_named_jpg_is_not_corrupt_but_warned(tmp_path: Path) -> None:
    _save(_noise(0), tmp_path / "really_a_png.jpg", fmt="PNG")
    (record,) = build_manifest(tmp_path, progress=False).records
    assert record.status == "ok"
    assert record.format == "PNG"
    assert record.warning == "the file is named .jpg but its content is PNG"


@pytest.mark.parametrize(
    ("cut", "reason"),
    [(0.5, CorruptReason.TRUNCATED), (10, CorruptReason.TRUNCATED)],
)
def test_truncated_png(tmp_path: Path, cut: float, reason: CorruptReason) -> None:
    buf = io.BytesIO()
    Image.fromarray(_noise(1, 32)).save(buf, format="PNG")
    data = buf.getvalue()
    keep = int(len(data) * cut) if cut < 1 else int(cut)
    (tmp_path / "cut.png").write_bytes(data[:keep])
    (tmp_path / "good.png").write_bytes(data)
    records = _by_name(build_manifest(tmp_path, progress=False).records)
    assert records["cut.png"].reason == reason
    assert records["good.png"].status == "ok"


def test_damaged_png_data_is_a_decode_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_noise(1, 32)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    middle = len(data) // 2
    data[middle : middle + 200] = b"\x55" * 200  # inside the compressed pixel data
    (tmp_path / "bad.png").write_bytes(bytes(data))
    (record,) = check_file(tmp_path, scan_files(tmp_path)[0])
    assert record.status == "corrupt"
    assert record.reason == CorruptReason.DECODE_ERROR


def test_unreadable_files(tmp_path: Path) -> None:
    _save(_noise(2), tmp_path / "ok.png")
    os.symlink(tmp_path / "missing.png", tmp_path / "dangling.png")
    records = _by_name(build_manifest(tmp_path, progress=False).records)
    # The scan finds the broken link without opening anything and names its kind.
    assert records["dangling.png"].reason == CorruptReason.DANGLING_SYMLINK
    assert "does not exist" in records["dangling.png"].detail
    # Permission denied: a FileEntry whose file vanished between scan and check.
    entry = FileEntry("gone.png", 10, 1)
    (record,) = check_file(tmp_path, entry)
    assert record.reason == CorruptReason.UNREADABLE
    assert "cannot read" in record.detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_permission_denied_is_unreadable(tmp_path: Path) -> None:
    path = _save(_noise(3), tmp_path / "secret.png")
    path.chmod(0)
    try:
        (record,) = check_file(tmp_path, scan_files(tmp_path)[0])
    finally:
        path.chmod(0o644)
    assert record.reason == CorruptReason.UNREADABLE


def test_pixel_limit_guards_against_decompression_bombs(tmp_path: Path) -> None:
    _save(_noise(4, 32), tmp_path / "big.png")
    old_limit, old_truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    (refused,) = check_files(
        tmp_path, scan_files(tmp_path), max_image_pixels=1000, progress=False
    ).records
    assert refused.reason == CorruptReason.TOO_LARGE
    assert "32x32 = 1024 pixels" in refused.detail
    assert "max_image_pixels=1000" in refused.detail
    assert (refused.width, refused.height) == (32, 32)
    (accepted,) = check_files(
        tmp_path, scan_files(tmp_path), max_image_pixels=None, progress=False
    ).records
    assert accepted.status == "ok"
    # PIL's process-wide settings are restored after the check.
    assert (old_limit, old_truncated) == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_pil_truncation_setting_does_not_hide_truncated_files(
    corrupt_files: Callable[..., list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    corrupt_files(tmp_path, names=("truncated.jpg",))
    (record,) = check_file(tmp_path, scan_files(tmp_path)[0])
    assert record.reason == CorruptReason.TRUNCATED
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_crashed_worker_becomes_a_corrupt_record() -> None:
    (record,) = _crashed(FileEntry("x/bomb.png", 5, 6), "the worker process died (signal 9)")
    assert record.filename == "x/bomb.png"
    assert record.file_size == 5
    assert record.reason == CorruptReason.WORKER_CRASHED
    assert "signal 9" in record.detail


# ------------------------------------------------------------------------------ all corrupt


def test_all_corrupt_input_raises_with_counts(
    corrupt_files: Callable[..., list[str]], tmp_path: Path
) -> None:
    root = tmp_path / "bad_inputs"
    corrupt_files(root, names=("truncated.jpg", "truncated2.jpg", "empty.png", "notimage.png"))
    with pytest.raises(DataError) as info:
        build_manifest(root, progress=False)
    message = str(info.value)
    assert "all 4 samples in input folder" in message
    assert "bad_inputs" in message
    assert "2 truncated" in message
    assert "1 empty" in message
    assert "1 unknown_format" in message


def test_empty_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images or videos found in input folder"):
        build_manifest(tmp_path, progress=False)
    with pytest.raises(DataError, match="no images or videos"):
        raise_if_all_corrupt([], tmp_path)


# ------------------------------------------------------------------------------ duplicates


def test_exact_duplicates(tmp_path: Path) -> None:
    base = _noise(10)
    _save(base, tmp_path / "b_original.png")
    (tmp_path / "a_copy.png").write_bytes((tmp_path / "b_original.png").read_bytes())
    _save(base, tmp_path / "c_same_pixels.bmp")
    changed = base.copy()
    changed[3, 4, 1] ^= 1  # one pixel, one bit
    _save(changed, tmp_path / "d_one_pixel_off.png")
    _save(_noise(11), tmp_path / "e_other.png")
    records = build_manifest(tmp_path, progress=False).records
    status = {r.filename: (r.status, r.duplicate_of) for r in records}
    assert status == {
        "a_copy.png": ("ok", None),  # first by sorted path is kept
        "b_original.png": ("duplicate", "a_copy.png"),
        "c_same_pixels.bmp": ("duplicate", "a_copy.png"),
        "d_one_pixel_off.png": ("ok", None),
        "e_other.png": ("ok", None),
    }
    assert duplicate_groups(records) == {"a_copy.png": ["b_original.png", "c_same_pixels.bmp"]}
    by_bytes = {r.filename: r.status for r in mark_exact_duplicates(records, by="bytes")}
    assert by_bytes["b_original.png"] == "duplicate"
    assert by_bytes["c_same_pixels.bmp"] == "ok"  # same pixels, different bytes
    no_dedup = build_manifest(tmp_path, remove_exact_duplicates=False, progress=False).records
    assert all(r.status == "ok" for r in no_dedup)


def test_kept_file_does_not_depend_on_record_order(tmp_path: Path) -> None:
    base = _noise(12)
    for name in ["z.png", "m/y.png", "a/b/x.png", "k.png"]:
        _save(base, tmp_path / name)
    records = check_files(tmp_path, scan_files(tmp_path), progress=False).records
    expected = mark_exact_duplicates(records)
    for seed in range(5):
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        marked = {r.filename: (r.status, r.duplicate_of) for r in mark_exact_duplicates(shuffled)}
        assert marked == {r.filename: (r.status, r.duplicate_of) for r in expected}
    assert {r.duplicate_of for r in expected if r.status == "duplicate"} == {"a/b/x.png"}
    # Marking is idempotent and pure.
    assert mark_exact_duplicates(expected) == expected
    assert all(r.status == "ok" for r in records)


def test_canonical_pixels_make_modes_comparable() -> None:
    gray = np.random.default_rng(13).integers(0, 256, size=(8, 8), dtype=np.uint8)
    as_l = Image.fromarray(gray, mode="L")
    as_rgb = Image.fromarray(np.repeat(gray[..., None], 3, axis=2), mode="RGB")
    assert pixel_hash(as_l) == pixel_hash(as_rgb)
    assert pixel_hash(as_l.convert("P")) == pixel_hash(as_rgb)  # palette without loss
    opaque = as_rgb.convert("RGBA")
    assert pixel_hash(opaque) == pixel_hash(as_rgb)  # a fully opaque alpha adds nothing
    rgba = np.array(opaque)
    rgba[0, 0, 3] = 10
    translucent = Image.fromarray(rgba, mode="RGBA")
    assert pixel_hash(translucent) != pixel_hash(as_rgb)
    assert pixel_hash(as_rgb.resize((8, 7))) != pixel_hash(as_rgb)
    # 16-bit data is compared as stored, not after a lossy conversion.
    deep = Image.fromarray(gray.astype(np.uint16) * 256)
    assert deep.mode == "I;16"
    assert pixel_hash(deep) != pixel_hash(as_l)


def test_same_pixels_different_modes_on_disk_are_duplicates(tmp_path: Path) -> None:
    gray = np.random.default_rng(14).integers(0, 256, size=(8, 8), dtype=np.uint8)
    _save(gray, tmp_path / "a_gray.png", mode="L")
    _save(np.repeat(gray[..., None], 3, axis=2), tmp_path / "b_rgb.bmp")
    records = _by_name(build_manifest(tmp_path, progress=False).records)
    assert records["b_rgb.bmp"].duplicate_of == "a_gray.png"


# ------------------------------------------------------------------------------ metadata


def test_metadata_in_records(tmp_path: Path) -> None:
    _save(np.full((6, 10, 3), 77, dtype=np.uint8), tmp_path / "flat.png")
    yy, xx = np.indices((8, 8))
    board = np.where((yy + xx) % 2 == 0, 255, 0).astype(np.uint8)
    _save(np.repeat(board[..., None], 3, axis=2), tmp_path / "board.png")
    records = _by_name(build_manifest(tmp_path, progress=False).records)
    flat, checker = records["flat.png"], records["board.png"]
    assert (flat.width, flat.height) == (10, 6)
    assert flat.brightness == 77.0
    assert flat.contrast == 0.0
    assert flat.sharpness == 0.0
    assert flat.saturation == 0.0
    assert checker.sharpness == pytest.approx(1020.0**2)
    assert checker.brightness == pytest.approx(127.5)
    assert flat.file_size == (tmp_path / "flat.png").stat().st_size
    assert flat.metadata()["file_size"] == flat.file_size


# ------------------------------------------------------------------------------ scan, relevant


def test_scan_entries(make_image_folder: FolderFactory, tmp_path: Path) -> None:
    root = make_image_folder(n_classes=2, n_per_class=2, root=tmp_path / "d")
    (root / ".selfsup").mkdir()
    _save(_noise(1), root / ".selfsup" / "thumb.png")  # hidden: tool state, not a sample
    entries = scan_files(root)
    assert [e.path for e in entries] == [
        "class_0/img_0_0.png",
        "class_0/img_0_1.png",
        "class_1/img_1_0.png",
        "class_1/img_1_1.png",
    ]
    st = (root / "class_0/img_0_0.png").stat()
    assert (entries[0].size, entries[0].mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert not any(e.is_video or e.error for e in entries)


def test_relevant_filenames_file_restricts_the_run(
    make_image_folder: FolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=3, root=tmp_path / "d")
    listing = tmp_path / ".lightly" / "relevant_filenames.txt"
    listing.parent.mkdir()
    listing.write_text("# keep class 1 except one\nclass_1/*\n!class_1/img_1_2.png\n")
    result = build_manifest(root, relevant_filenames_file=listing, progress=False)
    assert [r.filename for r in result.records] == ["class_1/img_1_0.png", "class_1/img_1_1.png"]
    listing.write_text("class_9/*\n")
    with pytest.raises(DataError, match=r"selects none of the 6 files in input folder"):
        build_manifest(root, relevant_filenames_file=listing, progress=False)
    listing.write_text("class_1/*\n/abs/path.png\n")
    with pytest.raises(DataError, match=r"relevant_filenames\.txt:2"):
        build_manifest(root, relevant_filenames_file=listing, progress=False)


# ------------------------------------------------------------------------------ reuse


def test_rerun_reuses_unchanged_files(
    make_image_folder: FolderFactory,
    corrupt_files: Callable[..., list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=4, root=tmp_path / "d")
    corrupt_files(root, names=("empty.png",))
    first = build_manifest(root, progress=False)
    manifest_path = tmp_path / "out" / "data" / "manifest.jsonl"
    write_manifest(manifest_path, first.records)

    decoded: list[str] = []
    real_check_file = checks.check_file

    def counting_check_file(
        root: str | os.PathLike[str], entry: FileEntry, options: CheckOptions
    ) -> list[SampleRecord]:
        decoded.append(entry.path)
        return real_check_file(root, entry, options)

    monkeypatch.setattr(checks, "check_file", counting_check_file)
    second = build_manifest(root, previous=read_manifest(manifest_path), progress=False)
    assert decoded == ["empty.png"]  # corrupt files are always checked again
    assert (second.n_decoded, second.n_reused, second.n_files) == (1, 4, 5)
    assert second.records == first.records

    # A changed file (new mtime) and a new file are decoded; the rest is reused.
    decoded.clear()
    changed = root / "class_0" / "img_0_1.png"
    _save(np.zeros((32, 32, 3), dtype=np.uint8), changed)
    os.utime(changed, ns=(1, 1_000_000_000))
    _save(_noise(9), root / "class_0" / "new.png")
    third = build_manifest(root, previous=second.records, progress=False)
    assert sorted(decoded) == ["class_0/img_0_1.png", "class_0/new.png", "empty.png"]
    assert _by_name(third.records)["class_0/img_0_1.png"].brightness == 0.0
    assert [r.id for r in third.records] == list(range(6))

    # Records from checks of another version are not trusted.
    decoded.clear()
    stale = replace(read_manifest(manifest_path), check_version=0)
    build_manifest(root, previous=stale, progress=False)
    assert len(decoded) == 6  # every file, the new one included


def test_duplicate_status_is_recomputed_on_reuse(tmp_path: Path) -> None:
    _save(_noise(5), tmp_path / "a.png")
    _save(_noise(5), tmp_path / "b.png")
    first = build_manifest(tmp_path, progress=False).records
    assert _by_name(first)["b.png"].status == "duplicate"
    (tmp_path / "a.png").unlink()
    second = build_manifest(tmp_path, previous=first, progress=False).records
    assert [(r.filename, r.status, r.duplicate_of) for r in second] == [("b.png", "ok", None)]


# ------------------------------------------------------------------------------ parallel


def test_process_pool_gives_the_same_records_as_in_process(
    make_image_folder: FolderFactory,
    make_video: Callable[..., Path],
    corrupt_files: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=5, root=tmp_path / "d")
    corrupt_files(root / "class_1")
    make_video(name="clip.avi", n_frames=5, root=root)
    (root / "dup.png").write_bytes((root / "class_0" / "img_0_0.png").read_bytes())
    serial = build_manifest(root, num_workers=0, progress=False)
    parallel = build_manifest(root, num_workers=2, chunksize=3, progress=False)
    assert parallel.records == serial.records
    assert parallel.n_decoded == serial.n_decoded == 15


def test_resolve_num_workers() -> None:
    assert resolve_num_workers(0) == 0
    assert resolve_num_workers(3) == 3
    assert resolve_num_workers(-1) >= 1


def test_worker_side_imports_stay_light() -> None:
    """Workers import the main module and _decode; neither may pull in torch (seconds).

    They share the torch-free decoder and frame names of selfsup.data (_image, _video), but
    none of its torch modules (the datasets, the collate functions).
    """
    code = "import selfsup.curation._decode, selfsup.curation.checks, selfsup.curation"
    heavy = [
        "torch",
        "selfsup.data.dataset",
        "selfsup.data.collate",
        "selfsup.data.manifest_dataset",
    ]
    assert loaded_after(code, heavy) == []


def test_package_exports_resolve() -> None:
    import selfsup.curation as curation

    for name in curation.__all__:
        assert getattr(curation, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = curation.nope
