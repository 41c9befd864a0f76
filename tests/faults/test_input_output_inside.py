"""An output folder inside the input folder: runs never select their own outputs.

A run writes plots (PNG images) into its output folder; when that folder lies inside the
input folder, a second run used to take the first run's plots as samples.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from faults._input_helpers import (
    draw_no_pdf,
    manifest_names,
    run_config,
    tiny_checkpoint,
    write_png,
)
from selfsup.curation.pipeline import run
from selfsup.data.files import RUN_MARKER, is_run_folder, list_sample_files

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

IMAGES = [f"img_{i}.png" for i in range(5)]


def test_run_folders_inside_the_input_are_not_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    draw_no_pdf(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(IMAGES):
        write_png(folder, name.encode(), i)
    checkpoint = tiny_checkpoint(tmp_path / "m.ckpt")
    inside = folder / "runs" / "first"

    caplog.set_level(logging.WARNING, logger="selfsup.curation.checks")
    run(run_config(folder, inside, checkpoint, "stopping_condition.n_samples=3"), progress=False)
    assert sorted(manifest_names(inside)) == IMAGES
    assert (inside / RUN_MARKER).is_file()
    assert list((inside / "plots").glob("*.png")), "the first run must have written images"

    # A run folder of an older selfsup, without the marker, is recognised by its files.
    legacy = folder / "old_run"
    shutil.copytree(inside, legacy)
    (legacy / RUN_MARKER).unlink()
    assert is_run_folder(legacy)

    second = tmp_path / "second"
    caplog.clear()
    run(run_config(folder, second, checkpoint, "stopping_condition.n_samples=3"), progress=False)
    assert sorted(manifest_names(second)) == IMAGES  # no plot of either run folder
    assert list_sample_files(folder) == IMAGES  # the datasets see the same samples
    excluded = [r.getMessage() for r in caplog.records if "not scanning" in r.getMessage()]
    assert len(excluded) == 2
    assert any(str(inside) in message for message in excluded)
    assert any(str(legacy) in message for message in excluded)


def test_a_folder_is_a_run_folder_only_with_run_files(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("a: 1\n")
    assert not is_run_folder(tmp_path)  # a config file alone is no run
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.jsonl").write_text("{}\n")
    assert is_run_folder(tmp_path)
