"""Query sets of SIMILARITY selection in a curation run: checked early, built in the embed step.

A SIMILARITY strategy of ``selection_config`` reads ``{type: EMBEDDINGS, query: ...}`` where the
query is a :class:`~selfsup.selection.input_types.QuerySource`:

* ``{samples: [names]}`` / ``{samples_file: path}``: samples of the input by name (the
  paths relative to ``input_dir`` that the run's filename lists use);
* ``{tag: name, run?: folder}``: the samples tagged ``name`` in the web app (``tags.json`` of
  the run folder ``run``, by default the run's own ``output_dir``);
* ``{folder: path}``: a folder of query images. Inside the input, its samples are the queries
  (they stay candidates, like every sample of the input). Outside it, its images are checked
  like the input's (corrupt ones are reported and skipped), embedded with the run's model and
  transform, and never become candidates.

Relative paths are relative to ``input_dir`` (a scheduled run's input datasource); an absolute
path outside the input must lie under one of ``allowed_roots`` when the run has any (the
worker sets them to the datasource's roots).

:func:`check_queries` runs before anything is written, so a typo in a name or path fails the
run at once; :func:`build_queries` runs in the embed step, once the candidates and the model are
known, and gives the arrays :class:`~selfsup.selection.SelectionInputs` takes plus what
``report.json`` records (``job.extra.queries``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from selfsup.errors import ConfigError, DataError
from selfsup.runfolder import TAGS_JSON, RunFolder
from selfsup.selection.config import SelectionConfig, SimilarityStrategy
from selfsup.selection.input_types import QuerySource

if TYPE_CHECKING:
    from selfsup.config import RunConfig

__all__ = [
    "QuerySet",
    "RunQueries",
    "build_queries",
    "check_queries",
    "query_strategies",
    "read_query_names",
    "read_tag_names",
]

logger = logging.getLogger(__name__)

#: How a run's options describe a query (the accepted forms, for error messages).
ACCEPTED_QUERIES = (
    "{samples: [names]}, {samples_file: path}, {folder: path} or {tag: name, run?: folder}"
)


@dataclass(frozen=True)
class QuerySet:
    """One resolved query set, as ``report.json`` records it.

    Attributes:
        key: Its name in :attr:`SelectionInputs.queries` (:attr:`QuerySource.key`).
        source: The config's description (``samples_file q.txt``, ``folder /data/q``).
        where: ``"input"`` (samples of the input) or ``"outside"`` (a folder outside it).
        names: The query images used: sample names, or paths relative to the outside folder.
        corrupt: Images of an outside folder that could not be decoded, ``name: reason``.
        not_candidates: Named samples of the input that are no candidates (corrupt, duplicate
            or lost during the run); left out of the set.
    """

    key: str
    source: str
    where: str
    names: list[str]
    corrupt: list[str] = field(default_factory=list)
    not_candidates: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``job.extra.queries`` entry: counts first, then the names."""
        return {
            "source": self.source,
            "where": self.where,
            "n_queries": len(self.names),
            "n_corrupt": len(self.corrupt),
            "n_not_candidates": len(self.not_candidates),
            "names": list(self.names),
            "corrupt": list(self.corrupt),
            "not_candidates": list(self.not_candidates),
        }


@dataclass(frozen=True)
class RunQueries:
    """The query sets of a run.

    Attributes:
        arrays: ``key -> query set`` for :attr:`SelectionInputs.queries`: an ``(M,)`` int64
            array of candidate indices (queries in the input) or ``(M, D)`` float32 embeddings
            (an outside folder).
        sets: What each set holds, in strategy order.
    """

    arrays: dict[str, NDArray[Any]] = field(default_factory=dict)
    sets: list[QuerySet] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """``{"queries": [...]}`` for ``job.extra`` of report.json; empty without queries."""
        return {"queries": [s.to_json() for s in self.sets]} if self.sets else {}


def query_strategies(selection: SelectionConfig) -> list[tuple[int, SimilarityStrategy]]:
    """The SIMILARITY strategies of ``selection`` with their index in ``strategies``."""
    return [(i, s) for i, s in enumerate(selection.strategies) if isinstance(s, SimilarityStrategy)]


def _resolve(path: str, input_dir: Path) -> Path:
    """``path`` as an absolute path: relative ones are relative to ``input_dir``."""
    p = Path(path).expanduser()
    return (p if p.is_absolute() else input_dir / p).resolve()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_root(path: Path, cfg: RunConfig, where: str) -> None:
    """A path outside the input must lie under an allowed root when the run has any."""
    roots = [Path(r).resolve() for r in cfg.allowed_roots]
    if roots and not any(_inside(path, r) for r in roots):
        raise ConfigError(
            f"{where} {str(path)!r} lies outside the input and outside the allowed roots of "
            f"this run ({', '.join(str(r) for r in roots)}); put the queries in the input or "
            "under one of those roots"
        )


def read_query_names(path: Path, where: str) -> list[str]:
    """Sample names of a ``samples_file``: one per line; blank lines and ``#`` comments skipped.

    Raises:
        ConfigError: the file is missing, unreadable or lists no name.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: file {str(path)!r} does not exist (a relative path is relative to input_dir)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read {str(path)!r}: {exc}") from None
    names = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    if not names:
        raise ConfigError(f"{where}: {str(path)!r} lists no sample name (one per line)")
    return names


def read_tag_names(source: QuerySource, cfg: RunConfig, where: str) -> list[str]:
    """The sample names tagged ``source.tag`` in ``tags.json`` of ``source.run`` (default: the
    run's ``output_dir``).

    Raises:
        ConfigError: no run folder, an unreadable tags file, or no such tag (the message
            lists the tags there).
    """
    folder = source.run or cfg.output_dir
    if not folder:
        raise ConfigError(
            f"{where}.tag: {source.tag!r} is a tag of a run folder, and this run has no "
            "output_dir; give run: <the run folder tagged in selfsup view>"
        )
    if not Path(folder).is_dir():
        raise ConfigError(f"{where}.run: run folder {folder!r} does not exist")
    if source.run:
        _check_root(Path(folder).resolve(), cfg, f"{where}.run")
    try:
        tags = RunFolder(folder).read_tags()
    except DataError as exc:
        raise ConfigError(f"{where}.tag: {exc}") from None
    names = tags.get(source.tag)
    if not names:
        known = ", ".join(sorted(t for t, n in tags.items() if n)) or "none"
        raise ConfigError(
            f"{where}.tag: no sample is tagged {source.tag!r} in {str(Path(folder) / TAGS_JSON)!r}"
            f"; tags there: {known}"
        )
    return list(names)


def _source_names(source: QuerySource, cfg: RunConfig, where: str) -> list[str] | None:
    """The names a ``samples``/``samples_file``/``tag`` source gives; None for a folder."""
    if source.samples:
        return list(source.samples)
    if source.tag:
        return read_tag_names(source, cfg, where)
    if source.samples_file:
        path = _resolve(source.samples_file, Path(cfg.input_dir))
        return read_query_names(path, f"{where}.samples_file")
    return None


def _folder(source: QuerySource, input_dir: Path) -> tuple[Path, str | None]:
    """The query folder and, inside the input, its path relative to ``input_dir``."""
    folder = _resolve(source.folder, input_dir)
    root = input_dir.resolve()
    if _inside(folder, root):
        rel = folder.relative_to(root).as_posix()
        return folder, "" if rel == "." else rel
    return folder, None


def check_queries(cfg: RunConfig) -> None:
    """Fail before any work when a SIMILARITY query of ``cfg`` cannot be resolved.

    Checks that every named sample is a file of the input, that files and folders exist (and
    lie under ``allowed_roots`` when outside the input), and that a folder outside the input
    can be embedded (a run with precomputed ``embeddings=`` has no model for it).

    Raises:
        ConfigError: naming the strategy's key path, the name or path at fault and what is
            accepted.
    """
    input_dir = Path(cfg.input_dir)
    for i, strategy in query_strategies(cfg.selection()):
        where = f"selection_config.strategies[{i}].input.query"
        source = strategy.query
        if not isinstance(source, QuerySource):
            raise ConfigError(
                f"{where}: {source!r} names a query set, which only the Python API "
                f"(SelectionInputs.queries) provides; a run takes {ACCEPTED_QUERIES}"
            )
        if source.samples_file:
            path = _resolve(source.samples_file, input_dir)
            if not _inside(path, input_dir.resolve()):
                _check_root(path, cfg, f"{where}.samples_file")
        names = _source_names(source, cfg, where)
        if names is not None:
            missing = [n for n in names if not (input_dir / n).is_file()]
            if source.tag and len(missing) < len(names):
                continue  # tagged samples gone since are reported at the run as not candidates
            if missing:
                shown = ", ".join(repr(n) for n in missing[:5])
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise ConfigError(
                    f"{where}: no sample {shown}{more} in input_dir {cfg.input_dir!r}; query "
                    "samples are image files named by their path relative to input_dir, "
                    "e.g. 'class_0/img_0.png' (as in filenames/sampled_filenames_excluding_"
                    "datapool.txt)"
                )
            continue
        folder, rel = _folder(source, input_dir)
        if not folder.is_dir():
            raise ConfigError(
                f"{where}.folder: {source.folder!r} is not a folder ({str(folder)!r}); give a "
                "folder of query images, relative to input_dir or absolute"
            )
        if rel is None:
            _check_root(folder, cfg, f"{where}.folder")
            if cfg.embeddings:
                raise ConfigError(
                    f"{where}.folder: {source.folder!r} lies outside the input, and a run with "
                    "precomputed embeddings= has no model to embed its images; give "
                    "checkpoint= (or let the run train), or put the queries in the input"
                )


def _input_set(
    source: QuerySource,
    names: Sequence[str] | None,
    folder_rel: str | None,
    candidates: Sequence[str],
    where: str,
) -> tuple[NDArray[np.int64], QuerySet]:
    """Candidate indices of a query set inside the input."""
    index = {name: i for i, name in enumerate(candidates)}
    if names is None:
        assert folder_rel is not None
        prefix = f"{folder_rel}/" if folder_rel else ""
        wanted = [n for n in candidates if n.startswith(prefix)]
        absent: list[str] = []
    else:
        wanted = [n for n in dict.fromkeys(names) if n in index]
        absent = [n for n in dict.fromkeys(names) if n not in index]
    if not wanted:
        what = f"folder {source.folder!r}" if names is None else source.describe()
        raise DataError(
            f"{where}: the query {what} holds no usable sample of the input"
            + (f" ({', '.join(repr(n) for n in absent[:5])} are corrupt, duplicates or lost)")
            * bool(absent)
        )
    if absent:
        logger.warning(
            "%s: %d query sample(s) are no candidates (corrupt, duplicate or lost) and are "
            "left out: %s",
            where,
            len(absent),
            ", ".join(absent[:5]),
        )
    indices = np.asarray([index[n] for n in wanted], dtype=np.int64)
    return indices, QuerySet(source.key, source.describe(), "input", wanted, [], absent)


def _outside_set(
    cfg: RunConfig,
    source: QuerySource,
    folder: Path,
    checkpoint: str,
    exclude: Sequence[Path],
    where: str,
) -> tuple[NDArray[np.float32], QuerySet]:
    """Embeddings of the images of a folder outside the input, with the run's model."""
    # Imported here: the check pool and the embedding import torch / multiprocessing.
    from selfsup.core import embed
    from selfsup.curation.checks import build_manifest
    from selfsup.data import ManifestDataset

    try:
        checked = build_manifest(
            folder,
            remove_exact_duplicates=False,
            num_workers=0,
            progress=False,
            file_timeout=cfg.check_timeout_s or None,
            allowed_roots=cfg.allowed_roots,
            exclude=exclude,
        )
    except DataError as exc:
        raise DataError(f"{where}: query folder {str(folder)!r}: {exc}") from None
    ok = [r for r in checked.records if r.status == "ok"]
    corrupt = [
        f"{r.filename}: {r.reason.value if r.reason is not None else 'corrupt'}"
        for r in checked.records
        if r.status == "corrupt"
    ]
    if corrupt:
        logger.warning(
            "%s: %d corrupt query image(s) in %s skipped: %s",
            where,
            len(corrupt),
            folder,
            "; ".join(corrupt[:5]),
        )
    if not ok:
        raise DataError(
            f"{where}: query folder {str(folder)!r} holds no decodable image "
            f"({len(corrupt)} corrupt: {'; '.join(corrupt[:5])})"
        )
    lightly = cfg.lightly.model_copy(deep=True)
    lightly.input_dir = str(folder)
    emb, _, names = embed(
        lightly,
        checkpoint=checkpoint,
        samples=ManifestDataset(folder, ok, classes=checked.classes),
    )
    if not len(names):
        raise DataError(f"{where}: no image of query folder {str(folder)!r} could be embedded")
    out = np.asarray(emb, dtype=np.float32)
    return out, QuerySet(source.key, source.describe(), "outside", list(names), corrupt)


def build_queries(
    cfg: RunConfig,
    selection: SelectionConfig,
    candidates: Sequence[str],
    checkpoint: str | None,
    exclude: Sequence[Path] = (),
) -> RunQueries:
    """The query sets of ``selection``'s SIMILARITY strategies for one run.

    Args:
        cfg: The run's config (input_dir, allowed_roots, the model's lightly config).
        selection: The selection that runs.
        candidates: Names of the selection's candidates, in row order.
        checkpoint: The checkpoint the candidates were embedded with; ``""`` for the
            pretrained ``model.weights`` without training; None when the run read
            precomputed embeddings (then no folder may lie outside the input).
        exclude: Folders to leave out of an outside query folder (the run's own output).

    Raises:
        ConfigError: a query cannot be resolved (see :func:`check_queries`).
        DataError: a query set has no usable image.
    """
    out = RunQueries()
    input_dir = Path(cfg.input_dir)
    for i, strategy in query_strategies(selection):
        where = f"selection_config.strategies[{i}].input.query"
        source = strategy.query
        if not isinstance(source, QuerySource):
            raise ConfigError(
                f"{where}: {source!r} names a query set, which only the Python API "
                f"(SelectionInputs.queries) provides; a run takes {ACCEPTED_QUERIES}"
            )
        if source.key in out.arrays:
            continue  # the same source in two strategies: one set
        names = _source_names(source, cfg, where)
        rel: str | None = None
        folder: Path | None = None
        if names is None:
            folder, rel = _folder(source, input_dir)
        array: NDArray[Any]
        if names is not None or rel is not None:
            array, info = _input_set(source, names, rel, candidates, where)
        else:
            assert folder is not None
            if checkpoint is None:
                raise ConfigError(
                    f"{where}.folder: {source.folder!r} lies outside the input, and this run "
                    "has no model to embed it (precomputed embeddings=)"
                )
            array, info = _outside_set(cfg, source, folder, checkpoint, exclude, where)
        out.arrays[source.key] = array
        out.sets.append(info)
        logger.info("query set %s: %d %s image(s)", info.source, len(info.names), info.where)
    return out
