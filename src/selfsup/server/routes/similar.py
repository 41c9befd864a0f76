"""Similarity search over a finished run's embeddings (issue 12): ``POST /v1/runs/{id}/similar``.

A query is a sample of the run (its file name), an embedding vector, or an image (its file
bytes, base64 in the JSON body); the answer is the
``k`` nearest samples of the run by the L2 distance between L2-normalised embeddings (0 to
2, as in the report and the web app), nearest first, the query sample itself left out.

The index
    The run's ``EMBEDDINGS`` artifact (``data/embeddings.csv``, uploaded by the worker when
    the run completes) is read once, L2-normalised and kept in memory as one float32 matrix
    (:class:`EmbeddingIndex`), per stored file: :data:`INDEX_CACHE` of them, least recently
    used first out, re-read when the file's size or modification time changes. A search is
    exact (:func:`selfsup.utils.vectors.knn`, numpy): about ``N x D`` multiply-adds per
    query (not benchmarked).

Images
    Embedding an image needs the run's model and torch, which the server never imports
    (``tests/test_layers.py``). The server checks the uploaded bytes
    (:func:`~selfsup.apphelpers.query_image.check_query_image`: format, size, pixels, a full
    decode; 400 ``BAD_IMAGE`` naming what is accepted) and hands them, with the run's
    ``CONFIG`` and ``CHECKPOINT`` artifacts, to the
    :class:`~selfsup.apphelpers.query_image.ImageEmbedder` at ``app.state.image_embedder``,
    which ``selfsup serve`` (:mod:`selfsup.cli.apps`) supplies: the run's own model, input
    size and normalisation. Without one (the API built alone), or for a run without a model
    to embed with (precomputed embeddings, a given checkpoint that was never uploaded), the
    answer is 409 ``EMBEDDER_UNAVAILABLE`` saying why. A vector sent instead must come from
    the run's model: one from another model gives meaningless neighbours, which the server
    cannot detect beyond the dimension check.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from fastapi import APIRouter, Request
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from selfsup.apphelpers.http_errors import ApiError, bad_request, not_found
from selfsup.apphelpers.query_image import (
    ACCEPTED_QUERY_IMAGES,
    QUERY_IMAGE_MAX_BYTES,
    BadQueryImage,
    EmbedderUnavailable,
    ImageEmbedder,
    RunModelFiles,
    check_query_image,
)
from selfsup.errors import DataError
from selfsup.runfolder import RunFolder
from selfsup.server.auth import DbSession, UserPrincipal
from selfsup.server.errors import error_responses
from selfsup.server.models import Artifact
from selfsup.server.routes.runs import get_run
from selfsup.server.settings import ServerSettings
from selfsup.utils.vectors import knn, l2_normalize

router = APIRouter(prefix="/v1", tags=["runs"])

MAX_K: Final = 1000
"""Most neighbours one query may ask for."""
MAX_DIMENSION: Final = 65_536
"""Longest embedding vector a query may carry."""
INDEX_CACHE: Final = 4
"""Embedding indexes kept in memory (one per run's embeddings file)."""


class SimilarRequest(BaseModel):
    """Body of ``POST /v1/runs/{run_id}/similar``: exactly one of ``filename``,
    ``embedding`` and ``image``."""

    model_config = ConfigDict(extra="forbid")

    filename: str | None = Field(
        default=None, max_length=4096, description="A sample of the run to search from"
    )
    embedding: list[float] | None = Field(
        default=None,
        max_length=MAX_DIMENSION,
        description="An embedding from the run's model (normalised here) to search from",
    )
    image: str | None = Field(
        default=None,
        # base64 makes 4 characters of 3 bytes; the body limit usually bites first.
        max_length=(QUERY_IMAGE_MAX_BYTES + 2) // 3 * 4,
        description=f"An image file, base64-encoded, embedded with the run's model: "
        f"{ACCEPTED_QUERY_IMAGES}",
    )
    k: int = Field(default=10, ge=1, le=MAX_K, description="How many neighbours")

    @model_validator(mode="after")
    def _one_query(self) -> SimilarRequest:
        given = [v for v in (self.filename, self.embedding, self.image) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of filename, embedding and image")
        return self


class SimilarSample(BaseModel):
    """One neighbour: its file name and L2 distance (normalised embeddings, 0 to 2)."""

    filename: str
    distance: float


class SimilarResponse(BaseModel):
    """The neighbours of a query, nearest first (equal distances by row of the file)."""

    run_id: str
    query: str | None = Field(description="The query sample, or null for a vector or image query")
    results: list[SimilarSample]


@dataclass(frozen=True)
class EmbeddingIndex:
    """A run's embeddings ready for exact nearest-neighbour search.

    Attributes:
        names: ``(N,)`` sample names, by row.
        vectors: ``(N, D)`` float32, L2-normalised rows (a zero row stays zero).
        row_of: name -> row.
    """

    names: list[str]
    vectors: NDArray[np.float32]
    row_of: dict[str, int]

    @classmethod
    def from_embeddings(cls, vectors: NDArray[np.floating], names: list[str]) -> EmbeddingIndex:
        """Index ``vectors`` ``(N, D)`` named ``names`` (normalised here)."""
        if vectors.ndim != 2 or vectors.shape[0] != len(names):
            raise ValueError(
                f"expected (N, D) vectors for {len(names)} names, got shape {vectors.shape}"
            )
        unit = l2_normalize(np.asarray(vectors, dtype=np.float32))
        return cls(list(names), unit, {name: row for row, name in enumerate(names)})

    def nearest_to_row(self, row: int, k: int) -> list[tuple[str, float]]:
        """The ``k`` nearest rows to ``row`` other than itself, nearest first."""
        return self._search(self.vectors[row : row + 1], k, exclude=row)

    def nearest_to_vector(self, vector: NDArray[np.floating], k: int) -> list[tuple[str, float]]:
        """The ``k`` nearest rows to ``vector`` ``(D,)`` (normalised here), nearest first.

        Raises:
            ValueError: ``vector`` does not have the index's dimension, or is not finite.
        """
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"the embedding has {query.shape[1]} values; this run's embeddings have "
                f"{self.vectors.shape[1]}"
            )
        if not np.isfinite(query).all():
            raise ValueError("the embedding holds NaN or infinite values")
        return self._search(l2_normalize(query), k, exclude=None)

    def _search(
        self, query: NDArray[np.float32], k: int, exclude: int | None
    ) -> list[tuple[str, float]]:
        if self.vectors.shape[0] == 0:
            return []
        found = knn(
            query,
            self.vectors,
            min(k, self.vectors.shape[0]),
            exclude_self=exclude is not None,
            query_ids=None if exclude is None else np.array([exclude]),
            backend="numpy",
            distance_dtype=np.float64,
        )
        return [
            (self.names[int(row)], float(dist))
            for row, dist in zip(found.indices[0], found.distances[0], strict=True)
            if row >= 0
        ]


_indexes: OrderedDict[tuple[str, int, int], EmbeddingIndex] = OrderedDict()
_indexes_lock = threading.Lock()


def index_of_file(path: Path) -> EmbeddingIndex:
    """The :class:`EmbeddingIndex` of the embeddings CSV ``path``, from the cache when the
    file is unchanged (module docstring).

    Raises:
        OSError: the file cannot be read. DataError: it is no embeddings CSV.
    """
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _indexes_lock:
        cached = _indexes.get(key)
        if cached is not None:
            _indexes.move_to_end(key)
            return cached
    vectors, _labels, names = RunFolder.read_embeddings(path)
    index = EmbeddingIndex.from_embeddings(vectors, names)
    with _indexes_lock:
        _indexes[key] = index
        while len(_indexes) > INDEX_CACHE:
            _indexes.popitem(last=False)
    return index


@router.post(
    "/runs/{run_id}/similar",
    responses=error_responses(400, 401, 404, 409, 410, 422),
    summary="Find the samples of a run most similar to one of its samples, a vector or an image",
)
def find_similar(
    run_id: str,
    body: SimilarRequest,
    principal: UserPrincipal,
    session: DbSession,
    request: Request,
) -> SimilarResponse:
    """The ``k`` nearest samples of the run by embedding distance (module docstring).

    404 for another user's or an unknown run, or a ``filename`` that is no sample of the
    run; 409 ``NO_EMBEDDINGS`` while the run has no embeddings artifact (not completed, or
    no sample was embedded); 400 for a vector of the wrong dimension; for an ``image``: 400
    ``BAD_IMAGE`` for bytes that are no accepted image, 409 ``EMBEDDER_UNAVAILABLE`` when
    no model can embed it here (module docstring).
    """
    run = get_run(session, principal.user_id, run_id)
    artifact = session.scalars(
        select(Artifact)
        .where(Artifact.run_id == run.id, Artifact.type == "EMBEDDINGS")
        .order_by(Artifact.created_at.desc())
    ).first()
    if artifact is None:
        raise ApiError(
            409,
            "NO_EMBEDDINGS",
            f"run {run_id!r} has no embeddings yet (state {run.state}): they are uploaded when "
            "the run completes",
        )
    settings: ServerSettings = request.app.state.settings
    path = Path(settings.data_dir) / artifact.storage_path
    try:
        index = index_of_file(path)
    except (OSError, DataError) as exc:
        raise ApiError(
            410, "ARTIFACT_MISSING", f"the embeddings of run {run_id!r} cannot be read: {exc}"
        ) from None
    if body.filename is not None:
        row = index.row_of.get(body.filename)
        if row is None:
            raise not_found("sample", body.filename)
        found = index.nearest_to_row(row, body.k)
    else:
        vector = (
            body.embedding
            if body.embedding is not None
            else _embed_image(request, session, run.id, body.image or "")
        )
        try:
            found = index.nearest_to_vector(np.asarray(vector), body.k)
        except ValueError as exc:
            if body.image is not None:
                raise ApiError(409, "EMBEDDER_UNAVAILABLE", str(exc)) from None
            raise bad_request(str(exc)) from None
    return SimilarResponse(
        run_id=run.id,
        query=body.filename,
        results=[SimilarSample(filename=name, distance=dist) for name, dist in found],
    )


def _embed_image(request: Request, session: DbSession, run_id: str, encoded: str) -> list[float]:
    """The embedding of the base64 ``encoded`` image by run ``run_id``'s model (module
    docstring); ApiError 400 ``BAD_IMAGE`` or 409 ``EMBEDDER_UNAVAILABLE``."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(
            "image: not valid base64; send the file's bytes base64-encoded: "
            f"{ACCEPTED_QUERY_IMAGES}",
            "BAD_IMAGE",
        ) from None
    try:
        check_query_image(data, "image")
    except BadQueryImage as exc:
        raise bad_request(str(exc), "BAD_IMAGE") from None
    embedder: ImageEmbedder | None = getattr(request.app.state, "image_embedder", None)
    if embedder is None:
        raise ApiError(
            409,
            "EMBEDDER_UNAVAILABLE",
            "this server was built without an image embedder (it needs torch): run selfsup "
            "serve, or embed the image with the run's CHECKPOINT artifact and send the vector",
        )
    settings: ServerSettings = request.app.state.settings
    artifacts = list(
        session.scalars(
            select(Artifact)
            .where(Artifact.run_id == run_id, Artifact.type.in_(("CONFIG", "CHECKPOINT")))
            .order_by(Artifact.created_at)
        )
    )
    configs = [a for a in artifacts if a.type == "CONFIG"]
    if not configs:
        raise ApiError(
            409,
            "EMBEDDER_UNAVAILABLE",
            f"run {run_id!r} has no CONFIG artifact, so its model is unknown",
        )
    files = RunModelFiles(
        Path(settings.data_dir) / configs[-1].storage_path,
        tuple(
            Path(settings.data_dir) / a.storage_path for a in artifacts if a.type == "CHECKPOINT"
        ),
    )
    # The request's transaction holds nothing the embedding needs; do not keep it open.
    session.rollback()
    try:
        return embedder.embed(files, data)
    except BadQueryImage as exc:
        raise bad_request(f"image: {exc}", "BAD_IMAGE") from None
    except EmbedderUnavailable as exc:
        raise ApiError(409, "EMBEDDER_UNAVAILABLE", str(exc)) from None
