"""selfsup.utils.names: any file name survives every output format byte for byte."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsup.curation.manifest import (
    SampleRecord,
    read_filename_table,
    read_manifest,
    write_corrupt_filenames,
    write_manifest,
)
from selfsup.curation.pipeline import write_selection_csv
from selfsup.utils.io import load_embeddings, save_embeddings
from selfsup.utils.names import (
    display_name,
    dumps_json,
    is_text_name,
    name_from_bytes,
    name_to_bytes,
)

# A Linux file name: any bytes but "/" and NUL.
file_names = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b)


@settings(max_examples=200, deadline=None)
@given(raw=file_names)
def test_bytes_to_name_and_back(raw: bytes) -> None:
    name = name_from_bytes(raw)
    assert name_to_bytes(name) == raw
    assert is_text_name(name) == _is_utf8(raw)
    display_name(name).encode("utf-8")  # always printable text
    text = dumps_json({"filename": name})
    text.encode("utf-8")  # valid UTF-8 JSON ...
    assert name_to_bytes(json.loads(text)["filename"]) == raw  # ... read back exactly


@settings(max_examples=40, deadline=None)
@given(raws=st.lists(file_names, min_size=1, max_size=6, unique=True))
def test_run_folder_formats_round_trip(raws: list[bytes]) -> None:
    names = [name_from_bytes(r) for r in raws]
    records = [
        SampleRecord(
            id=i,
            filename=n,
            source=n,
            frame_index=None,
            file_size=1,
            mtime_ns=1,
            status="corrupt",
            detail="x",
        )
        for i, n in enumerate(names)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_manifest(folder / "manifest.jsonl", records)
        assert [r.filename for r in read_manifest(folder / "manifest.jsonl").records] == names
        (folder / "manifest.jsonl").read_bytes().decode("utf-8")
        write_corrupt_filenames(folder / "corrupt.txt", records)
        assert [row[0] for row in read_filename_table(folder / "corrupt.txt")] == names
        csv_names = [n for n in names if "\n" not in n and "\r" not in n]
        if csv_names:
            n = len(csv_names)
            save_embeddings(folder / "e.csv", np.ones((n, 2), np.float32), [0] * n, csv_names)
            assert load_embeddings(folder / "e.csv")[2] == csv_names
            write_selection_csv(
                folder / "selection.csv",
                csv_names,
                np.arange(n),
                np.zeros(n),
                np.zeros(n),
                np.full(n, -1),
                [],
                np.zeros(0, np.int64),
            )
            with open(folder / "selection.csv", encoding="utf-8", errors="surrogateescape") as fh:
                assert [row["filename"] for row in csv.DictReader(fh)] == csv_names


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_display_name_shows_bytes() -> None:
    assert display_name(name_from_bytes(b"caf\xe9.png")) == "caf\\xe9.png"
    assert display_name("café.png") == "café.png"
