"""A run over file names a user's folder can hold: none may end or corrupt the run.

Names are bytes on Linux; every output keeps them exact (see selfsup.utils.names) and the
run finishes with the hostile names selected.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from faults._input_helpers import (
    corrupt_table,
    exact_lines,
    manifest_names,
    report,
    run_config,
    tiny_checkpoint,
    write_png,
)
from selfsup.curation.pipeline import run
from selfsup.utils.io import load_embeddings
from selfsup.utils.names import NAME_ERRORS, name_from_bytes, name_to_bytes

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(120)]

HOSTILE: list[bytes] = [
    b"caf\xe9.png",  # Latin-1, not UTF-8
    b"\xff\xfe-not-utf8.png",
    b"tab\there.png",
    b"-leading-dash.png",
    b"--help.png",
    b'co,mma "quote".png',
    b"back\\slash.png",
    b"\xc3\xa9.png",  # "e-acute" NFC
    b"e\xcc\x81.png",  # the same text NFD: another file
    b"l" * 251 + b".png",  # 255 bytes, the longest name ext4 allows
]


def test_run_with_hostile_names_keeps_every_name_exact(tmp_path: Path) -> None:
    # The folders' own names are not UTF-8 either (report.json, config.yaml, PDF title).
    folder = tmp_path / name_from_bytes(b"in_\xff")
    folder.mkdir()
    for seed, name in enumerate(HOSTILE):
        write_png(folder, name, seed)
    write_png(folder, b"new\nline.png", 99)  # cannot go into line-based outputs: skipped
    out = tmp_path / name_from_bytes(b"out_\xe9")
    cfg = run_config(
        folder, out, tiny_checkpoint(tmp_path / "m.ckpt"), "stopping_condition.n_samples=1.0"
    )

    result = run(cfg, progress=False)

    expected = sorted(HOSTILE)
    # Every hostile sample was embedded and selected; the lists hold the exact bytes.
    assert sorted(os.fsencode(n) for n in result.selected) == expected
    sampled = exact_lines(out / "filenames" / "sampled_filenames_excluding_datapool.txt")
    assert sorted(sampled) == expected
    _, _, embedded = load_embeddings(out / "data" / "embeddings.csv")
    assert sorted(os.fsencode(n) for n in embedded) == expected
    # Each name opens its file: the in-memory name maps back to the bytes on disk.
    for sample in embedded:
        assert (folder / sample).is_file()
    # The manifest round-trips every name and is valid UTF-8 text.
    (out / "data" / "manifest.jsonl").read_bytes().decode("utf-8")
    statuses = manifest_names(out)
    assert {os.fsencode(n) for n, s in statuses.items() if s == "ok"} == set(HOSTILE)
    # The name with a line break is reported, with its kind, not lost silently.
    assert corrupt_table(out) == {
        "new\nline.png": (
            "unsupported_name",
            "the name holds a line break, which lightly's embeddings CSV and the filename "
            "lists cannot store; rename the file",
        )
    }
    rep = report(out)
    assert name_to_bytes(rep["job"]["input_dir"]).endswith(b"/in_\xff")
    assert name_to_bytes(rep["job"]["run_name"]) == b"out_\xe9"
    assert rep["counts"]["corrupt_reasons"] == {"unsupported_name": 1}
    assert rep["counts"]["n_selected"] == len(HOSTILE)
    assert (out / "report.pdf").stat().st_size > 0
    assert list((out / "plots").glob("*.png"))
    # data/selection.csv: one row per candidate, names exact, all selected.
    with open(out / "data" / "selection.csv", encoding="utf-8", errors=NAME_ERRORS) as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(name_to_bytes(row["filename"]) for row in rows) == expected
    assert {row["selected"] for row in rows} == {"1"}
