"""The ASGI apps of ``selfsup serve`` and ``selfsup view``, with the parts only this layer may
put together.

The one place where the server and the web app meet. Neither imports the other
(``tests/test_layers.py``): the server finds runs for the pages
(:class:`selfsup.server.web_backend.ServerBackend`) and the web app opens them
(:class:`selfsup.web.backend.RunViewOpener`), through the interface of
:mod:`selfsup.apphelpers.web_backend`.

It is also where both apps get their :class:`~selfsup.apphelpers.query_image.ImageEmbedder`
(:class:`RunImageEmbedder`): "find similar" from an uploaded image embeds it with the run's
own model, which needs torch, which neither app may import. Importing this module is cheap
and never imports torch; the embedder imports it on its first image.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsup.apphelpers.query_image import BadQueryImage, EmbedderUnavailable, RunModelFiles

if TYPE_CHECKING:
    from fastapi import FastAPI

    from selfsup.server.settings import ServerSettings

#: File name extension the upload is written with, by Pillow format (the embedding loader
#: picks its decoder by extension, as for the run's own files).
_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}


class RunImageEmbedder:
    """Embeds an uploaded image with a finished run's model, exactly as the run embedded its
    samples: the run's resolved config (model, ``collate.input_size``, loader) and the
    checkpoint it embedded with go through :func:`selfsup.core.embed`, the function the
    pipeline calls, so decoding, resizing and normalisation are the run's own.

    Which model a run embedded with follows the pipeline's rule (``_model_step``):
    ``checkpoint=`` without training -> that file; ``model.weights`` without training and
    without a checkpoint -> the pretrained backbone; otherwise the checkpoint the run trained,
    kept as ``*.ckpt`` in its output folder (or uploaded as a ``CHECKPOINT`` artifact). Runs
    over precomputed ``embeddings=`` and object-level runs (whose rows are crops) have no
    model for a whole image here.

    Each image rebuilds the model from its checkpoint (a fraction of a second for small
    models on a CPU; not benchmarked): uploads are rare, and a kept model would hold memory
    for every run someone once searched.
    """

    def embed(self, model: RunModelFiles, image: bytes) -> list[float]:
        """The run's embedding ``(D,)`` of ``image`` (see the class docstring).

        Raises:
            EmbedderUnavailable: no usable model for this run, saying why.
            BadQueryImage: the run's loader could not read the image.
        """
        from selfsup.errors import ConfigError, DataError

        cfg = _run_config(model.config_file)
        checkpoint = _embedding_checkpoint(cfg, model.checkpoints, model.config_file)
        fmt = _format_of(image)
        with tempfile.TemporaryDirectory(prefix="selfsup-query-") as tmp:
            name = "query" + _SUFFIX.get(fmt, ".tif")
            (Path(tmp) / name).write_bytes(image)
            lightly = cfg.lightly.model_copy(deep=True)
            lightly.input_dir = tmp
            # One image: worker processes would cost more than they save.
            lightly.loader.num_workers = 0
            lightly.embedding.engine = "local"
            try:
                from selfsup.core import embed

                vectors, _, names = embed(lightly, checkpoint=checkpoint, filenames=[name])
            except (ConfigError, DataError) as exc:
                raise EmbedderUnavailable(
                    f"the run's model cannot embed images here: {exc}"
                ) from None
        if len(names) != 1:
            raise BadQueryImage("the run's image loader could not read the upload")
        return [float(v) for v in vectors[0]]


def _format_of(image: bytes) -> str:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(image)) as opened:
        return str(opened.format or "")


def _run_config(config_file: Path) -> Any:
    """The run's :class:`~selfsup.config.RunConfig` as it ran (YAML of the run folder or the
    worker's JSON artifact)."""
    from selfsup.config import RunConfig
    from selfsup.config._base import load_yaml_file, validate
    from selfsup.errors import ConfigError

    if not config_file.is_file():
        raise EmbedderUnavailable(
            f"the run's resolved config {str(config_file)!r} is missing, so its model is unknown"
        )
    try:
        return validate(RunConfig, load_yaml_file(config_file), str(config_file))
    except ConfigError as exc:
        raise EmbedderUnavailable(f"the run's config cannot be read: {exc}") from None


def _embedding_checkpoint(cfg: Any, checkpoints: Sequence[Path], config_file: Path) -> str:
    """The checkpoint the run embedded with (``""``: the pretrained ``model.weights``)."""
    if cfg.embeddings:
        raise EmbedderUnavailable(
            f"the run read precomputed embeddings ({cfg.embeddings}), so it has no model to "
            "embed an uploaded image with"
        )
    if cfg.object_level.task_name:
        raise EmbedderUnavailable(
            f"the run is object-level (task {cfg.object_level.task_name!r}): its embeddings "
            "are of object crops, not of whole images"
        )
    if cfg.checkpoint and not cfg.enable_training:
        if not os.path.isfile(cfg.checkpoint):
            raise EmbedderUnavailable(
                f"the run embedded with checkpoint {cfg.checkpoint!r}, which is not on this machine"
            )
        return str(cfg.checkpoint)
    if not cfg.checkpoint and not cfg.enable_training and cfg.lightly.model.weights:
        return ""
    kept = [p for p in checkpoints if p.is_file()]
    if not kept:
        raise EmbedderUnavailable(
            "the run trained its model, and its checkpoint (*.ckpt) is not kept with the run "
            f"(next to {str(config_file)!r})"
        )
    # A rerun may leave an older checkpoint next to the one it embedded with: the newest.
    return str(max(kept, key=lambda p: p.stat().st_mtime_ns))


def create_view_app(
    folders: Sequence[str | os.PathLike[str]],
    token: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    input_dir: str | os.PathLike[str] | None = None,
) -> FastAPI:
    """The app ``selfsup view`` runs: :func:`selfsup.web.app.create_view_app` with
    :class:`RunImageEmbedder` for "find similar" from an uploaded image."""
    from selfsup.web.app import create_view_app as create_web_app

    return create_web_app(
        folders, token=token, cache_dir=cache_dir, input_dir=input_dir, embedder=RunImageEmbedder()
    )


def create_server_app(settings: ServerSettings | None = None) -> FastAPI:
    """The app ``selfsup serve`` runs: :func:`selfsup.server.app.create_app` (the API, its
    database migrated first) with the web app's pages, thumbnails and files on the same
    origin, their sessions signed with the key in ``<data dir>/web_session.key``, and
    :class:`RunImageEmbedder` for "find similar" from an uploaded image (pages and API).

    Args:
        settings: as for :func:`selfsup.server.app.create_app`; defaults read
            ``$SELFSUP_DATABASE_URL``, ``$SELFSUP_HOME`` and ``$SELFSUP_LOCAL_ROOTS``.
    """
    from selfsup.server.app import create_app
    from selfsup.server.web_backend import ServerBackend
    from selfsup.web.app import SESSION_KEY_FILE, install_web
    from selfsup.web.backend import RunViewOpener
    from selfsup.web.sessions import SessionSigner, load_or_create_key

    app = create_app(settings)
    resolved: ServerSettings = app.state.settings
    embedder = RunImageEmbedder()
    # The API's POST /v1/runs/{id}/similar reads it from here (the server never builds one).
    app.state.image_embedder = embedder
    install_web(
        app,
        ServerBackend(app.state.sessions, resolved, RunViewOpener()),
        SessionSigner(load_or_create_key(Path(resolved.data_dir) / SESSION_KEY_FILE)),
        embedder=embedder,
    )
    return app
