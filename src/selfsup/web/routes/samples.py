"""The pages of a run's samples: the image grid with its filters, one image with its
explanation and nearest neighbours, and the embedding map."""

from __future__ import annotations

import math
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from numpy.typing import NDArray

from selfsup.apphelpers.web_backend import InvalidTag, Viewer, WebNotFound, check_tag
from selfsup.web.outputs import STATUSES, RunOutputs, Sample, Status
from selfsup.web.routes.common import (
    backend_of,
    error_page,
    not_found_page,
    open_page_view,
    render,
    run_crumbs,
    sample_or_none,
    segment,
)
from selfsup.web.routes.explore import colour_options
from selfsup.web.sessions import PageViewer
from selfsup.web.signals import RunSignals, SignalsError
from selfsup.web.tags import TagStorageError, filter_indices, indices_of

router = APIRouter(include_in_schema=False)


PER_PAGE = 200
"""Tiles per grid page; ``?per_page=`` may ask for 1 to :data:`MAX_PER_PAGE`."""
MAX_PER_PAGE = 500
MAX_QUERY_CHARS = 200


THUMB_SIZE = 192
"""Edge of the square thumbnails (px); the ``width``/``height`` of grid ``<img>`` tags."""
NEIGHBOURS = 12


_FILTER_LABELS: dict[str, str] = {
    "all": "All",
    "selected": "Selected",
    "removed": "Removed",
    "corrupt": "Corrupt",
    "duplicate": "Duplicate",
}


MAX_PAGE_NUMBER = 10**9
"""Largest grid page number (and sample position) a URL may carry."""


class BadNumberError(ValueError):
    """A numeric query parameter is not an integer in its accepted range."""


def _parse_int(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    """The integer query parameter ``name``: ``default`` when absent or empty.

    Raises:
        BadNumberError: not a plain decimal integer in ``lo..hi``; the message names the
            parameter, the value (cut short) and the accepted range.
    """
    if raw in (None, ""):
        return default
    assert raw is not None
    # Length first: int() of a huge digit string is itself costly, and no value this long
    # can be in range.
    value: int | None = None
    if len(raw) <= 20 and raw.removeprefix("-").isdigit() and raw.isascii():
        value = int(raw)
    if value is None or not lo <= value <= hi:
        raise BadNumberError(f"{name!r} must be an integer from {lo} to {hi}, got {raw[:40]!r}")
    return value


def _parse_status(raw: str | None) -> tuple[Status | None, str | None]:
    """``(status, None)`` for a known status or all (``None``), ``(None, error)`` else."""
    if raw in (None, "", "all"):
        return None, None
    for status in STATUSES:
        if raw == status:
            return status, None
    return None, f"unknown status {raw!r}: use one of all, {', '.join(STATUSES)}"


def _url(path: str, **params: str | int | None) -> str:
    query = {k: str(v) for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


@router.get("/runs/{run_id}/images")
def images_page(
    request: Request,
    viewer: PageViewer,
    run_id: str,
    status: str | None = None,
    page: str | None = None,
    per_page: str | None = None,
    q: str = "",
    tag: str = "",
    issue: str = "",
    dup: str = "",
    sort: str = "",
    order: str = "",
) -> Response:
    """One page of the thumbnail grid: filter tabs with counts, file-name search, tag
    filter, signal filters and sort, pager.

    Only the requested page is rendered (``RunOutputs.page``), so a 100,000-sample run
    answers as fast as a small one; the thumbnails load lazily as they scroll into view.
    With ``?tag=`` the grid shows that tag's samples (O(tagged samples)).
    ``?issue=`` keeps the samples flagged with that quality issue (``any``: with any),
    ``?dup=`` the near-duplicate group members (``any``) or the members a group does not
    keep (``copies``), ``?sort=`` orders by a score of the run (:mod:`selfsup.web.signals`,
    ``?order=desc`` highest first); these work on index arrays, O(N) per request.
    """
    view = open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    run = view.summary
    outputs = view.outputs
    base = f"/runs/{segment(run_id)}/images"
    chosen, error = _parse_status(status)
    if error is not None:
        return error_page(viewer, 400, "Bad filter", error, back=(base, "All"))
    query = q.strip()[:MAX_QUERY_CHARS]
    try:
        size = _parse_int(per_page, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
        number = _parse_int(page, "page", 1, 1, MAX_PAGE_NUMBER)
    except BadNumberError as exc:
        return error_page(viewer, 400, "Bad page", str(exc), back=(base, "All"))
    tags, tags_error = _run_tags(request, viewer, run_id)
    tagged: list[int] | None = None
    if tag:
        try:
            names = backend_of(request).names_with_tag(viewer, run_id, check_tag(tag))
        except InvalidTag as exc:
            return error_page(viewer, 400, "Bad tag", str(exc), back=(base, "All"))
        except TagStorageError as exc:  # the run's tags.json, not the tag asked for
            return error_page(viewer, 409, "Tags unavailable", str(exc), back=(base, "All"))
        tagged = filter_indices(outputs, indices_of(outputs, names), query)
    # A damaged signal file (quality.csv, ...) costs the signal filters, not the grid.
    signals = _EMPTY_SIGNALS
    signals_error = ""
    try:
        signals = outputs.signals
    except SignalsError as exc:
        signals_error = str(exc)
        if issue or dup or sort:
            return error_page(viewer, 409, "Scores unavailable", str(exc), back=(base, "All"))
    descending = order == "desc"
    if order not in ("", "asc", "desc"):
        return error_page(
            viewer,
            400,
            "Bad order",
            f"order must be asc or desc, got {order[:40]!r}",
            back=(base, "All"),
        )
    pool: NDArray[np.int64] | None = None  # every match of all filters but status
    if issue or dup or sort or tagged is not None:
        pool = outputs.indices(None, query) if tagged is None else np.array(tagged, dtype=np.int64)
        try:
            pool = _signal_filter(signals, pool, issue, dup)
        except KeyError as exc:
            return error_page(viewer, 400, "Bad filter", str(exc.args[0]), back=(base, "All"))
        if sort:
            try:
                pool = signals.sort(pool, sort, descending)
            except KeyError as exc:
                return error_page(viewer, 400, "Bad sort", str(exc.args[0]), back=(base, "All"))
    shown_pool: NDArray[np.int64] | None = None
    if pool is not None:
        codes = outputs.status_codes()
        shown_pool = pool if chosen is None else pool[codes[pool] == STATUSES.index(chosen)]

    def page_of(n: int) -> tuple[list[Sample], int]:
        if shown_pool is None:
            return outputs.page(chosen, (n - 1) * size, size, query)
        return outputs.make_samples(shown_pool[(n - 1) * size : n * size]), int(shown_pool.size)

    samples, total = page_of(number)
    n_pages = max(1, math.ceil(total / size))
    if number > n_pages:  # past the end (e.g. a stale link): show the last page
        number = n_pages
        samples, total = page_of(number)
    offset = (number - 1) * size

    shown_size = size if size != PER_PAGE else None
    if pool is None:
        counts = _filter_counts(outputs, query)
    else:
        per_code = np.bincount(outputs.status_codes()[pool], minlength=len(STATUSES))
        counts = {"all": int(pool.size), **{st: int(per_code[i]) for i, st in enumerate(STATUSES)}}
    keep = {"issue": issue, "dup": dup, "sort": sort, "order": order if sort else ""}
    tabs = [
        {
            "key": key,
            "label": _FILTER_LABELS[key],
            "count": counts[key],
            "active": (chosen or "all") == key,
            "href": _url(
                base,
                status=None if key == "all" else key,
                q=query,
                tag=tag,
                per_page=shown_size,
                **keep,
            ),
        }
        for key in ("all", *STATUSES)
    ]

    def page_href(n: int) -> str:
        return _url(
            base,
            status=chosen,
            q=query,
            tag=tag,
            per_page=shown_size,
            page=n if n > 1 else None,
            **keep,
        )

    detail = f"/runs/{segment(run_id)}/images/"
    return render(
        "images.html",
        viewer=viewer,
        page="images",
        title=f"Images · {run.name}",
        crumbs=run_crumbs(run, ("Images", None)),
        wide=True,
        run=run,
        status=chosen,
        query=query,
        max_query=MAX_QUERY_CHARS,
        tabs=tabs,
        samples=samples,
        # A tag's or a signal filter's list is not the one the sample page walks: its links
        # go to the plain page.
        detail_hrefs=[
            f"{detail}{s.index}"
            if pool is not None
            else _url(f"{detail}{s.index}", status=chosen, q=query, pos=offset + i)
            for i, s in enumerate(samples)
        ],
        tile_notes=[_tile_note(signals, s.index, sort) for s in samples],
        issue=issue,
        dup=dup,
        sort=sort,
        order=order if sort else "",
        issue_options=[
            {"key": name, "count": int(np.count_nonzero(flags))}
            for name, flags in signals.issues.items()
        ],
        n_groups=len(signals.groups),
        score_options=[
            {"key": key, "source": source} for key, source in signals.score_sources.items()
        ],
        total=total,
        page_number=number,
        n_pages=n_pages,
        per_page=size,
        default_per_page=PER_PAGE,
        prev_href=page_href(number - 1) if number > 1 else None,
        next_href=page_href(number + 1) if number < n_pages else None,
        clear_href=_url(base, status=chosen, tag=tag, per_page=shown_size, **keep),
        thumb_size=THUMB_SIZE,
        tag=tag,
        tags=[
            {
                "name": name,
                "count": count,
                "active": name == tag,
                "href": _url(base, status=chosen, q=query, tag=name, per_page=shown_size, **keep),
            }
            for name, count in tags.items()
        ],
        tags_error=tags_error,
        untagged_href=_url(base, status=chosen, q=query, per_page=shown_size, **keep),
        signals_error=signals_error,
        signals_clear_href=_url(base, status=chosen, q=query, tag=tag, per_page=shown_size),
    )


_EMPTY_SIGNALS = RunSignals(
    scores={},
    score_sources={},
    issues={},
    groups=[],
    group_of=np.zeros(0, dtype=np.int64),
    folders=[],
    folder_code=np.zeros(0, dtype=np.int64),
)
"""What the grid offers when the run's signals cannot be read (no filters, no sorts)."""

DUP_FILTERS = ("any", "copies")
"""``?dup=`` values: ``any`` every near-duplicate group member, ``copies`` the members a
group does not keep (what removing near duplicates would drop)."""


def _signal_filter(
    signals: RunSignals, pool: NDArray[np.int64], issue: str, dup: str
) -> NDArray[np.int64]:
    """``pool`` (ascending sample indices) narrowed to ``issue`` and ``dup``.

    Raises:
        KeyError: an issue the run does not flag, or an unknown ``dup`` value (the message,
            ``args[0]``, lists the accepted ones).
    """
    if issue:
        pool = pool[np.isin(pool, signals.flagged(issue))]
    if dup:
        if dup not in DUP_FILTERS:
            raise KeyError(f"dup must be one of {', '.join(DUP_FILTERS)}, got {dup[:40]!r}")
        member = signals.group_of[pool] >= 0
        if dup == "copies":
            kept = {g.kept for g in signals.groups}
            member &= ~np.isin(pool, np.fromiter(kept, dtype=np.int64, count=len(kept)))
        pool = pool[member]
    return pool


def _tile_note(signals: RunSignals, index: int, sort: str) -> str:
    """What a tile shows under its name: the sort score's value, then its issues."""
    parts: list[str] = []
    if sort and sort in signals.score_sources:
        value = float(signals.values(sort)[index])
        parts.append(f"{sort} {'–' if math.isnan(value) else f'{value:.4g}'}")
    parts.extend(signals.issues_of(index))
    return " · ".join(parts)


def _run_tags(request: Request, viewer: Viewer, run_id: str) -> tuple[dict[str, int], str]:
    """The run's tags and counts, or none and why (a damaged tags.json must not take the
    grid down)."""
    try:
        return backend_of(request).list_tags(viewer, run_id), ""
    except (TagStorageError, WebNotFound) as exc:
        return {}, str(exc)


def _filter_counts(outputs: RunOutputs, query: str) -> dict[str, int]:
    """Samples per filter tab; with a search, the matches per tab."""
    if not query:
        return dict(outputs.counts())
    counts: dict[str, int] = {s: outputs.page(s, 0, 1, query)[1] for s in STATUSES}
    counts["all"] = sum(counts.values())
    return counts


@router.get("/runs/{run_id}/images/{index}")
def image_page(
    request: Request,
    viewer: PageViewer,
    run_id: str,
    index: str,
    status: str | None = None,
    q: str = "",
    pos: str | None = None,
) -> Response:
    """One sample: its preview, status and why, metadata, and its nearest neighbours.

    ``status``, ``q`` and ``pos`` (its position in that filtered list) come from the grid,
    so previous/next walk the same filtered list the user was looking at.
    """
    view = open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    run = view.summary
    outputs = view.outputs
    sample = sample_or_none(outputs, index)
    if sample is None:
        return not_found_page(viewer, f"run {run_id!r} has no sample {index!r}")
    chosen, error = _parse_status(status)
    query = q.strip()[:MAX_QUERY_CHARS]
    base = f"/runs/{segment(run_id)}/images"
    try:
        parsed_pos = _parse_int(pos, "pos", -1, 0, MAX_PAGE_NUMBER)
    except BadNumberError as exc:
        return error_page(viewer, 400, "Bad position", str(exc), back=(base, "All"))
    position: int | None = parsed_pos if parsed_pos >= 0 else None
    prev_href = next_href = None
    filter_total = 0
    if error is None and position is not None:
        start = max(position - 1, 0)
        around, filter_total = outputs.page(chosen, start, position - start + 2, query)
        here = position - start
        if here < len(around) and around[here].index == sample.index:
            if here > 0:
                prev = around[here - 1]
                prev_href = _url(f"{base}/{prev.index}", status=chosen, q=query, pos=position - 1)
            if here + 1 < len(around):
                nxt = around[here + 1]
                next_href = _url(f"{base}/{nxt.index}", status=chosen, q=query, pos=position + 1)
        else:  # the list changed since the grid was rendered: no filtered walk
            position = None
    if position is None:
        chosen, query = None, ""
        n = len(outputs.samples)
        prev_href = f"{base}/{sample.index - 1}" if sample.index > 0 else None
        next_href = f"{base}/{sample.index + 1}" if sample.index + 1 < n else None
    grid_page = position // PER_PAGE + 1 if position is not None else None
    explanation = outputs.explain(sample.index)
    related: list[tuple[str, Sample]] = []
    for label, other in explanation.related:
        found = sample_or_none(outputs, str(other))
        if found is not None:
            related.append((label, found))
    return render(
        "image.html",
        viewer=viewer,
        page="image",
        title=f"{sample.filename} · {run.name}",
        crumbs=run_crumbs(run, ("Images", base), (sample.filename, None)),
        run=run,
        sample=sample,
        explanation=explanation,
        related=related,
        neighbours=outputs.neighbours(sample.index, k=NEIGHBOURS),
        prev_href=prev_href,
        next_href=next_href,
        grid_href=_url(
            base,
            status=chosen,
            q=query,
            page=grid_page if grid_page and grid_page > 1 else None,
        ),
        position=position,
        filter_total=filter_total,
        filter_label=_FILTER_LABELS[chosen or "all"].lower() if chosen else "samples",
        thumb_size=THUMB_SIZE,
    )


@router.get("/runs/{run_id}/map")
def map_page(
    request: Request, viewer: PageViewer, run_id: str, method: str | None = None
) -> Response:
    """The 2-D embedding map: drawn by map.js from ``/ui-api/runs/{id}/projection``."""
    view = open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    run = view.summary
    methods = view.outputs.projection_methods()
    chosen = method or (methods[0] if methods else None)
    if chosen is not None and chosen not in methods:
        return error_page(
            viewer,
            404,
            "No such projection",
            f"this run has no {chosen!r} projection; available: {', '.join(methods) or 'none'}",
            back=(f"/runs/{segment(run_id)}/map", "Default map"),
        )
    return render(
        "map.html",
        viewer=viewer,
        page="map",
        title=f"Map · {run.name}",
        crumbs=run_crumbs(run, ("Map", None)),
        wide=True,
        run=run,
        methods=methods,
        method=chosen,
        statuses=list(STATUSES),
        colour_options=_colour_options(request, viewer, run_id, view.outputs),
    )


def _colour_options(
    request: Request, viewer: Viewer, run_id: str, outputs: RunOutputs
) -> list[tuple[str, str]]:
    """The map's "Colour by" choices; status alone when the run's signals cannot be read
    (the map itself must not fail on a damaged quality file)."""
    try:
        signals = outputs.signals
    except SignalsError:
        return [("status", "status")]
    tags, _ = _run_tags(request, viewer, run_id)
    return colour_options(signals, list(tags))
