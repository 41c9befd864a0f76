"""The runs list (``/``) and a run's page: state, log, report summary and downloads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from selfsup.apphelpers.web_backend import (
    Download,
    InvalidToken,
    OutputsUnavailable,
    WebNotFound,
)
from selfsup.utils.report_units import epoch_ms, format_duration, format_mass
from selfsup.web.backend import RunView
from selfsup.web.routes.common import (
    backend_of,
    capitalize_first,
    login_form,
    not_found_page,
    render,
    run_crumbs,
)
from selfsup.web.sessions import (
    LoginRequired,
    PageViewer,
    login_response,
    session_viewer,
)

router = APIRouter(include_in_schema=False)


_COUNT_LABELS = {
    "n_files_found": "Files found",
    "n_samples_found": "Samples found",
    "n_corrupt": "Corrupt",
    "n_duplicates": "Duplicates",
    "n_not_relevant": "Not relevant",
    "n_input_to_selection": "Input to selection",
    "n_removed_by_filters": "Removed by filters",
    "n_selected": "Selected",
    "n_removed": "Removed",
    "before": "Before selection",
    "after": "After selection",
}


@router.get("/")
def index(request: Request, token: str | None = None) -> Response:
    """Datasets and their runs, newest first; ``/?token=...`` logs in first (the link
    ``selfsup view`` prints) and redirects to ``/`` so the token leaves the address bar.

    Only ``selfsup view`` honours the token in the URL: on the server an API token never
    belongs in a URL (access logs), and a link with the attacker's token would log a victim's
    browser into the attacker's account (login CSRF).
    """
    backend = backend_of(request)
    if token is not None and backend.mode == "folder":
        try:
            viewer = backend.login(token.strip())
        except InvalidToken as exc:
            return login_form(backend, "/", str(exc))
        return login_response(request, viewer, "/")
    found = session_viewer(request)
    if found is None:
        raise LoginRequired("/")
    viewer = found
    datasets = backend.datasets(viewer)
    runs = backend.runs(viewer)
    groups: list[dict[str, Any]] = [
        {"id": d.id, "name": d.name, "created_at": d.created_at, "runs": []} for d in datasets
    ]
    by_id = {g["id"]: g for g in groups}
    for run in runs:
        group = by_id.get(run.dataset_id)
        if group is None:
            group = {"id": run.dataset_id, "name": run.dataset_name, "created_at": None, "runs": []}
            by_id[run.dataset_id] = group
            groups.append(group)
        group["runs"].append(run)
    return render(
        "index.html",
        viewer=viewer,
        page="index",
        title="Runs",
        crumbs=[("Runs", None)],
        groups=groups,
        n_runs=len(runs),
        mode=backend.mode,
    )


@router.get("/runs/{run_id}")
def run_page(request: Request, viewer: PageViewer, run_id: str) -> Response:
    """State, message and log of a run (both followed live), then its report: counts,
    savings, selection, plots and downloads."""
    backend = backend_of(request)
    try:
        run = backend.run(viewer, run_id)
        log_text, log_offset = backend.log(viewer, run_id, 0)
    except WebNotFound as exc:
        return not_found_page(viewer, str(exc))
    view: RunView | None = None
    downloads: list[Download] = []
    outputs_message = run.message or "This run has no outputs."
    if run.has_outputs:
        # Downloads are listed only beside the report: a run without outputs skips the query.
        try:
            view = backend.view(viewer, run_id)
            downloads = backend.downloads(viewer, run_id)
        except OutputsUnavailable as exc:
            outputs_message = str(exc)
        except WebNotFound as exc:
            return not_found_page(viewer, str(exc))
    report = view.outputs.report if view is not None else {}
    embedding_items, embedding_warning = _embedding_items(report)
    log_empty = (
        "Local runs print their log to the terminal; this folder has none."
        if backend.mode == "folder"
        else ("No log yet." if not run.is_final else "This run wrote no log.")
    )
    return render(
        "run.html",
        viewer=viewer,
        page="run",
        title=run.name,
        crumbs=run_crumbs(run),
        run=run,
        outputs_ready=view is not None,
        outputs_message=outputs_message,
        # The times the run recorded (report.json), as the PDF and the log show them; a
        # run without a report yet: when it was created.
        started_at=epoch_ms(_dict(report.get("job")).get("started_at")) or run.created_at,
        ended_at=epoch_ms(_dict(report.get("job")).get("finished_at")) or run.ended_at,
        job_items=_job_items(report),
        count_items=_count_items(report),
        corrupt_reasons=_corrupt_reasons(report),
        savings_items=_savings_items(report),
        savings_note=_savings_note(report),
        selection_items=_selection_items(report),
        embedding_items=embedding_items,
        embedding_warning=embedding_warning,
        plots=_plots(report),
        downloads=downloads,
        log_text=log_text,
        log_offset=log_offset,
        log_empty=log_empty,
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count_items(report: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Every integer of ``report["counts"]`` as ``(key, label, value)``, in report order."""
    return [
        (
            key,
            _COUNT_LABELS.get(key, capitalize_first(key.removeprefix("n_").replace("_", " "))),
            v,
        )
        for key, v in _dict(report.get("counts")).items()
        if isinstance(v, int) and not isinstance(v, bool)
    ]


def _corrupt_reasons(report: dict[str, Any]) -> list[tuple[str, int]]:
    reasons = _dict(_dict(report.get("counts")).get("corrupt_reasons"))
    return sorted(
        ((str(k), v) for k, v in reasons.items() if isinstance(v, int)), key=lambda kv: -kv[1]
    )


def _percent(value: object) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{100.0 * value:.1f} %"
    return None


def _number(value: object, digits: int = 2) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}" if math.isfinite(value) else str(value)


def _items(pairs: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    return [(label, text) for label, text in pairs if text is not None]


def _savings_items(report: dict[str, Any]) -> list[tuple[str, str]]:
    s = _dict(report.get("savings"))
    currency = str(s.get("currency") or "")
    cost = _number(s.get("labeling_cost_saved"))
    kg = s.get("kg_co2e_saved")
    co2 = None
    if isinstance(kg, int | float) and not isinstance(kg, bool) and math.isfinite(kg) and kg >= 0:
        co2 = format_mass(float(kg))  # the PDF's formatter: same figure, same unit (issue 12)
    return _items(
        [
            ("Samples to label", _number(s.get("samples_to_label"))),
            ("Samples saved", _number(s.get("samples_saved"))),
            ("Fraction saved", _percent(s.get("fraction_saved"))),
            ("Labelling cost saved", f"{cost} {currency}".strip() if cost else None),
            ("CO₂e saved", co2),
        ]
    )


def _savings_note(report: dict[str, Any]) -> str:
    note = _dict(_dict(report.get("savings")).get("assumptions")).get("note")
    return str(note) if note else ""


_STOP_REASONS = {
    "n_samples": "the requested number of samples was reached",
    "min_distance": "no candidate was farther than min_distance",
    "exhausted": "every candidate was picked or filtered",
}


def _selection_items(report: dict[str, Any]) -> list[tuple[str, str]]:
    sel = _dict(report.get("selection"))
    pick = _dict(sel.get("pick_distance"))
    method = _dict(_dict(report.get("job")).get("config")).get("method")
    reason = sel.get("stop_reason")
    return _items(
        [
            ("Method", str(method) if method else None),
            ("Selected", _number(sel.get("n_selected"))),
            ("Selected fraction", _percent(sel.get("selected_fraction"))),
            ("Requested", _number(sel.get("n_requested"))),
            ("Stopped because", _STOP_REASONS.get(str(reason), str(reason)) if reason else None),
            ("Removed by filters", _number(sel.get("n_removed_by_filters"))),
            ("Last pick distance", _number(pick.get("last"), 4)),
            ("Median pick distance", _number(pick.get("median"), 4)),
        ]
    )


def _embedding_items(report: dict[str, Any]) -> tuple[list[tuple[str, str]], str | None]:
    """The collapse figures of report.json (``statistics.embedding_health``) and the
    warning when the embeddings are collapsed (selfsup.utils.embedding_stats)."""
    health = _dict(_dict(report.get("statistics")).get("embedding_health"))
    collapsed = health.get("collapsed")
    items = _items(
        [
            (
                "Std of L2-normalised × √D",
                _number(health.get("std_of_l2_normalized_times_sqrt_dim"), 3),
            ),
            ("Std of L2-normalised", _number(health.get("std_of_l2_normalized"), 4)),
            ("Effective rank", _number(health.get("effective_rank"), 3)),
            ("Dimensions", _number(health.get("dim"))),
            ("Collapsed", None if collapsed is None else ("yes" if collapsed else "no")),
        ]
    )
    warning = health.get("warning")
    return items, str(warning) if warning else None


def _job_items(report: dict[str, Any]) -> list[tuple[str, str]]:
    job = _dict(report.get("job"))
    duration = job.get("duration_s")
    # Each step with its own time, as report.json, the PDF and the run's log have them.
    steps = " · ".join(
        f"{name} {_duration(float(seconds))}"
        for name, seconds in _dict(job.get("step_durations_s")).items()
        if isinstance(seconds, int | float)
    )
    return _items(
        [
            ("Input folder", str(job["input_dir"]) if job.get("input_dir") else None),
            (
                "Duration",
                _duration(float(duration)) if isinstance(duration, int | float) else None,
            ),
            ("Steps", steps or None),
            (
                "selfsup version",
                str(job["selfsup_version"]) if job.get("selfsup_version") else None,
            ),
        ]
    )


def _duration(seconds: float) -> str:
    """The PDF's and the log's formatter; a damaged report's value is shown as it is."""
    try:
        return format_duration(seconds)
    except ValueError:
        return str(seconds)


def _plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    files = _dict(report.get("plots")).get("files")
    if not isinstance(files, list):
        return []
    return [(f, PurePosixPath(f).stem.replace("_", " ")) for f in files if isinstance(f, str)]
