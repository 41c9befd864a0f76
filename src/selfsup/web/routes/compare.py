"""Comparing two runs (issue 12): ``GET /compare?a=&b=`` shows what each run selected, the
overlap and what only one of them kept (:mod:`selfsup.web.compare`); without both runs it
asks for them. ``GET /compare/list.txt?a=&b=&list=both|only_a|only_b`` downloads one of the
lists, one name per line."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from selfsup.web.backend import RunView
from selfsup.web.compare import Comparison, compare_runs
from selfsup.web.outputs import Sample
from selfsup.web.routes.common import backend_of, error_page, open_page_view, render
from selfsup.web.sessions import PageViewer

router = APIRouter(include_in_schema=False)

SHOWN: Final = 120
"""Thumbnails shown per list; the downloads hold every name."""
LISTS: Final = ("both", "only_a", "only_b")
THUMB_SIZE: Final = 120


def _open_both(
    request: Request, viewer: PageViewer, a: str, b: str
) -> tuple[RunView, RunView, Comparison] | HTMLResponse:
    view_a = open_page_view(request, viewer, a)
    if isinstance(view_a, HTMLResponse):
        return view_a
    view_b = open_page_view(request, viewer, b)
    if isinstance(view_b, HTMLResponse):
        return view_b
    return view_a, view_b, compare_runs(view_a.outputs, view_b.outputs)


def _samples(view: RunView, names: list[str]) -> list[Sample]:
    index = view.outputs.name_index
    return view.outputs.make_samples([index[name] for name in names[:SHOWN] if name in index])


@router.get("/compare")
def compare_page(request: Request, viewer: PageViewer, a: str = "", b: str = "") -> Response:
    """The comparison of runs ``a`` and ``b``, or the form that picks them."""
    runs = [r for r in backend_of(request).runs(viewer) if r.has_outputs]
    if not a or not b:
        return render(
            "compare.html",
            viewer=viewer,
            page="compare",
            title="Compare runs",
            crumbs=[("Runs", "/"), ("Compare", None)],
            runs=runs,
            a=a,
            b=b,
            comparison=None,
        )
    opened = _open_both(request, viewer, a, b)
    if isinstance(opened, HTMLResponse):
        return opened
    view_a, view_b, comparison = opened
    return render(
        "compare.html",
        viewer=viewer,
        page="compare",
        title=f"Compare {view_a.summary.name} and {view_b.summary.name}",
        crumbs=[("Runs", "/"), ("Compare", None)],
        wide=True,
        runs=runs,
        a=a,
        b=b,
        run_a=view_a.summary,
        run_b=view_b.summary,
        comparison=comparison,
        lists=[
            (
                "both",
                "Selected by both",
                view_a.summary,
                _samples(view_a, comparison.both),
                len(comparison.both),
            ),
            (
                "only_a",
                f"Only in {view_a.summary.name}",
                view_a.summary,
                _samples(view_a, comparison.only_a),
                len(comparison.only_a),
            ),
            (
                "only_b",
                f"Only in {view_b.summary.name}",
                view_b.summary,
                _samples(view_b, comparison.only_b),
                len(comparison.only_b),
            ),
        ],
        shown=SHOWN,
        thumb_size=THUMB_SIZE,
    )


def _safe(run_id: str) -> str:
    """A run id made safe for a header's file name (ASCII letters, digits, ``-_.``)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in run_id)[:60]


@router.get("/compare/list.txt")
def compare_list(
    request: Request,
    viewer: PageViewer,
    a: str,
    b: str,
    which: Annotated[str, Query(alias="list")] = "both",
) -> Response:
    """One list of the comparison as a text file (one name per line, sorted)."""
    if which not in LISTS:
        return error_page(
            viewer, 400, "Bad list", f"list must be one of {', '.join(LISTS)}, got {which[:40]!r}"
        )
    opened = _open_both(request, viewer, a, b)
    if isinstance(opened, HTMLResponse):
        return opened
    names: list[str] = getattr(opened[2], which)
    filename = f"{_safe(a)}-vs-{_safe(b)}-{which}.txt"
    return Response(
        "".join(f"{n}\n" for n in names).encode("utf-8", "surrogateescape"),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
