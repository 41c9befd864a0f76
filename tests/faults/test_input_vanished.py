"""Files deleted or rewritten while a run uses them: reported, never fatal.

The run reads every file again after the check (embedding, thumbnails); a file removed or
changed in between used to abort the run. Here one file is deleted and one rewritten
between the check and the embedding step, and one selected file is deleted before the
report, from the run's own step callback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faults._input_helpers import (
    corrupt_table,
    draw_no_pdf,
    exact_lines,
    manifest_names,
    report,
    run_config,
    tiny_checkpoint,
    write_png,
)
from selfsup.curation.pipeline import run
from selfsup.utils.io import load_embeddings
from selfsup.utils.names import name_from_bytes

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

GONE = b"gone_caf\xe9.png"  # a name that is not UTF-8, to see it named exactly


def test_files_removed_or_changed_mid_run_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draw_no_pdf(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        write_png(folder, f"img_{i}.png".encode(), i)
    write_png(folder, GONE, 10)
    steps: list[str] = []

    def on_step(step: str) -> None:
        steps.append(step)
        if step == "EMBEDDING" and steps.count("EMBEDDING") == 1:
            os.unlink(os.fsencode(folder) + b"/" + GONE)
            write_png(folder, b"img_1.png", 99)  # same name, other pixels
            os.utime(folder / "img_1.png", ns=(1, 1))  # and surely another mtime
        if step == "EMBEDDING" and steps.count("EMBEDDING") == 2:
            # While embedding again: the dataset finds this no image any more.
            (folder / "img_2.png").write_bytes(b"no longer an image")
        if step == "GENERATING_REPORT":
            os.unlink(folder / "img_5.png")

    out = tmp_path / "out"
    cfg = run_config(
        folder, out, tiny_checkpoint(tmp_path / "m.ckpt"), "stopping_condition.n_samples=1.0"
    )
    result = run(cfg, progress=False, on_step=on_step)

    gone = name_from_bytes(GONE)
    # Embedding failed on the missing file, then on the broken one; redone without them.
    assert steps == [
        "CHECKING_CORRUPTNESS",
        "EMBEDDING",
        "EMBEDDING",
        "EMBEDDING",
        "SAMPLING",
        "GENERATING_REPORT",
    ]
    kept = ["img_0.png", "img_3.png", "img_4.png", "img_5.png"]
    assert sorted(result.selected) == kept  # img_5 was selected before it vanished
    assert load_embeddings(out / "data" / "embeddings.csv")[2] == kept
    table = corrupt_table(out)
    assert {name: reason for name, (reason, _) in table.items()} == {
        gone: "vanished",
        "img_1.png": "changed",
        "img_2.png": "changed",
        "img_5.png": "vanished",
    }
    assert "changed after the check" in table["img_1.png"][1]
    assert manifest_names(out)[gone] == "corrupt"
    rep = report(out)
    assert rep["job"]["extra"]["lost_files"] == {
        "vanished": [gone, "img_5.png"],
        "changed": ["img_1.png", "img_2.png"],
        "timeout": [],
    }
    # The funnel counts what the selection saw; img_5 vanished after it.
    assert rep["counts"]["corrupt_reasons"] == {"vanished": 1, "changed": 2}
    assert GONE not in exact_lines(out / "filenames" / "removed_filenames.txt")
    sampled = exact_lines(out / "filenames" / "sampled_filenames_excluding_datapool.txt")
    assert GONE not in sampled
    assert (out / "report.pdf").is_file()
