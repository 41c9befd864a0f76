"""``selected_sequence_length``: select runs of consecutive video frames instead of single frames.

With ``selected_sequence_length=L`` (lightly's worker key) the selection picks *sequences* of
``L`` consecutive frames of one video, e.g. for labelling tasks that need temporal context.
Everything here is pure (arrays in, arrays out); the steps are:

1. :func:`sequence_candidates` cuts every video into candidate sequences: the frames of a video
   that are samples of the run are sorted by frame index and split into maximal runs of
   consecutive frame numbers; every run is cut into non-overlapping windows of ``L`` frames
   from its start, and a remainder shorter than ``L`` belongs to no candidate. So a sequence
   never spans two videos, never spans a gap (a frame that was corrupt, an exact duplicate or
   outside ``relevant_filenames_file``), and no two candidates share a frame. Windows start at
   the first frame of each run, so an unchanged video gives the same candidates in every run.
2. :func:`sequence_inputs` turns per-frame selection inputs into per-sequence ones: embeddings,
   scores and numeric metadata are averaged over the ``L`` frames (the selection L2-normalises
   embeddings itself, so a mean embedding is the sequence's direction), categorical metadata
   takes the first frame's value, predictions add up the frames' class counts (objects in the
   sequence), and query sets given as frame indices become those frames' embeddings.
3. The selection engine chooses among sequences; sequences with a frame chosen earlier (a
   datapool's preselected frames) count as already chosen, so diversity is measured from them
   and their frames are never picked again (:func:`sequence_preselected`).
4. :func:`expand_sequences` turns chosen sequences back into frame indices, sequence by
   sequence in pick order, frames in frame order.

Counting: an integer ``n_samples`` counts *frames* and is rounded down to whole sequences
(``n_samples=25, L=10`` selects 2 sequences, 20 frames; ``n_samples < L`` is an error). A
fractional ``n_samples`` or ``proportion_samples`` is a fraction of the candidate sequences,
hence about that fraction of the frames that lie in candidates. ``min_distance`` applies to
the distances between sequence embeddings.

Images: an image is no video frame and cannot be part of a sequence. With ``L > 1`` the
default (``images="error"``) refuses a run whose samples include images and names them,
because a mixed folder with sequence selection is most likely a mistake (restrict the run to
the videos with ``relevant_filenames_file``); ``images="exclude"`` leaves them out of the
selection instead. With ``L = 1`` every sample, image or frame, is its own sequence and the
result equals a plain :func:`selfsup.selection.select`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from selfsup.errors import ConfigError, DataError
from selfsup.selection import ClassCounts, SelectionConfig, SelectionInputs, SelectionResult, select

__all__ = [
    "SequenceCandidates",
    "SequenceSelection",
    "expand_sequences",
    "select_sequences",
    "sequence_candidates",
    "sequence_embeddings",
    "sequence_inputs",
    "sequence_preselected",
    "sequence_selection_config",
    "sequence_values",
]

ImagePolicy = Literal["error", "exclude"]

# How many names an error message lists before summarising the rest.
_MAX_LISTED = 10


def _list_names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    rest = len(names) - _MAX_LISTED
    return f"{shown} and {rest} more" if rest > 0 else shown


class SequenceCandidates(NamedTuple):
    """Candidate sequences of a run.

    Attributes:
        starts: ``(S,)`` int64 frame index (within its video) of each sequence's first frame.
        members: ``(S, L)`` int64 sample indices of each sequence's frames, in frame order.
            Candidates are ordered by the sample index of their first frame.
    """

    starts: NDArray[np.int64]
    members: NDArray[np.int64]


def sequence_candidates(
    sources: Sequence[str],
    frame_indices: Sequence[int | None],
    length: int,
    *,
    images: ImagePolicy = "error",
) -> SequenceCandidates:
    """Non-overlapping windows of ``length`` consecutive frames of one video (module doc, 1.).

    Args:
        sources: ``(N,)`` the file each sample comes from (``SampleRecord.source``): the
            video's path for a frame, the image's path for an image.
        frame_indices: ``(N,)`` frame index of each sample in its video, None for an image.
        length: Frames per sequence, ``L >= 1``. With 1, every sample (images included) is a
            sequence of its own.
        images: What to do with images when ``length > 1``: ``"error"`` or ``"exclude"``.

    Returns:
        ``starts (S,)`` and ``members (S, L)``; ``S`` may be 0 (e.g. all videos shorter
        than ``L``).

    Raises:
        ConfigError: ``length < 1`` or ``images`` is not a known policy.
        DataError: the inputs differ in length, a frame is listed twice, or (``"error"``)
            samples are images; the message names them.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(f"selected_sequence_length must be an integer >= 1, got {length!r}")
    if images not in ("error", "exclude"):
        raise ConfigError(f"images must be 'error' or 'exclude', got {images!r}")
    n = len(sources)
    if len(frame_indices) != n:
        raise DataError(
            f"sources has {n} entries but frame_indices {len(frame_indices)}; give one per sample"
        )
    if length == 1:
        starts = np.asarray([-1 if f is None else f for f in frame_indices], dtype=np.int64)
        return SequenceCandidates(starts, np.arange(n, dtype=np.int64).reshape(n, 1))
    image_rows = [i for i in range(n) if frame_indices[i] is None]
    if image_rows and images == "error":
        raise DataError(
            f"selected_sequence_length={length} selects runs of video frames, but "
            f"{len(image_rows)} sample(s) are images: "
            f"{_list_names([sources[i] for i in image_rows])}; restrict the run to videos "
            "(relevant_filenames_file) or use selected_sequence_length=1"
        )
    by_video: dict[str, list[tuple[int, int]]] = {}
    for i in range(n):
        frame = frame_indices[i]
        if frame is not None:
            by_video.setdefault(sources[i], []).append((frame, i))
    starts_list: list[int] = []
    members_list: list[list[int]] = []
    for video, frames in by_video.items():
        frames.sort()
        for (a, _), (b, _) in itertools.pairwise(frames):
            if a == b:
                raise DataError(f"frame {a} of video {video!r} is listed twice")
        run_start = 0
        for k in range(1, len(frames) + 1):
            if k == len(frames) or frames[k][0] != frames[k - 1][0] + 1:
                # frames[run_start:k] are consecutive: cut them into whole windows
                for w in range(run_start, k - length + 1, length):
                    starts_list.append(frames[w][0])
                    members_list.append([i for _, i in frames[w : w + length]])
                run_start = k
    members = np.asarray(members_list, dtype=np.int64).reshape(-1, length)
    starts = np.asarray(starts_list, dtype=np.int64)
    order = np.argsort(members[:, 0], kind="stable") if members.size else np.zeros(0, np.int64)
    return SequenceCandidates(starts[order], members[order])


def _check_members(members: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    m = np.asarray(members)
    if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
        raise DataError(f"members must be an (S, L) integer array, got {m.dtype} {m.shape}")
    if m.size and (m.min() < 0 or m.max() >= n):
        raise DataError(f"members must index {n} samples, got [{m.min()}, {m.max()}]")
    return m.astype(np.int64, copy=False)


def sequence_embeddings(
    embeddings: NDArray[np.floating[Any]], members: NDArray[np.int64]
) -> NDArray[np.float32]:
    """``(S, D)`` float32 mean of the ``(N, D)`` frame embeddings of each sequence."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise DataError(f"embeddings must be (N, D), got shape {emb.shape}")
    m = _check_members(members, emb.shape[0])
    out = np.zeros((m.shape[0], emb.shape[1]), dtype=np.float64)
    for j in range(m.shape[1]):  # L passes of (S, D) instead of one (S, L, D) temporary
        out += emb[m[:, j]]
    result: NDArray[np.float32] = (out / max(m.shape[1], 1)).astype(np.float32)
    return result


def sequence_values(values: NDArray[Any], members: NDArray[np.int64]) -> NDArray[Any]:
    """``(S,)`` per-sequence value of ``(N,)`` per-frame values.

    Numbers (and booleans) are averaged as float64, so a missing value (NaN) in any frame
    makes the sequence's value missing; other values (categories) take the first frame's.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"values must be 1-D, got shape {arr.shape}")
    m = _check_members(members, arr.shape[0])
    if np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_:
        if m.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        mean: NDArray[np.float64] = arr.astype(np.float64)[m].mean(axis=1)
        return mean
    if arr.dtype == object and all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in arr.tolist()
    ):
        numeric = np.array([np.nan if v is None else float(v) for v in arr.tolist()])
        return sequence_values(numeric, m)
    first: NDArray[Any] = arr[m[:, 0]] if m.shape[0] else arr[:0]
    return first


def sequence_inputs(inputs: SelectionInputs, members: NDArray[np.int64]) -> SelectionInputs:
    """Per-sequence :class:`SelectionInputs` from per-frame ones (module docstring, 2.)."""
    m = _check_members(members, inputs.n)
    embeddings = None if inputs.embeddings is None else sequence_embeddings(inputs.embeddings, m)
    scores = {
        task: {name: sequence_values(v, m) for name, v in by_name.items()}
        for task, by_name in inputs.scores.items()
    }
    metadata = {key: sequence_values(v, m) for key, v in inputs.metadata.items()}
    predictions = {
        task: ClassCounts(counts.names, counts.counts[m].sum(axis=1))
        for task, counts in inputs.predictions.items()
    }
    queries: dict[str, NDArray[Any]] = {}
    for name, query in inputs.queries.items():
        q = np.asarray(query)
        queries[name] = inputs.query_embeddings(name) if q.ndim == 1 else q
    return SelectionInputs(
        embeddings=embeddings,
        scores=scores,
        metadata=metadata,
        predictions=predictions,
        queries=queries,
        n_samples=m.shape[0],
    )


def sequence_preselected(
    members: NDArray[np.int64], preselected: Sequence[int] | NDArray[np.integer[Any]], n: int
) -> NDArray[np.int64]:
    """``(k,)`` ascending indices of the sequences holding any preselected frame.

    Args:
        members: ``(S, L)`` sample indices of the candidates.
        preselected: Sample indices chosen earlier (e.g. ``Datapool.selected``).
        n: Number of samples (bounds of ``preselected``).
    """
    m = _check_members(members, n)
    pre = np.asarray(preselected, dtype=np.int64).reshape(-1)
    if pre.size and (pre.min() < 0 or pre.max() >= n):
        raise DataError(f"preselected indices must lie in [0, {n}), got [{pre.min()}, {pre.max()}]")
    mask = np.zeros(n, dtype=bool)
    mask[pre] = True
    hit: NDArray[np.int64] = np.flatnonzero(mask[m].any(axis=1)).astype(np.int64)
    return hit


def sequence_selection_config(config: SelectionConfig, length: int) -> SelectionConfig:
    """``config`` with an integer ``n_samples`` (frames) turned into whole sequences.

    Fractions (``n_samples`` as a float, ``proportion_samples``) and ``min_distance`` are kept:
    they apply to the candidate sequences as they are.

    Raises:
        ConfigError: ``n_samples`` is fewer frames than one sequence.
    """
    if length == 1 or not isinstance(config.n_samples, int):
        return config
    n_sequences = config.n_samples // length
    if n_sequences < 1:
        raise ConfigError(
            f"n_samples={config.n_samples} is fewer frames than one sequence of "
            f"selected_sequence_length={length}; set n_samples to at least {length} "
            "(it counts frames and is rounded down to whole sequences)"
        )
    return replace(config, n_samples=n_sequences)


def expand_sequences(
    members: NDArray[np.int64], chosen: Sequence[int] | NDArray[np.integer[Any]]
) -> NDArray[np.int64]:
    """``(k * L,)`` sample indices of the ``chosen`` sequences: in pick order, frames in order."""
    m = np.asarray(members, dtype=np.int64)
    if m.ndim != 2:
        raise DataError(f"members must be an (S, L) array, got shape {m.shape}")
    c = np.asarray(chosen, dtype=np.int64).reshape(-1)
    if c.size and (c.min() < 0 or c.max() >= m.shape[0]):
        raise DataError(
            f"chosen sequences must lie in [0, {m.shape[0]}), got [{c.min()}, {c.max()}]"
        )
    frames: NDArray[np.int64] = m[c].reshape(-1)
    return frames


@dataclass(frozen=True)
class SequenceSelection:
    """What :func:`select_sequences` chose, per sequence and per frame.

    Attributes:
        frames: Frame-level result, shaped like a plain selection over the ``N`` samples:
            ``indices`` the ``(k * L,)`` chosen frames (:func:`expand_sequences`),
            ``distances`` and ``scores`` of each frame's sequence repeated ``L`` times,
            ``removed_by`` per frame (its sequence's filter, -1 for frames in no candidate),
            counts (``n_candidates``, ``n_requested``, ``n_below_min_distance``) in frames.
        sequences: The selection over the ``S`` candidate sequences.
        candidates: The candidates (``starts``, ``members``).
    """

    frames: SelectionResult
    sequences: SelectionResult
    candidates: SequenceCandidates


def select_sequences(
    inputs: SelectionInputs,
    config: SelectionConfig,
    sources: Sequence[str],
    frame_indices: Sequence[int | None],
    length: int,
    preselected: Sequence[int] | NDArray[np.integer[Any]] = (),
    *,
    images: ImagePolicy = "error",
) -> SequenceSelection:
    """Select sequences of ``length`` consecutive frames; pure (the whole module docstring).

    Args:
        inputs: Per-frame selection inputs, one row per sample.
        config: The run's selection; an integer ``n_samples`` counts frames.
        sources, frame_indices: Per sample, as in :func:`sequence_candidates`.
        length: ``selected_sequence_length``.
        preselected: Sample indices chosen earlier; their sequences count as chosen.
        images: Policy for images when ``length > 1`` (see :func:`sequence_candidates`).

    Raises:
        DataError: ``sources`` and ``inputs`` differ in length; no candidate sequence exists
            (every video is shorter than ``length`` or has no run of that many consecutive
            usable frames); or see the helpers.
        ConfigError: see :func:`sequence_selection_config`.
    """
    if len(sources) != inputs.n:
        raise DataError(
            f"sources has {len(sources)} entries but the selection inputs have {inputs.n} rows; "
            "give one source and frame index per sample"
        )
    candidates = sequence_candidates(sources, frame_indices, length, images=images)
    members = candidates.members
    if length == 1:
        result = select(inputs, config, preselected)
        return SequenceSelection(frames=result, sequences=result, candidates=candidates)
    if members.shape[0] == 0:
        raise DataError(
            f"no sequence of selected_sequence_length={length} consecutive frames exists among "
            f"the {inputs.n} samples: every video is shorter or broken by corrupt or duplicate "
            "frames; lower selected_sequence_length"
        )
    seq_config = sequence_selection_config(config, length)
    seq_pre = sequence_preselected(members, preselected, inputs.n)
    result = select(sequence_inputs(inputs, members), seq_config, seq_pre)
    removed = np.full(inputs.n, -1, dtype=np.int16)
    removed[members.reshape(-1)] = np.repeat(result.removed_by, length)
    frames = SelectionResult(
        indices=expand_sequences(members, result.indices),
        distances=np.repeat(result.distances, length),
        scores=np.repeat(result.scores, length),
        removed_by=removed,
        filters=result.filters,
        n_candidates=result.n_candidates * length,
        n_requested=result.n_requested * length,
        stop_reason=result.stop_reason,
        n_below_min_distance=result.n_below_min_distance * length,
    )
    return SequenceSelection(frames=frames, sequences=result, candidates=candidates)
