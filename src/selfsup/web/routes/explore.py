"""Acting on a run's signals (issue 12): near-duplicate groups with a "keep this one" choice,
"find similar" from any image, and the values the embedding map colours its points by.

Pages:

* ``GET /runs/{id}/near-duplicates``: every near-duplicate group of
  ``filenames/near_duplicate_filenames.txt`` side by side (thumbnails, each member's
  distance to the kept one), :data:`GROUPS_PER_PAGE` groups a page;
* ``POST /runs/{id}/near-duplicates/{group}/keep`` (form field ``index``): records the
  user's choice as tags (the run's tag store: ``tags.json`` for ``selfsup view``, the
  database for ``selfsup serve``): the chosen member gets :data:`KEEP_TAG`, the others
  :data:`DROP_TAG`, and the opposite tag is taken off each, so choosing again replaces the
  earlier choice. The choices export like any tag (``/runs/{id}/export?tag=drop``: the
  file list of the copies to delete) and feed a next run as tag inputs;
* ``GET /runs/{id}/images/{index}/similar``: the ``k`` nearest samples of one sample, with
  the form to search from an uploaded image instead;
* ``GET /runs/{id}/similar``: that form alone; ``POST /runs/{id}/similar`` (multipart form:
  ``image``, optional ``k``): the ``k`` nearest samples of an uploaded image.

JSON under ``/ui-api``:

* ``GET /ui-api/runs/{id}/similar?index=&k=``: ``{"index", "results": [{"index",
  "filename", "status", "distance"}]}``, nearest first;
* ``GET /ui-api/runs/{id}/colour?by=``: the per-sample values of one signal for the map
  (``status``, ``folder``, ``issue``, ``near_duplicate``, ``tag:<name>``,
  ``score:<name>``): ``{"by", "kind": "category", "categories", "codes"}`` (a code per
  sample, -1 none) or ``{"by", "kind": "number", "values", "min", "max"}`` (``null`` none).

"Find similar" searches the run's own embeddings (:meth:`RunOutputs.neighbours`: exact,
numpy, over the normalised matrix cached once per run). An uploaded image is checked here
(:func:`~selfsup.apphelpers.query_image.check_query_image`: format, size, pixels, a full
decode; 400 naming what is accepted otherwise), embedded by the app's
:class:`~selfsup.apphelpers.query_image.ImageEmbedder` (``app.state.image_embedder``, given
by :mod:`selfsup.cli.apps`: the run's own model; the web app never imports torch) and
searched the same exact way (:func:`nearest_to_vector`). An app built without an embedder,
or a run without a model to embed with (precomputed embeddings), says why on the page (409).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from numpy.typing import NDArray

from selfsup.apphelpers.http_errors import ApiError, bad_request
from selfsup.apphelpers.query_image import (
    ACCEPTED_QUERY_IMAGES,
    QUERY_IMAGE_MAX_BYTES,
    BadQueryImage,
    EmbedderUnavailable,
    ImageEmbedder,
    RunModelFiles,
    check_query_image,
)
from selfsup.apphelpers.web_backend import InvalidTag, Viewer, WebNotFound, check_tag
from selfsup.runfolder import CONFIG_YAML
from selfsup.utils.names import display_name
from selfsup.web.backend import RunView
from selfsup.web.outputs import STATUSES, Neighbour, RunOutputs
from selfsup.web.routes.common import (
    NO_STORE,
    api_view,
    backend_of,
    cross_site_message,
    error_page,
    is_same_origin,
    not_found_page,
    open_page_view,
    render,
    run_crumbs,
    sample_or_none,
    segment,
)
from selfsup.web.sessions import ApiViewer, PageViewer
from selfsup.web.signals import RunSignals, SignalsError
from selfsup.web.tags import TagStorageError

router = APIRouter(include_in_schema=False)

KEEP_TAG: Final = "keep"
"""Tag of the member the user keeps in a near-duplicate group."""
DROP_TAG: Final = "drop"
"""Tag of the other members of a group whose member to keep was chosen."""
GROUPS_PER_PAGE: Final = 50
SIMILAR_DEFAULT: Final = 24
"""Results of "find similar" unless ``?k=`` asks for another number."""
SIMILAR_MAX: Final = 200
THUMB_SIZE: Final = 160


def _signals_or_page(outputs: RunOutputs, run_id: str, viewer: Viewer) -> RunSignals | HTMLResponse:
    try:
        return outputs.signals
    except SignalsError as exc:
        return error_page(
            viewer, 409, "Signals unavailable", str(exc), back=(f"/runs/{segment(run_id)}", "Run")
        )


@router.get("/runs/{run_id}/near-duplicates")
def near_duplicates_page(
    request: Request, viewer: PageViewer, run_id: str, page: int = 1
) -> Response:
    """The run's near-duplicate groups, each with its members side by side."""
    view = open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    outputs = view.outputs
    signals = _signals_or_page(outputs, run_id, viewer)
    if isinstance(signals, HTMLResponse):
        return signals
    backend = backend_of(request)
    try:
        keep = set(backend.names_with_tag(viewer, run_id, KEEP_TAG))
        drop = set(backend.names_with_tag(viewer, run_id, DROP_TAG))
    except (TagStorageError, WebNotFound) as exc:
        return error_page(viewer, 409, "Tags unavailable", str(exc))
    n_pages = max(1, math.ceil(len(signals.groups) / GROUPS_PER_PAGE))
    page = min(max(page, 1), n_pages)
    shown = signals.groups[(page - 1) * GROUPS_PER_PAGE : page * GROUPS_PER_PAGE]
    groups = []
    for group in shown:
        members = []
        for position, index in enumerate(group.members.tolist()):
            sample = outputs.sample(index)
            distance = float(group.distances[position])
            members.append(
                {
                    "sample": sample,
                    "distance": _distance_text(distance, bool(group.by_embedding[position])),
                    "run_kept": index == group.kept,
                    "choice": KEEP_TAG
                    if sample.filename in keep
                    else (DROP_TAG if sample.filename in drop else ""),
                }
            )
        groups.append({"id": group.id, "members": members})
    base = f"/runs/{segment(run_id)}/near-duplicates"
    return render(
        "near_duplicates.html",
        viewer=viewer,
        page="near-duplicates",
        title=f"Near duplicates · {view.summary.name}",
        crumbs=run_crumbs(view.summary, ("Near duplicates", None)),
        wide=True,
        run=view.summary,
        groups=groups,
        n_groups=len(signals.groups),
        n_members=int(np.count_nonzero(signals.group_of >= 0)),
        page_number=page,
        n_pages=n_pages,
        prev_href=f"{base}?page={page - 1}" if page > 1 else None,
        next_href=f"{base}?page={page + 1}" if page < n_pages else None,
        keep_tag=KEEP_TAG,
        drop_tag=DROP_TAG,
        n_keep=len(keep),
        n_drop=len(drop),
        thumb_size=THUMB_SIZE,
    )


def _distance_text(distance: float, by_embedding: bool) -> str:
    if math.isnan(distance):
        return "–"
    return f"{distance:.3f}" if by_embedding else f"{distance:.0f} bits"


@router.post("/runs/{run_id}/near-duplicates/{group_id}/keep")
def keep_member(
    request: Request,
    viewer: PageViewer,
    run_id: str,
    group_id: int,
    index: Annotated[int, Form()],
) -> Response:
    """Record ``index`` as the member of group ``group_id`` to keep (module docstring), then
    go back to the groups page (303)."""
    if not is_same_origin(request):
        return error_page(viewer, 403, "Forbidden", cross_site_message(request))
    view = open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    signals = _signals_or_page(view.outputs, run_id, viewer)
    if isinstance(signals, HTMLResponse):
        return signals
    position = next((i for i, g in enumerate(signals.groups) if g.id == group_id), None)
    if position is None:
        return not_found_page(viewer, f"run {run_id!r} has no near-duplicate group {group_id}")
    group = signals.groups[position]
    members = group.members.tolist()
    if index not in members:
        return error_page(
            viewer,
            400,
            "Not in the group",
            f"sample {index} is not a member of group {group_id} (members: "
            f"{', '.join(map(str, members))})",
        )
    names = view.outputs.filenames()
    kept = names[index]
    others = [names[i] for i in members if i != index]
    backend = backend_of(request)
    try:
        backend.untag(viewer, run_id, [kept], DROP_TAG)
        backend.tag(viewer, run_id, [kept], KEEP_TAG)
        if others:
            backend.untag(viewer, run_id, others, KEEP_TAG)
            backend.tag(viewer, run_id, others, DROP_TAG)
    except (TagStorageError, WebNotFound) as exc:
        return error_page(viewer, 409, "Tags unavailable", str(exc))
    page = position // GROUPS_PER_PAGE + 1
    target = f"/runs/{segment(run_id)}/near-duplicates"
    if page > 1:
        target += f"?page={page}"
    return RedirectResponse(f"{target}#group-{group_id}", status_code=303)


@router.get("/runs/{run_id}/images/{index}/similar")
def similar_page(
    request: Request, viewer: PageViewer, run_id: str, index: str, k: int = SIMILAR_DEFAULT
) -> Response:
    """The ``k`` samples most similar to sample ``index`` (its embedding's nearest)."""
    view = open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    outputs = view.outputs
    sample = sample_or_none(outputs, index)
    if sample is None:
        return not_found_page(viewer, f"run {run_id!r} has no sample {index!r}")
    if not 1 <= k <= SIMILAR_MAX:
        return error_page(viewer, 400, "Bad k", f"k must be from 1 to {SIMILAR_MAX}, got {k}")
    base = f"/runs/{segment(run_id)}/images"
    return render(
        "similar.html",
        viewer=viewer,
        page="similar",
        title=f"Similar to {sample.filename} · {view.summary.name}",
        crumbs=run_crumbs(
            view.summary,
            ("Images", base),
            (sample.filename, f"{base}/{sample.index}"),
            ("Similar", None),
        ),
        wide=True,
        run=view.summary,
        sample=sample,
        results=outputs.neighbours(sample.index, k=k),
        k=k,
        thumb_size=THUMB_SIZE,
        **_upload_context(request),
    )


def _embedder(request: Request) -> ImageEmbedder | None:
    embedder: ImageEmbedder | None = getattr(request.app.state, "image_embedder", None)
    return embedder


def _upload_context(request: Request) -> dict[str, Any]:
    """What the upload form of the similar page shows: whether it works, and the limits."""
    unavailable = (
        None
        if _embedder(request) is not None
        else "Searching from an uploaded image is unavailable: this app was built without an "
        "image embedder (it needs the run's model and torch; selfsup view and selfsup serve "
        "provide one)."
    )
    return {
        "upload_unavailable": unavailable,
        "accepted_images": ACCEPTED_QUERY_IMAGES,
        "similar_max": SIMILAR_MAX,
    }


def run_model_files(outputs: RunOutputs) -> RunModelFiles:
    """Where the run's model is described: its resolved config and the checkpoints kept in
    its output folder (for the app's :class:`ImageEmbedder`)."""
    return RunModelFiles(outputs.folder / CONFIG_YAML, tuple(sorted(outputs.folder.glob("*.ckpt"))))


def nearest_to_vector(outputs: RunOutputs, vector: NDArray[np.floating], k: int) -> list[Neighbour]:
    """The ``k`` samples nearest to ``vector`` ``(D,)`` (L2-normalised here) by the L2
    distance between normalised embeddings, nearest first, equal distances by row; exact,
    about ``R x D`` multiply-adds.

    Raises:
        ValueError: ``vector`` has another dimension than the run's embeddings, or is not
            finite.
    """
    emb, sample_row, _ = outputs.embedding_arrays()
    query = np.asarray(vector, dtype=np.float64).reshape(-1)
    if query.shape[0] != emb.shape[1]:
        raise ValueError(
            f"the run's model gave {query.shape[0]} values, and its embeddings have "
            f"{emb.shape[1]}: the model is not the one the run embedded with"
        )
    if not np.isfinite(query).all():
        raise ValueError("the run's model gave NaN or infinite values for this image")
    norm = float(np.linalg.norm(query))
    unit = query / norm if norm > 0 else query
    samples = np.flatnonzero(sample_row >= 0)
    rows = sample_row[samples]
    if rows.size == 0:
        return []
    distances = np.linalg.norm(emb[rows].astype(np.float64) - unit, axis=1)
    order = np.lexsort((rows, distances))[:k]
    return [Neighbour(outputs.sample(int(samples[i])), float(distances[i])) for i in order]


@router.get("/runs/{run_id}/similar")
def similar_upload_page(request: Request, viewer: PageViewer, run_id: str) -> Response:
    """The form to find the samples most similar to an uploaded image."""
    view = open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    return _similar_upload(request, viewer, view, None, [], SIMILAR_DEFAULT)


@router.post("/runs/{run_id}/similar")
def similar_to_upload(
    request: Request,
    viewer: PageViewer,
    run_id: str,
    image: Annotated[UploadFile, File(description="the query image")],
    k: Annotated[int, Form()] = SIMILAR_DEFAULT,
) -> Response:
    """The ``k`` samples most similar to the uploaded ``image`` (module docstring): 400 for
    a bad upload or ``k``, 409 when the run's model cannot embed it here."""
    if not is_same_origin(request):
        return error_page(viewer, 403, "Forbidden", cross_site_message(request))
    view = open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    back = (f"/runs/{segment(run_id)}/similar", "Find similar")
    if not 1 <= k <= SIMILAR_MAX:
        return error_page(viewer, 400, "Bad k", f"k must be from 1 to {SIMILAR_MAX}, got {k}", back)
    name = display_name(image.filename or "the upload")
    data = image.file.read(QUERY_IMAGE_MAX_BYTES + 1)
    embedder = _embedder(request)
    try:
        check_query_image(data, repr(name))
        if embedder is None:
            raise EmbedderUnavailable(str(_upload_context(request)["upload_unavailable"]))
        vector = embedder.embed(run_model_files(view.outputs), data)
        results = nearest_to_vector(view.outputs, np.asarray(vector), k)
    except BadQueryImage as exc:
        return error_page(viewer, 400, "Not an accepted image", str(exc), back)
    except (EmbedderUnavailable, ValueError) as exc:
        return error_page(viewer, 409, "Cannot search from an image", str(exc), back)
    return _similar_upload(request, viewer, view, name, results, k)


def _similar_upload(
    request: Request,
    viewer: Viewer,
    view: RunView,
    name: str | None,
    results: list[Neighbour],
    k: int,
) -> HTMLResponse:
    base = f"/runs/{segment(view.summary.id)}"
    return render(
        "similar.html",
        viewer=viewer,
        page="similar",
        title=f"Find similar · {view.summary.name}",
        crumbs=run_crumbs(view.summary, ("Images", f"{base}/images"), ("Similar", None)),
        wide=True,
        run=view.summary,
        sample=None,
        upload_name=name,
        results=results,
        k=k,
        thumb_size=THUMB_SIZE,
        **_upload_context(request),
    )


@router.get("/ui-api/runs/{run_id}/similar")
def api_similar(
    request: Request,
    viewer: ApiViewer,
    run_id: str,
    index: Annotated[int, Query(ge=0)],
    k: Annotated[int, Query(ge=1, le=SIMILAR_MAX)] = SIMILAR_DEFAULT,
) -> JSONResponse:
    """The ``k`` nearest samples of sample ``index``, nearest first (module docstring)."""
    outputs = api_view(request, viewer, run_id).outputs
    if index >= len(outputs.samples):
        last = len(outputs.samples) - 1
        raise bad_request(f"index: {index} is not a sample of run {run_id!r} (use 0 to {last})")
    results = [
        {
            "index": nb.sample.index,
            "filename": display_name(nb.sample.filename),
            "status": nb.sample.status,
            "distance": round(nb.distance, 6),
        }
        for nb in outputs.neighbours(index, k=k)
    ]
    return JSONResponse({"index": index, "results": results}, headers=NO_STORE)


def colour_options(signals: RunSignals, tags: list[str]) -> list[tuple[str, str]]:
    """``(value of ?by=, label)`` of every signal the map can colour by, for the select box."""
    options = [("status", "status")]
    if signals.folders:
        options.append(("folder", "label (top folder)"))
    if signals.issues:
        options.append(("issue", "quality issue"))
    if signals.groups:
        options.append(("near_duplicate", "near-duplicate group"))
    options += [(f"tag:{t}", f"tag #{t}") for t in tags]
    options += [(f"score:{s}", s) for s in signals.score_names]
    return options


def _finite_list(values: np.ndarray[Any, np.dtype[np.float64]]) -> list[float | None]:
    return [None if not math.isfinite(v) else round(v, 6) for v in values.tolist()]


@router.get("/ui-api/runs/{run_id}/colour")
def api_colour(
    request: Request, viewer: ApiViewer, run_id: str, by: str = "status"
) -> JSONResponse:
    """One signal per sample for the map (module docstring); 400 naming the accepted ``by``."""
    outputs = api_view(request, viewer, run_id).outputs
    try:
        signals = outputs.signals
    except SignalsError as exc:
        raise ApiError(409, "SIGNALS_UNAVAILABLE", str(exc)) from None
    n = len(outputs.samples)
    if by == "status":
        codes = outputs.status_codes().astype(np.int64)
        return _category(by, list(STATUSES), codes)
    if by == "folder":
        return _category(by, signals.folders, signals.folder_code)
    if by == "issue":
        # A sample's first issue in file order; "several" would hide which, so the first.
        names = list(signals.issues)
        codes = np.full(n, -1, dtype=np.int64)
        for code in range(len(names) - 1, -1, -1):
            codes[signals.issues[names[code]]] = code
        return _category(by, names, codes)
    if by == "near_duplicate":
        codes = np.where(signals.group_of >= 0, 1, -1).astype(np.int64)
        kept = [g.kept for g in signals.groups]
        codes[kept] = 0
        return _category(by, ["kept member", "copy"], codes)
    if by.startswith("tag:"):
        try:
            tag = check_tag(by.removeprefix("tag:"))
            names_tagged = backend_of(request).names_with_tag(viewer, run_id, tag)
        except InvalidTag as exc:
            raise bad_request(str(exc), "INVALID_TAG") from None
        except TagStorageError as exc:
            raise ApiError(409, "TAGS_UNAVAILABLE", str(exc)) from None
        codes = np.full(n, -1, dtype=np.int64)
        index = outputs.name_index
        codes[[index[m] for m in names_tagged if m in index]] = 0
        return _category(by, [f"#{tag}"], codes)
    if by.startswith("score:") and by.removeprefix("score:") in signals.score_sources:
        values = signals.values(by.removeprefix("score:"))
        finite = values[np.isfinite(values)]
        return JSONResponse(
            {
                "by": by,
                "kind": "number",
                "values": _finite_list(values),
                "min": float(finite.min()) if finite.size else None,
                "max": float(finite.max()) if finite.size else None,
            },
            headers=NO_STORE,
        )
    accepted = ", ".join(value for value, _ in colour_options(signals, ["<name>"]))
    raise bad_request(f"by: cannot colour by {by[:60]!r}; use one of {accepted}")


def _category(by: str, categories: list[str], codes: np.ndarray[Any, Any]) -> JSONResponse:
    return JSONResponse(
        {"by": by, "kind": "category", "categories": categories, "codes": codes.tolist()},
        headers=NO_STORE,
    )
