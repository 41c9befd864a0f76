"""Data curation: the steps of a curation run over a folder of images and videos.

This package holds the first steps, which need no model: the manifest of samples
(:mod:`~selfsup.curation.manifest`), the scan and the one-pass corruptness check with content
hashes, exact duplicates and computed metadata (:mod:`~selfsup.curation.checks`,
:mod:`~selfsup.curation.metadata`, :mod:`~selfsup.curation.video`), and
``relevant_filenames_file`` filtering (:mod:`~selfsup.curation.relevant`).

Names are loaded on first access: worker processes of the check import only
``selfsup.curation._decode``, and must not pay for importing the rest (or torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfsup.curation.checks import (
        DEFAULT_MAX_IMAGE_PIXELS,
        CheckOptions,
        CheckResult,
        FileEntry,
        build_manifest,
        canonical_pixels,
        check_file,
        check_files,
        duplicate_groups,
        file_hash,
        mark_exact_duplicates,
        pixel_hash,
        raise_if_all_corrupt,
        resolve_num_workers,
        scan_files,
    )
    from selfsup.curation.manifest import (
        CHECK_VERSION,
        CorruptReason,
        Manifest,
        SampleRecord,
        SampleStatus,
        assign_ids,
        count_by_reason,
        count_by_status,
        default_manifest_path,
        read_filename_list,
        read_filename_table,
        read_manifest,
        write_corrupt_filenames,
        write_duplicate_filenames,
        write_manifest,
    )
    from selfsup.curation.metadata import (
        METADATA_KEYS,
        ImageMetadata,
        compute_image_metadata,
        metadata_table,
    )
    from selfsup.curation.relevant import (
        RelevantMatcher,
        RelevantPattern,
        filter_relevant,
        parse_relevant_line,
        parse_relevant_patterns,
        read_relevant_filenames_file,
        unmatched_patterns,
    )
    from selfsup.curation.video import video_frame_filename

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        [
            "DEFAULT_MAX_IMAGE_PIXELS",
            "CheckOptions",
            "CheckResult",
            "FileEntry",
            "build_manifest",
            "canonical_pixels",
            "check_file",
            "check_files",
            "duplicate_groups",
            "file_hash",
            "mark_exact_duplicates",
            "pixel_hash",
            "raise_if_all_corrupt",
            "resolve_num_workers",
            "scan_files",
        ],
        "checks",
    ),
    **dict.fromkeys(
        [
            "CHECK_VERSION",
            "CorruptReason",
            "Manifest",
            "SampleRecord",
            "SampleStatus",
            "assign_ids",
            "count_by_reason",
            "count_by_status",
            "default_manifest_path",
            "read_filename_list",
            "read_filename_table",
            "read_manifest",
            "write_corrupt_filenames",
            "write_duplicate_filenames",
            "write_manifest",
        ],
        "manifest",
    ),
    **dict.fromkeys(
        ["METADATA_KEYS", "ImageMetadata", "compute_image_metadata", "metadata_table"],
        "metadata",
    ),
    **dict.fromkeys(
        [
            "RelevantMatcher",
            "RelevantPattern",
            "filter_relevant",
            "parse_relevant_line",
            "parse_relevant_patterns",
            "read_relevant_filenames_file",
            "unmatched_patterns",
        ],
        "relevant",
    ),
    "video_frame_filename": "video",
}

__all__ = [
    "CHECK_VERSION",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "METADATA_KEYS",
    "CheckOptions",
    "CheckResult",
    "CorruptReason",
    "FileEntry",
    "ImageMetadata",
    "Manifest",
    "RelevantMatcher",
    "RelevantPattern",
    "SampleRecord",
    "SampleStatus",
    "assign_ids",
    "build_manifest",
    "canonical_pixels",
    "check_file",
    "check_files",
    "compute_image_metadata",
    "count_by_reason",
    "count_by_status",
    "default_manifest_path",
    "duplicate_groups",
    "file_hash",
    "filter_relevant",
    "mark_exact_duplicates",
    "metadata_table",
    "parse_relevant_line",
    "parse_relevant_patterns",
    "pixel_hash",
    "raise_if_all_corrupt",
    "read_filename_list",
    "read_filename_table",
    "read_manifest",
    "read_relevant_filenames_file",
    "resolve_num_workers",
    "scan_files",
    "unmatched_patterns",
    "video_frame_filename",
    "write_corrupt_filenames",
    "write_duplicate_filenames",
    "write_manifest",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'selfsup.curation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"selfsup.curation.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
