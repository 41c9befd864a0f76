"""What a curation run prints: its steps with their times, real problems, no library noise."""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from selfsup.cli.main import main
from selfsup.curation._quiet import NOISE_PATTERNS, quiet_training
from selfsup.utils.report_units import format_duration

TINY_MODEL = [
    "lightly.trainer.max_epochs=1",
    "lightly.model.name=resnet-9",
    "lightly.model.width=0.125",
    "lightly.collate.input_size=32",
    "lightly.loader.num_workers=0",
    "lightly.loader.batch_size=8",
]


def _warn_like_lightning() -> None:
    warnings.warn(
        "gpus=1 was requested but no CUDA GPU is available: training on the CPU", stacklevel=2
    )
    warnings.warn(
        "Checkpoint directory /x/.selfsup/training exists and is not empty.", stacklevel=2
    )
    warnings.warn(
        "The number of training batches (3) is smaller than the logging interval", stacklevel=2
    )
    warnings.warn(
        "`isinstance(treespec, LeafSpec)` is deprecated, use something else", stacklevel=2
    )
    warnings.warn("a real problem", stacklevel=2)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").info("GPU available: False")


def test_quiet_training_drops_only_the_known_noise(caplog: pytest.LogCaptureFixture) -> None:
    lightning = logging.getLogger("pytorch_lightning")
    before = lightning.level
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        with quiet_training(explicit_gpus=False, fresh_dir=True):
            _warn_like_lightning()
    assert [str(w.message) for w in seen] == ["a real problem"]
    assert "GPU available" not in caplog.text
    assert lightning.level == before, "the logger levels are restored"

    # A user who set trainer.gpus, or a folder with older files, keeps those warnings.
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_training(explicit_gpus=True, fresh_dir=False):
            _warn_like_lightning()
    kept = [str(w.message) for w in seen]
    assert len(kept) == 3
    assert kept[0].startswith("gpus=1")
    assert kept[1].startswith("Checkpoint directory")


@pytest.mark.slow
def test_a_cpu_run_prints_its_steps_and_real_problems_only(
    make_image_folder: Callable[..., Path],
    corrupt_files: Callable[..., list[str]],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = make_image_folder(n_classes=2, n_per_class=8, size=(32, 32))
    corrupt_files(folder / "class_1")
    out = tmp_path / "out"
    overrides = [f"input_dir={folder}", f"output_dir={out}", "umap=false", "num_workers=0"]
    assert main(["run", *overrides, "stopping_condition.n_samples=4", *TINY_MODEL]) == 0
    printed = capfd.readouterr()
    text = printed.out + printed.err
    for noise in NOISE_PATTERNS:
        assert noise not in text, noise
    # The real problem is still said, without opening the report (a warning: on stderr
    # from the CLI, in pytest's log capture here).
    problem = r"3 corrupt file\(s\) skipped \(.*\); listed .*corrupt_filenames"
    assert re.search(problem, text + caplog.text)
    # Each step ends with its time, the figures of report.json (one source).
    steps = json.loads((out / "report.json").read_text())["job"]["step_durations_s"]
    assert list(steps) == ["check", "train", "embed", "select", "report"]
    for name, seconds in steps.items():
        assert f"selfsup run: {name} done in {format_duration(seconds)}\n" in printed.err
    # The report's slow part says what it does.
    assert "selfsup run: report: writing report.pdf and report.json" in printed.err
