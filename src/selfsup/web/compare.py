"""Two runs side by side: what each selected, the overlap, and what only one of them kept.

Samples are matched by name (the manifest's ``filename``, a path relative to the input
folder), so the comparison means something for two runs over the same folder, or over
copies of it: runs with different ``job.input_dir`` in ``report.json`` are still compared,
and :class:`Comparison` says that their folders differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selfsup.web.outputs import RunOutputs

__all__ = ["Comparison", "compare_runs"]


@dataclass(frozen=True)
class Comparison:
    """What two runs selected.

    Attributes:
        both: Names selected by both runs, sorted.
        only_a: Names selected by run A but not by run B, sorted.
        only_b: Names selected by run B but not by run A, sorted.
        n_a, n_b: Samples of each run (every manifest record).
        n_selected_a, n_selected_b: Samples each run selected.
        n_common: Samples (names) the two runs have in common.
        input_dir_a, input_dir_b: Each run's input folder from its report, "" when unknown.
    """

    both: list[str]
    only_a: list[str]
    only_b: list[str]
    n_a: int
    n_b: int
    n_selected_a: int
    n_selected_b: int
    n_common: int
    input_dir_a: str
    input_dir_b: str

    @property
    def same_folder(self) -> bool:
        """Both reports name the same input folder (or one does not say)."""
        return not self.input_dir_a or not self.input_dir_b or self.input_dir_a == self.input_dir_b

    @property
    def jaccard(self) -> float:
        """``|A ∩ B| / |A ∪ B|`` of the two selections; 1.0 when both are empty."""
        union = len(self.both) + len(self.only_a) + len(self.only_b)
        return len(self.both) / union if union else 1.0


def _selected(outputs: RunOutputs) -> set[str]:
    names = outputs.filenames()
    return {names[int(i)] for i in outputs.indices("selected")}


def _input_dir(report: dict[str, Any]) -> str:
    job = report.get("job")
    value = job.get("input_dir") if isinstance(job, dict) else None
    return str(value) if value else ""


def compare_runs(a: RunOutputs, b: RunOutputs) -> Comparison:
    """The :class:`Comparison` of the selections of runs ``a`` and ``b``."""
    chosen_a, chosen_b = _selected(a), _selected(b)
    return Comparison(
        both=sorted(chosen_a & chosen_b),
        only_a=sorted(chosen_a - chosen_b),
        only_b=sorted(chosen_b - chosen_a),
        n_a=len(a.samples),
        n_b=len(b.samples),
        n_selected_a=len(chosen_a),
        n_selected_b=len(chosen_b),
        n_common=len(set(a.filenames()) & set(b.filenames())),
        input_dir_a=_input_dir(a.report),
        input_dir_b=_input_dir(b.report),
    )
