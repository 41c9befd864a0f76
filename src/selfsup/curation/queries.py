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
from selfsup.selection.config import SelectionConfig, SelectionConfigModel, SimilarityStrategy
from selfsup.selection.input_types import QuerySource

if TYPE_CHECKING:
    from selfsup.config import RunConfig

__all__ = [
    "EXCLUDED_PREFIX",
    "QuerySet",
    "RunQueries",
    "SampleInputs",
    "SampleList",
    "build_queries",
    "build_sample_inputs",
    "check_queries",
    "check_sample_inputs",
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

    Also checks ``selection_config.preselected`` and ``excluded`` (:func:`check_sample_inputs`).

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
    check_sample_inputs(cfg)


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


# ------------------------------------------------------------------ preselected and excluded

#: The ``removed_by`` description of a sample ``selection_config.excluded`` removed.
EXCLUDED_PREFIX = "EXCLUDED"


@dataclass(frozen=True)
class SampleList:
    """One resolved ``selection_config.preselected`` / ``excluded`` source, for report.json.

    Attributes:
        source: The config's description (``tag keepers``, ``samples_file keep.txt``).
        names: The named samples that are candidates of this run, in the source's order.
        not_candidates: Named samples that are no candidates of this run (deleted since a tag
            was given, corrupt, duplicates, or not in the input).
    """

    source: str
    names: list[str]
    not_candidates: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """One entry of ``job.extra.selection_inputs``: counts first, then the names."""
        return {
            "source": self.source,
            "n_samples": len(self.names),
            "n_not_candidates": len(self.not_candidates),
            "names": list(self.names),
            "not_candidates": list(self.not_candidates),
        }


@dataclass(frozen=True)
class SampleInputs:
    """``selection_config.preselected`` and ``excluded`` of a run, as candidate rows.

    Attributes:
        preselected: ``(P,)`` int64 candidate rows always selected, in source order.
        excluded_by: ``(N,)`` int64 per candidate the index into ``exclusions`` of the first
            excluded source naming it (-1: none); None when nothing is excluded.
        exclusions: ``removed_by`` description per excluded source (``EXCLUDED tag junk``).
        preselected_sets: What each preselected source held.
        excluded_sets: What each excluded source held.
    """

    preselected: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    excluded_by: NDArray[np.int64] | None = None
    exclusions: list[str] = field(default_factory=list)
    preselected_sets: list[SampleList] = field(default_factory=list)
    excluded_sets: list[SampleList] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """``{"selection_inputs": {...}}`` for ``job.extra`` of report.json; empty when the
        config has neither input (so runs without them write what they always wrote)."""
        if not self.preselected_sets and not self.excluded_sets:
            return {}
        n_excluded = 0 if self.excluded_by is None else int((self.excluded_by >= 0).sum())
        return {
            "selection_inputs": {
                "n_preselected": int(self.preselected.size),
                "n_excluded": n_excluded,
                "preselected": [s.to_json() for s in self.preselected_sets],
                "excluded": [s.to_json() for s in self.excluded_sets],
            }
        }


def _sample_sources(cfg: RunConfig) -> tuple[tuple[QuerySource, ...], tuple[QuerySource, ...]]:
    """``(preselected, excluded)`` of the run's ``selection_config``."""
    model = cfg.selection_config
    if not isinstance(model, SelectionConfigModel):
        return (), ()  # no selection, or a structural check's raw dict
    return tuple(model.preselected), tuple(model.excluded)


def _listed_names(
    source: QuerySource, cfg: RunConfig, where: str, samples: Sequence[str] | None
) -> list[str]:
    """The sample names a ``preselected``/``excluded`` source names. A folder must lie in the
    input (its samples: those of ``samples`` under it; at the check, before the samples are
    known, ``samples`` is None and a folder names nothing yet).

    Raises:
        ConfigError: an unreadable file, an unknown tag (listing the tags), or a folder that
            is missing or outside the input.
    """
    if source.samples_file:
        path = _resolve(source.samples_file, Path(cfg.input_dir))
        if not _inside(path, Path(cfg.input_dir).resolve()):
            _check_root(path, cfg, f"{where}.samples_file")
    names = _source_names(source, cfg, where)
    if names is not None:
        return list(dict.fromkeys(names))
    folder, rel = _folder(source, Path(cfg.input_dir))
    if not folder.is_dir():
        raise ConfigError(
            f"{where}.folder: {source.folder!r} is not a folder ({str(folder)!r}); give a "
            "folder of the input, relative to input_dir or absolute"
        )
    if rel is None:
        raise ConfigError(
            f"{where}.folder: {source.folder!r} lies outside input_dir {cfg.input_dir!r}; "
            "preselected and excluded samples are samples of the input: give a folder inside "
            "it, or name the samples ({samples: [...]}, {samples_file: ...}, {tag: ...})"
        )
    if samples is None:
        return []
    prefix = f"{rel}/" if rel else ""
    return [n for n in samples if n.startswith(prefix)]


def _check_disjoint(
    preselected: Sequence[tuple[str, Sequence[str]]],
    excluded: Sequence[tuple[str, Sequence[str]]],
) -> None:
    """A sample both preselected and excluded is a contradiction the run cannot settle."""
    pre = {name: where for where, names in preselected for name in names}
    for where, names in excluded:
        both = [n for n in names if n in pre]
        if both:
            shown = ", ".join(repr(n) for n in both[:5])
            more = f" and {len(both) - 5} more" if len(both) > 5 else ""
            raise ConfigError(
                f"{where}: {shown}{more} also preselected ({pre[both[0]]}); a sample cannot be "
                "both always selected and never selected: remove it from one of the two"
            )


def check_sample_inputs(cfg: RunConfig) -> None:
    """Fail before any work when ``selection_config.preselected`` / ``excluded`` cannot be
    resolved (a missing file or folder, an unknown tag, a folder outside the input) or name a
    sample both ways. Names that are no sample of the input are not errors (a tag may name
    samples deleted since); the run warns about them.

    Raises:
        ConfigError: naming the key path and the source at fault.
    """
    pre_sources, ex_sources = _sample_sources(cfg)
    if not pre_sources and not ex_sources:
        return
    if pre_sources and cfg.selected_sequence_length > 1:
        raise ConfigError(
            "selection_config.preselected: a run selecting sequences "
            f"(selected_sequence_length={cfg.selected_sequence_length}) picks whole sequences "
            "and cannot start from single samples; remove preselected or set "
            "selected_sequence_length=1"
        )
    # A folder stands for every sample under it: ``<rel>/`` (``""`` for the whole input).
    pre: list[tuple[str, Sequence[str]]] = []
    pre_folders: list[tuple[str, str]] = []
    for i, source in enumerate(pre_sources):
        where = f"selection_config.preselected[{i}]"
        pre.append((where, _listed_names(source, cfg, where, None)))
        if source.folder:
            pre_folders.append((where, _folder_prefix(source, cfg)))
    ex: list[tuple[str, Sequence[str]]] = []
    for i, source in enumerate(ex_sources):
        where = f"selection_config.excluded[{i}]"
        names = _listed_names(source, cfg, where, None)
        ex.append((where, names))
        if not source.folder:
            # Named samples under a preselected folder.
            for pre_where, prefix in pre_folders:
                _check_disjoint([(pre_where, names)], [(where, _under(names, prefix))])
            continue
        prefix = _folder_prefix(source, cfg)
        for pre_where, names_pre in pre:
            _check_disjoint([(pre_where, names_pre)], [(where, _under(names_pre, prefix))])
        for pre_where, pre_prefix in pre_folders:
            if prefix.startswith(pre_prefix) or pre_prefix.startswith(prefix):
                raise ConfigError(
                    f"{where}: folder {source.folder!r} overlaps the preselected folder of "
                    f"{pre_where}; a sample cannot be both always selected and never selected"
                )
    _check_disjoint(pre, ex)


def _folder_prefix(source: QuerySource, cfg: RunConfig) -> str:
    """``<path relative to input_dir>/`` of a folder source inside the input (``""``: the
    input itself); checked to lie inside by :func:`_listed_names` first."""
    _, rel = _folder(source, Path(cfg.input_dir))
    return f"{rel}/" if rel else ""


def _under(names: Sequence[str], prefix: str) -> list[str]:
    """The names that lie under the folder ``prefix``."""
    return [n for n in names if n.startswith(prefix)]


def build_sample_inputs(cfg: RunConfig, samples: Sequence[str]) -> SampleInputs:
    """``selection_config.preselected`` / ``excluded`` as rows of the candidates.

    Args:
        cfg: The run's config.
        samples: ``(N,)`` the sample of each candidate row (the candidate's name, or for an
            object crop the image it was cut from: a named image preselects or excludes all
            its crops).

    Raises:
        ConfigError: a source cannot be resolved (see :func:`check_sample_inputs`), or a
            sample is both preselected and excluded.
    """
    pre_sources, ex_sources = _sample_sources(cfg)
    if not pre_sources and not ex_sources:
        return SampleInputs()
    rows_of: dict[str, list[int]] = {}
    for i, name in enumerate(samples):
        rows_of.setdefault(name, []).append(i)

    def resolve(
        sources: Sequence[QuerySource], key: str
    ) -> tuple[list[tuple[str, list[str]]], list[SampleList]]:
        named: list[tuple[str, list[str]]] = []
        sets: list[SampleList] = []
        for i, source in enumerate(sources):
            where = f"selection_config.{key}[{i}]"
            names = _listed_names(source, cfg, where, samples)
            found = [n for n in names if n in rows_of]
            named.append((where, found))
            sets.append(
                SampleList(source.describe(), found, [n for n in names if n not in rows_of])
            )
        return named, sets

    pre_named, pre_sets = resolve(pre_sources, "preselected")
    ex_named, ex_sets = resolve(ex_sources, "excluded")
    _check_disjoint(pre_named, ex_named)
    missing = [n for s in pre_sets for n in s.not_candidates]
    if missing:
        logger.warning(
            "selection_config.preselected: %d named sample(s) are no candidates of this run "
            "(deleted, corrupt, duplicates or not in the input) and are not selected: %s%s",
            len(missing),
            ", ".join(missing[:5]),
            " ..." if len(missing) > 5 else "",
        )
    ignored = sum(len(s.not_candidates) for s in ex_sets)
    if ignored:
        logger.info(
            "selection_config.excluded: %d named sample(s) are no candidates of this run; ignored",
            ignored,
        )
    pre_rows = [r for _, names in pre_named for n in names for r in rows_of[n]]
    preselected = np.asarray(list(dict.fromkeys(pre_rows)), dtype=np.int64)
    excluded_by: NDArray[np.int64] | None = None
    if any(names for _, names in ex_named):
        excluded_by = np.full(len(samples), -1, dtype=np.int64)
        for j, (_, names) in enumerate(ex_named):
            rows = np.asarray([r for n in names for r in rows_of[n]], dtype=np.int64)
            if rows.size:
                free = rows[excluded_by[rows] < 0]
                excluded_by[free] = j
    for info in (*pre_sets, *ex_sets):
        logger.info("selection input %s: %d sample(s)", info.source, len(info.names))
    return SampleInputs(
        preselected=preselected,
        excluded_by=excluded_by,
        exclusions=[f"{EXCLUDED_PREFIX} {s.describe()}" for s in ex_sources],
        preselected_sets=pre_sets,
        excluded_sets=ex_sets,
    )
