"""A file whose read hangs after the check (a stalled network mount) never stalls a run.

The check bounds each file in its worker processes; training, embedding and the report
read the files again through :func:`selfsup.utils.safe_open.read_bytes`, bounded by the same
``check_timeout_s``. Here one image's reads hang from the embedding step on: the run ends,
the file is reported with reason ``timeout``, and the rest is embedded and selected.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from faults._input_helpers import (
    corrupt_table,
    draw_no_pdf,
    report,
    run_config,
    tiny_checkpoint,
    write_png,
)
from selfsup.curation.pipeline import run
from selfsup.utils import safe_open
from selfsup.utils.io import load_embeddings

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_a_read_that_hangs_mid_run_is_reported_as_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    draw_no_pdf(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    if relative:  # input_dir=./in, as the README's commands give it
        monkeypatch.chdir(tmp_path)
        folder = Path("in")
    for i in range(5):
        write_png(folder, f"img_{i}.png".encode(), i)
    release = threading.Event()
    real_read = safe_open._read_file
    hanging = {"active": False}

    def read_file(path: Any) -> bytes:
        if hanging["active"] and str(path).endswith("img_3.png"):
            release.wait(60)  # a read stuck in the kernel, until the test ends
        return real_read(path)

    def on_step(step: str) -> None:
        if step == "EMBEDDING":
            hanging["active"] = True  # from now on: after the check passed the file

    monkeypatch.setattr(safe_open, "_read_file", read_file)
    out = tmp_path / "out"
    cfg = run_config(
        folder,
        out,
        tiny_checkpoint(tmp_path / "m.ckpt"),
        "stopping_condition.n_samples=1.0",
        "check_timeout_s=1",
    )
    try:
        result = run(cfg, progress=False, on_step=on_step)
    finally:
        release.set()
    kept = ["img_0.png", "img_1.png", "img_2.png", "img_4.png"]
    assert sorted(result.selected) == kept
    assert load_embeddings(out / "data" / "embeddings.csv")[2] == kept
    reason, detail = corrupt_table(out)["img_3.png"]
    assert reason == "timeout"
    assert "check_timeout_s" in detail
    assert report(out)["job"]["extra"]["lost_files"]["timeout"] == ["img_3.png"]
