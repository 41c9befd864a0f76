"""Near duplicates: a perceptual hash per sample, pairs within a Hamming distance, groups.

Exact duplicates (identical pixels, :func:`selfsup.curation.checks.mark_exact_duplicates`)
miss the copies that matter most in practice: the same picture re-encoded at another JPEG
quality, resized a little, shifted by a few pixels or made a little brighter. This module
finds those with a perceptual hash computed in the check step's single decode pass, so they
are found without any trained model, and can extend the groups with embedding distances
once a run has embeddings.

The perceptual hash (``phash``)
    The DCT hash of Zauner, "Implementation and Benchmarking of Perceptual Image Hash
    Functions" (2010), in the form popularised by N. Krawetz ("Looks Like It", hackerfactor
    2011) and the ``imagehash`` package:

    1. the image (its RGB form, as the metadata uses) is reduced to 32 x 32 pixels
       (PIL Lanczos) and converted to 8-bit luma ``L``;
    2. the 2-D DCT-II of the 32 x 32 luma, ``F[u, v] = sum_x sum_y L[y, x]
       cos(pi (2y + 1) u / 64) cos(pi (2x + 1) v / 64)`` (unnormalised: a common scale does
       not change the bits);
    3. the 8 x 8 lowest frequencies ``F[0:8, 0:8]`` are compared with their median: bit
       ``8 u + v`` (most significant first) is 1 where ``F[u, v] > median``.

    The 64 bits are stored as 16 lower-case hex digits (``SampleRecord.phash``). Low
    frequencies survive re-encoding, small resizes and shifts; a brightness change scales or
    shifts every coefficient alike (the DC term only, which is one of 64 bits), so it leaves
    the comparison with the median mostly unchanged.

The block hash (``bhash``), for shifts
    The DCT hash keeps frequencies up to 3.5 cycles per image, and a shift turns the phase
    of a frequency in proportion to the frequency and to the shift *as a fraction of the
    image*: a 3 x 2 pixel shift is 1.5 % of a 200 px image but 4.7 % of a 64 px one, and on
    64-160 px images such copies reach 16 bits, past the 14 that separate the closest
    distinct images there (``benchmarks/quality_issues.py --short-sides 64 160``). A
    second hash of the same 32 x 32 luma answers for those: the luma smoothed by the
    binomial filter ``[1, 2, 1] / 4`` along both axes (edges repeated), averaged over
    8 x 8 blocks of 4 x 4 pixels, and bit ``8 r + c`` set where block ``(r, c)`` is above
    the blocks' median (an average hash, Krawetz 2011, of a slightly smoothed image). Block
    means move by a
    fraction of a block under a shift of a few pixels, so shifted copies keep their block
    hash closer than their DCT hash, while distinct images stay far apart in both. It is
    stored as 16 hex digits (``SampleRecord.bhash``) and used only to confirm pairs the
    DCT hash puts just past the threshold (below).

Pairs and groups
    Two samples are near duplicates when the Hamming distance of their hashes is at most
    ``hash_distance`` (default :data:`DEFAULT_HASH_DISTANCE` = 10 of 64 bits), or when it is
    at most ``hash_distance +`` :data:`SHIFT_MARGIN` (6) *and* their block hashes are
    within ``hash_distance`` too (records without a block hash, from manifests of check
    versions before 4, are paired by the first rule only). On the 64-160 px corpus of
    ``benchmarks/quality_issues.py`` (seeds 0 and 1) this second rule finds 10 of the 11
    shifted copies the first misses, and no pair of distinct images within 16 DCT bits has
    block hashes closer than 12 bits. On the 300 synthetic images of
    ``benchmarks/near_duplicates.py`` distinct images are at least 14 bits apart; JPEG
    re-encoding, the 90 % resize and the brightness change stay within 6, and a 3 x 2
    pixel shift reaches 12 (98.7 % of those copies within 10; all of them with
    the block-hash rule, and all 4 x 3 pixel shifts, which reach 14), so the default finds
    those copies without joining distinct images. Pairs are found without comparing all
    ``N^2`` pairs past :data:`BRUTE_FORCE_MAX` samples by multi-index hashing
    (Norouzi, Punjani and Fleet, "Fast Search in Hamming Space with Multi-Index Hashing",
    CVPR 2012): the 64 bits are cut into 4 bands of 16; two hashes within distance ``t``
    agree within ``t // 4`` bits on at least one band (pigeonhole), so each hash only looks
    up the keys within that radius of its own band keys. Every candidate is checked with the
    full 64-bit distance, so the result is exactly the brute-force one.

    Where the optional ``faiss`` package is installed (``selfsup[faiss]``), pairs past
    :data:`BRUTE_FORCE_MAX` hashes come from faiss instead: a range search of every hash in
    an ``IndexBinaryFlat`` (exhaustive Hamming distances in C++ with SIMD popcounts, on all
    cores; faiss returns distances strictly under the radius, so it is searched at
    ``hash_distance + 1``), in blocks of :data:`FAISS_BLOCK` queries so the result memory
    stays bounded, each block among the hashes from its own first one on (``N^2 / 2``
    distances). It gives exactly the pairs of the other two methods. faiss's
    multi-index-hashing index (``IndexBinaryMultiHash``, the same pigeonhole as above) was
    measured too and is slower than the exhaustive search at 20,000 and 100,000 hashes,
    and its IVF index misses up to 30 % of
    the pairs within 10 bits on random hashes (k-means has nothing to cluster there), so
    neither is used; ``benchmarks/near_duplicates.py --scale`` measures the methods.

    Groups are the connected components of the pairs (union-find). A chain of near
    duplicates ``a ~ b ~ c`` is one group even if ``a`` and ``c`` are further apart: the
    kept member is compared with every member and the file lists each member's distance to
    it. The kept member is the one the run would keep: the largest pixel count
    (``width * height``), then the filename that sorts first.

Embeddings
    With embeddings, :func:`suggest_embedding_threshold` reads the distribution of the
    nearest-neighbour distances (L2 between L2-normalised embeddings): near duplicates make a
    low mode at small distances. The suggested threshold is the first valley of the
    histogram (:func:`suggest_embedding_threshold` has the rule), or none when the
    distribution has no such low mode. Pairs within the embedding threshold join the groups
    (:func:`group_pairs` of hash and embedding pairs together).

Output (``filenames/near_duplicate_filenames.txt``)
    One line per group member, ``group_id<TAB>filename<TAB>kept filename<TAB>distance``,
    groups in order of their kept filename, the kept member first (distance 0); the distance
    is the Hamming distance of the DCT hashes (an integer; up to ``hash_distance +``
    :data:`SHIFT_MARGIN` for a pair the block hashes confirmed), or for a member that joined
    through embeddings only, the embedding distance (a float with a decimal point).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from selfsup.curation.manifest import SampleRecord, _write_table

__all__ = [
    "BRUTE_FORCE_MAX",
    "DEFAULT_HASH_DISTANCE",
    "FAISS_BLOCK",
    "HASH_PAIR_METHODS",
    "HASH_SIZE",
    "SHIFT_MARGIN",
    "NearDuplicateGroup",
    "NearDuplicates",
    "Pairs",
    "block_hash_of_luma",
    "find_groups",
    "group_pairs",
    "hamming",
    "hash_pairs",
    "hashes_to_array",
    "perceptual_hashes",
    "phash",
    "phash_of_luma",
    "suggest_embedding_threshold",
    "write_near_duplicate_filenames",
]

HASH_SIZE: Final = 8
"""Side of the block of low DCT frequencies the hash keeps (8 x 8 = 64 bits)."""
_SIDE: Final = 32
DEFAULT_HASH_DISTANCE: Final = 10
"""Default largest Hamming distance (of 64 bits) between near duplicates."""
BRUTE_FORCE_MAX: Final = 4096
"""Up to this many hashes every pair is compared (in blocks); past it, multi-index hashing."""
FAISS_BLOCK: Final = 65536
"""Queries per faiss range search: bounds the memory of one block's results."""
_BANDS: Final = 4
_BAND_BITS: Final = 64 // _BANDS
_BLOCK: Final = 1024


# --------------------------------------------------------------------------- the hash


def _dct_matrix(n: int) -> NDArray[np.float64]:
    """``C[u, x] = cos(pi (2x + 1) u / (2n))``: ``C @ v`` is the unnormalised DCT-II of v."""
    u = np.arange(n, dtype=np.float64)[:, None]
    x = np.arange(n, dtype=np.float64)[None, :]
    return np.cos(np.pi * (2 * x + 1) * u / (2 * n))


SHIFT_MARGIN: Final = 6
"""DCT-hash bits past ``hash_distance`` within which a pair whose block hashes are within
``hash_distance`` is still a near duplicate (module docstring)."""
_DCT: Final = _dct_matrix(_SIDE)[:HASH_SIZE]
_WEIGHTS: Final = np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)


def phash_of_luma(luma: NDArray[Any]) -> str:
    """The 64-bit DCT hash of a ``(32, 32)`` luma array, as 16 hex digits (module docstring)."""
    values = np.asarray(luma, dtype=np.float64)
    if values.shape != (_SIDE, _SIDE):
        raise ValueError(f"phash_of_luma needs a ({_SIDE}, {_SIDE}) array, got {values.shape}")
    low = _DCT @ values @ _DCT.T  # (8, 8): the lowest frequencies only
    bits = (low > np.median(low)).reshape(-1)
    return f"{int(np.sum(_WEIGHTS[bits], dtype=np.uint64)):016x}"


def block_hash_of_luma(luma: NDArray[Any]) -> str:
    """The 64-bit block hash of a ``(32, 32)`` luma array, as 16 hex digits (module docstring)."""
    values = np.asarray(luma, dtype=np.float64)
    if values.shape != (_SIDE, _SIDE):
        raise ValueError(f"block_hash_of_luma needs a ({_SIDE}, {_SIDE}) array, got {values.shape}")
    padded = np.pad(values, 1, mode="edge")
    rows = (padded[:-2] + 2.0 * padded[1:-1] + padded[2:]) / 4.0  # (32, 34)
    smooth = (rows[:, :-2] + 2.0 * rows[:, 1:-1] + rows[:, 2:]) / 4.0  # (32, 32)
    block = _SIDE // HASH_SIZE
    means = smooth.reshape(HASH_SIZE, block, HASH_SIZE, block).mean(axis=(1, 3))
    bits = (means > np.median(means)).reshape(-1)
    return f"{int(np.sum(_WEIGHTS[bits], dtype=np.uint64)):016x}"


def _hash_luma(image: Image.Image) -> NDArray[np.uint8]:
    """The ``(32, 32)`` uint8 luma both hashes are computed from (see :func:`phash`)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    small = rgb.resize((_SIDE, _SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(small.convert("L"))


def perceptual_hashes(image: Image.Image) -> tuple[str, str]:
    """``(phash, bhash)`` of a PIL image (any mode): both hashes from one reduction."""
    luma = _hash_luma(image)
    return phash_of_luma(luma), block_hash_of_luma(luma)


def phash(image: Image.Image) -> str:
    """The perceptual hash of a PIL image (any mode), as 16 hex digits.

    The image is reduced first and converted to luma second: the same luma up to rounding,
    at a fraction of the cost of converting a large image (``reducing_gap`` lets PIL shrink
    by whole factors with a box filter before the Lanczos step, as thumbnails do).
    """
    return phash_of_luma(_hash_luma(image))


def hashes_to_array(hashes: Sequence[str]) -> NDArray[np.uint64]:
    """``(N,)`` uint64 of hex hashes (:func:`phash`).

    Raises:
        ValueError: a hash is not 16 hex digits (names the position and value).
    """
    out = np.empty(len(hashes), dtype=np.uint64)
    for i, text in enumerate(hashes):
        try:
            if len(text) != 16:
                raise ValueError
            out[i] = int(text, 16)
        except ValueError:
            raise ValueError(
                f"phash #{i} is {text!r}; expected 16 hexadecimal digits (64 bits)"
            ) from None
    return out


def hamming(a: NDArray[np.uint64], b: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Elementwise (broadcast) number of differing bits of two uint64 arrays."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    if hasattr(np, "bitwise_count"):  # numpy >= 2: one popcount instruction per element
        counts: NDArray[np.int64] = np.bitwise_count(x).astype(np.int64)
        return counts
    # numpy 1.x: the SWAR popcount (Hacker's Delight, 5-2), wrapping uint64 arithmetic.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    swar: NDArray[np.int64] = ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(
        np.int64
    )
    return swar


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pairs:
    """Near-duplicate pairs: ``(P,)`` arrays with ``first < second`` (rows), and distances."""

    first: NDArray[np.intp]
    second: NDArray[np.intp]
    distance: NDArray[np.float64]

    @staticmethod
    def empty() -> Pairs:
        """No pairs."""
        return Pairs(np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float64))


def _check_distance(max_distance: int) -> None:
    if not 0 <= max_distance <= 64:
        raise ValueError(f"hash distance must lie in [0, 64], got {max_distance}")


def _brute_force_pairs(h: NDArray[np.uint64], max_distance: int) -> Pairs:
    firsts: list[NDArray[np.intp]] = []
    seconds: list[NDArray[np.intp]] = []
    dists: list[NDArray[np.int64]] = []
    n = h.size
    for r0 in range(0, n, _BLOCK):
        r1 = min(n, r0 + _BLOCK)
        d = hamming(h[r0:r1, None], h[None, r0:])  # (block, n - r0): the upper triangle
        rows, cols = np.nonzero(d <= max_distance)
        keep = cols + r0 > rows + r0
        firsts.append((rows[keep] + r0).astype(np.intp))
        seconds.append((cols[keep] + r0).astype(np.intp))
        dists.append(d[rows[keep], cols[keep]])
    if not firsts:
        return Pairs.empty()
    return Pairs(
        np.concatenate(firsts), np.concatenate(seconds), np.concatenate(dists).astype(np.float64)
    )


def _flip_masks(bits: int, radius: int) -> NDArray[np.uint64]:
    """Every ``bits``-bit mask with at most ``radius`` bits set."""
    masks = [0]
    frontier = [0]
    for _ in range(radius):
        grown = {m | (1 << b) for m in frontier for b in range(bits) if not m >> b & 1}
        frontier = sorted(grown)
        masks.extend(frontier)
    return np.asarray(masks, dtype=np.uint64)


def _multi_index_pairs(h: NDArray[np.uint64], max_distance: int) -> Pairs:
    radius = max_distance // _BANDS
    masks = _flip_masks(_BAND_BITS, radius)
    band_mask = np.uint64((1 << _BAND_BITS) - 1)
    found: list[NDArray[np.int64]] = []
    n = h.size
    for band in range(_BANDS):
        keys = (h >> np.uint64(band * _BAND_BITS)) & band_mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        for mask in masks:
            probe = keys ^ mask
            lo = np.searchsorted(sorted_keys, probe, side="left")
            hi = np.searchsorted(sorted_keys, probe, side="right")
            counts = hi - lo
            hit = np.flatnonzero(counts)
            if hit.size == 0:
                continue
            # Expand every query's run of equal keys into (query, candidate) rows.
            reps = counts[hit]
            queries = np.repeat(hit, reps)
            starts = np.repeat(lo[hit] - np.cumsum(reps) + reps, reps)
            candidates = order[starts + np.arange(queries.size)]
            keep = candidates > queries
            q, c = queries[keep], candidates[keep]
            close = hamming(h[q], h[c]) <= max_distance
            found.append(q[close].astype(np.int64) * n + c[close])
    if not found:
        return Pairs.empty()
    codes = np.unique(np.concatenate(found))
    first = (codes // n).astype(np.intp)
    second = (codes % n).astype(np.intp)
    return Pairs(first, second, hamming(h[first], h[second]).astype(np.float64))


def _faiss_pairs(h: NDArray[np.uint64], max_distance: int, block: int = FAISS_BLOCK) -> Pairs:
    """The pairs by faiss range searches in an ``IndexBinaryFlat`` (module docstring)."""
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "method='faiss' needs the optional faiss package: pip install 'selfsup[faiss]' "
            "(or use method='multi_index', the same pairs without it)"
        ) from None
    # 8 bytes per hash; any fixed byte order gives the same Hamming distances.
    codes = np.ascontiguousarray(h).view(np.uint8).reshape(-1, 8)
    firsts: list[NDArray[np.intp]] = []
    seconds: list[NDArray[np.intp]] = []
    dists: list[NDArray[np.float64]] = []
    for r0 in range(0, h.size, block):
        r1 = min(h.size, r0 + block)
        # Each block is searched only among the hashes from its own first one on (the upper
        # triangle): half the distances of searching all, and copying 8 bytes per hash into
        # a fresh index costs nothing beside them.
        index = faiss.IndexBinaryFlat(64)
        index.add(codes[r0:])
        # faiss keeps distances strictly under the radius.
        lims, distances, found = index.range_search(codes[r0:r1], max_distance + 1)
        labels = found.astype(np.intp) + r0
        counts = np.diff(lims.astype(np.int64)).astype(np.intp)  # lims is faiss size_t
        queries = np.repeat(np.arange(r0, r1, dtype=np.intp), counts)
        keep = labels > queries  # each pair once, no self-pairs
        firsts.append(queries[keep])
        seconds.append(labels[keep])
        dists.append(distances[keep].astype(np.float64))
    if not firsts:
        return Pairs.empty()
    return Pairs(np.concatenate(firsts), np.concatenate(seconds), np.concatenate(dists))


#: The values of ``hash_pairs(method=...)``.
HASH_PAIR_METHODS: Final = ("auto", "brute", "multi_index", "faiss")


def hash_pairs(
    hashes: NDArray[np.uint64], max_distance: int = DEFAULT_HASH_DISTANCE, *, method: str = "auto"
) -> Pairs:
    """Every pair of hashes within ``max_distance`` differing bits, sorted by (first, second).

    Args:
        hashes: ``(N,)`` uint64 hashes (:func:`hashes_to_array`).
        max_distance: Largest Hamming distance of a pair, in [0, 64].
        method: ``"brute"`` (every pair, in numpy blocks), ``"multi_index"`` (numpy
            multi-index hashing), ``"faiss"`` (faiss range search; needs ``selfsup[faiss]``)
            or ``"auto"``: brute up to :data:`BRUTE_FORCE_MAX` hashes, past it faiss where
            it is installed, else multi-index hashing (module docstring). All give the same
            pairs.
    """
    _check_distance(max_distance)
    h = np.ascontiguousarray(hashes, dtype=np.uint64).reshape(-1)
    if method not in HASH_PAIR_METHODS:
        raise ValueError(f"method must be one of {', '.join(HASH_PAIR_METHODS)}; got {method!r}")
    if method == "auto":
        from selfsup.utils.vectors import faiss_available

        if h.size <= BRUTE_FORCE_MAX:
            method = "brute"
        else:
            method = "faiss" if faiss_available() else "multi_index"
    if method == "brute":
        pairs = _brute_force_pairs(h, max_distance)
    elif method == "faiss":
        pairs = _faiss_pairs(h, max_distance)
    else:
        pairs = _multi_index_pairs(h, max_distance)
    order = np.lexsort((pairs.second, pairs.first))
    return Pairs(pairs.first[order], pairs.second[order], pairs.distance[order])


# --------------------------------------------------------------------------- embeddings


def suggest_embedding_threshold(
    nn_distances: NDArray[np.floating[Any]], *, bins: int = 50
) -> float | None:
    """A threshold on embedding distance below which neighbours are near duplicates, or None.

    The rule: histogram the nearest-neighbour distances on ``bins`` equal bins over
    ``[0, max]``; take the highest bin of the lower half of the range as the near-duplicate
    mode and walk right from it to the first bin whose count is at most a quarter of that
    mode: the valley runs from there over every following bin with such a low count, and the
    suggestion is its middle (halfway between the copies and the genuine neighbours).
    Without a separated low mode the answer is None: when the highest bin lies in the upper
    half, holds fewer than 3 samples or 2 % of them, no valley follows, or the suggestion is
    more than half the median of the distances above it (copies lie far closer to each
    other than genuine neighbours do; a sparse histogram of a few samples has gaps that are
    no valley). Thresholding a unimodal distribution would only cut the closest genuine
    neighbours.
    """
    d = np.asarray(nn_distances, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2 or float(d.max()) <= 0.0:
        return None
    counts, edges = np.histogram(d, bins=bins, range=(0.0, float(d.max())))
    half = bins // 2
    mode = int(np.argmax(counts[:half]))
    if counts[mode] < max(3, 0.02 * d.size) or counts[mode] < counts[half:].max():
        return None
    low = counts <= counts[mode] / 4
    for b in range(mode + 1, bins):
        if low[b]:
            end = b
            while end + 1 < bins and low[end + 1]:
                end += 1
            suggestion = float((edges[b] + edges[end + 1]) / 2)
            above = d[d > suggestion]
            if above.size == 0 or suggestion > 0.5 * float(np.median(above)):
                return None
            return suggestion
    return None


def _pairs_within(
    indices: NDArray[np.intp], distances: NDArray[np.float64], max_distance: float
) -> Pairs:
    """Pairs (first < second, once each) of a kNN result within ``max_distance``."""
    n, k = indices.shape
    rows = np.repeat(np.arange(n, dtype=np.intp), k)
    cols = indices.reshape(-1)
    dist = distances.reshape(-1)
    keep = (cols >= 0) & (dist <= max_distance)
    a, b = np.minimum(rows[keep], cols[keep]), np.maximum(rows[keep], cols[keep])
    codes, first = np.unique(a.astype(np.int64) * n + b, return_index=True)
    return Pairs((codes // n).astype(np.intp), (codes % n).astype(np.intp), dist[keep][first])


def _neighbours(
    embeddings: NDArray[np.floating[Any]], k: int
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """``(N, k')`` nearest other rows and their distances (L2-normalised), ``k' <= k``.

    Exact (:func:`selfsup.utils.vectors.knn`; faiss for large sets where installed). A row
    takes part in at most ``k`` embedding pairs of its own: plenty to link a group of
    copies, which needs one pair per member.
    """
    from selfsup.utils.vectors import knn

    x = np.asarray(embeddings)
    k_eff = min(k, x.shape[0] - 1)
    if k_eff < 1:
        return np.zeros((x.shape[0], 0), np.intp), np.zeros((x.shape[0], 0), np.float64)
    nb = knn(x, x, k_eff, normalize=True, exclude_self=True)
    return nb.indices, np.asarray(nb.distances, dtype=np.float64)


# --------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class NearDuplicateGroup:
    """One group of near duplicates.

    Attributes:
        kept: Filename of the member the run keeps (largest resolution, then name).
        members: Filenames, kept first, then by name.
        distances: Per member, its distance to ``kept`` (0 for ``kept``): Hamming distance
            of the hashes, or the embedding distance when ``by_embedding`` is set for it.
        by_embedding: Per member, whether its distance is an embedding distance (it joined
            the group through embeddings only).
    """

    kept: str
    members: tuple[str, ...]
    distances: tuple[float, ...]
    by_embedding: tuple[bool, ...]


def _components(n: int, pairs: Iterable[Pairs]) -> NDArray[np.intp]:
    """Union-find root of every row 0..n-1 over all pairs (path halving, union by index)."""
    parent = np.arange(n, dtype=np.intp)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for p in pairs:
        for a, b in zip(p.first.tolist(), p.second.tolist(), strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return np.asarray([find(i) for i in range(n)], dtype=np.intp)


def group_pairs(
    records: Sequence[SampleRecord],
    hashes: NDArray[np.uint64] | None,
    hash_links: Pairs,
    embedding_links: Pairs | None = None,
    embeddings: NDArray[np.floating[Any]] | None = None,
) -> list[NearDuplicateGroup]:
    """Groups (connected components) of ``records`` linked by hash and embedding pairs.

    Args:
        records: The samples; pairs index their rows.
        hashes: ``(N,)`` row-aligned hashes, or ``None`` when there are none.
        hash_links: Pairs within the hash distance (:func:`hash_pairs`).
        embedding_links: Pairs within the embedding distance (of a kNN search,
            as :func:`find_groups` makes them).
        embeddings: ``(N, D)`` row-aligned embeddings; needed with ``embedding_links`` for
            the distance of a member joined through embeddings only.

    A member linked to the kept one through hash pairs gets its Hamming distance to it; a
    member that joined through an embedding pair gets its embedding distance (L2 between
    L2-normalised embeddings) to the kept one.
    """
    n = len(records)
    extra = [] if embedding_links is None else [embedding_links]
    roots = _components(n, [hash_links, *extra])
    hash_roots = _components(n, [hash_links]) if extra else roots
    by_root: dict[int, list[int]] = {}
    for i, r in enumerate(roots.tolist()):
        by_root.setdefault(r, []).append(i)
    unit = None
    if embeddings is not None:
        e = np.asarray(embeddings, dtype=np.float64)
        unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    groups: list[NearDuplicateGroup] = []
    for rows in by_root.values():
        if len(rows) < 2:
            continue
        kept = min(
            rows,
            key=lambda i: (
                -((records[i].width or 0) * (records[i].height or 0)),
                records[i].filename,
            ),
        )
        ordered = [kept, *sorted((i for i in rows if i != kept), key=lambda i: records[i].filename)]
        distances: list[float] = []
        flags: list[bool] = []
        for i in ordered:
            if hashes is not None and hash_roots[i] == hash_roots[kept]:
                distances.append(float(hamming(hashes[i], hashes[kept])))
                flags.append(False)
            elif unit is not None:
                distances.append(float(np.linalg.norm(unit[i] - unit[kept])))
                flags.append(True)
            else:
                distances.append(math.nan)
                flags.append(True)
        groups.append(
            NearDuplicateGroup(
                kept=records[kept].filename,
                members=tuple(records[i].filename for i in ordered),
                distances=tuple(distances),
                by_embedding=tuple(flags),
            )
        )
    groups.sort(key=lambda g: g.kept)
    return groups


@dataclass(frozen=True)
class NearDuplicates:
    """The near-duplicate groups of a run and how they were found (report.json's section).

    Attributes:
        groups: The groups (:func:`group_pairs`).
        hash_distance: The Hamming distance used.
        n_hash_pairs: Pairs within ``hash_distance``.
        embedding_distance: The embedding distance used; ``None`` when no embedding pairs
            were searched (no embeddings, no suggestion, or 0 given).
        suggested_embedding_distance: :func:`suggest_embedding_threshold`; ``None`` without
            embeddings or without a low mode.
        n_embedding_pairs: Pairs within ``embedding_distance``.
        nn_histogram: Histogram of the embedding nearest-neighbour distances
            (``bin_edges``, ``counts``); ``None`` without embeddings.
    """

    groups: list[NearDuplicateGroup]
    hash_distance: int
    n_hash_pairs: int
    embedding_distance: float | None = None
    suggested_embedding_distance: float | None = None
    n_embedding_pairs: int = 0
    nn_histogram: dict[str, list[float] | list[int]] | None = None

    def removable(self) -> set[str]:
        """Filenames of every member but the kept one, what ``near_duplicates.remove`` removes."""
        return {name for group in self.groups for name in group.members if name != group.kept}

    def summary(self) -> dict[str, Any]:
        """The ``near_duplicates`` section of report.json (plain JSON types)."""
        return {
            "file": "filenames/near_duplicate_filenames.txt",
            "n_groups": len(self.groups),
            "n_members": sum(len(g.members) for g in self.groups),
            "n_removable": sum(len(g.members) - 1 for g in self.groups),
            "hash": "64-bit DCT perceptual hash, Hamming distance; up to 6 bits further when "
            "the 64-bit block hashes are within the distance too",
            "hash_distance": self.hash_distance,
            "n_hash_pairs": self.n_hash_pairs,
            "embedding_distance": self.embedding_distance,
            "suggested_embedding_distance": self.suggested_embedding_distance,
            "n_embedding_pairs": self.n_embedding_pairs,
            "nn_distance_histogram": self.nn_histogram,
        }


def _confirmed_hash_pairs(
    records: Sequence[SampleRecord],
    with_hash: NDArray[np.intp],
    all_hashes: NDArray[np.uint64],
    hash_distance: int,
) -> Pairs:
    """Record pairs within ``hash_distance`` DCT bits, or within :data:`SHIFT_MARGIN` more
    whose block hashes are within ``hash_distance`` (module docstring, Pairs and groups).

    Both searches run at ``hash_distance``: the second rule's pairs are block-hash pairs
    whose DCT distance is checked afterwards, which costs far less than a DCT search at the
    wider radius (the number of multi-index probes grows steeply with the radius).
    """
    _check_distance(hash_distance)
    h = all_hashes[with_hash]
    sub = hash_pairs(h, hash_distance)
    present = np.asarray(
        [j for j, i in enumerate(with_hash.tolist()) if records[i].bhash], dtype=np.intp
    )
    if present.size < 2:
        return Pairs(with_hash[sub.first], with_hash[sub.second], sub.distance)
    blocks = hashes_to_array([records[int(with_hash[j])].bhash or "" for j in present.tolist()])
    by_block = hash_pairs(blocks, hash_distance)
    a, b = present[by_block.first], present[by_block.second]
    dct = hamming(h[a], h[b])
    extra = (dct > hash_distance) & (dct <= hash_distance + SHIFT_MARGIN)
    first = np.concatenate([sub.first, a[extra]])
    second = np.concatenate([sub.second, b[extra]])
    distance = np.concatenate([sub.distance, dct[extra].astype(np.float64)])
    order = np.lexsort((second, first))
    return Pairs(with_hash[first[order]], with_hash[second[order]], distance[order])


def find_groups(
    records: Sequence[SampleRecord],
    hash_distance: int = DEFAULT_HASH_DISTANCE,
    *,
    embeddings: NDArray[np.floating[Any]] | None = None,
    embedding_distance: float | None = None,
    histogram_bins: int = 50,
) -> NearDuplicates:
    """Near-duplicate groups of ``records`` (the samples a run uses, all ``ok``).

    Hash pairs come from the records' ``phash``, confirmed by their ``bhash`` just past
    ``hash_distance`` (module docstring; records without a ``phash`` take part through
    embeddings only). With ``embeddings`` (``(N, D)``, row-aligned with ``records``), pairs
    within ``embedding_distance`` join the groups; ``None`` uses the suggestion
    (:func:`suggest_embedding_threshold`), 0 searches none.
    """
    with_hash = np.asarray([i for i, r in enumerate(records) if r.phash], dtype=np.intp)
    all_hashes = np.zeros(len(records), dtype=np.uint64)
    all_hashes[with_hash] = hashes_to_array([records[i].phash or "" for i in with_hash.tolist()])
    links = _confirmed_hash_pairs(records, with_hash, all_hashes, hash_distance)
    if embeddings is None:
        groups = group_pairs(records, all_hashes, links)
        return NearDuplicates(groups, hash_distance, int(links.first.size))
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != len(records):
        raise ValueError(
            f"embeddings must be ({len(records)}, D) for {len(records)} records, got {emb.shape}"
        )
    indices, distances = _neighbours(emb, 10)
    nn = distances[:, 0] if distances.shape[1] else np.full(len(records), np.inf)
    finite = nn[np.isfinite(nn)]
    histogram = None
    if finite.size:
        counts, edges = np.histogram(finite, bins=histogram_bins, range=(0.0, float(finite.max())))
        histogram = {"bin_edges": edges.tolist(), "counts": counts.tolist()}
    suggested = suggest_embedding_threshold(nn, bins=histogram_bins)
    used = suggested if embedding_distance is None else embedding_distance
    emb_links = None
    if used is not None and used > 0:
        emb_links = _pairs_within(indices, distances, used)
    groups = group_pairs(records, all_hashes, links, emb_links, emb)
    return NearDuplicates(
        groups,
        hash_distance,
        int(links.first.size),
        embedding_distance=used if emb_links is not None else None,
        suggested_embedding_distance=suggested,
        n_embedding_pairs=0 if emb_links is None else int(emb_links.first.size),
        nn_histogram=histogram,
    )


def _distance_text(value: float, by_embedding: bool) -> str:
    if math.isnan(value):
        return ""
    return f"{value:.6f}" if by_embedding else str(int(value))


def write_near_duplicate_filenames(
    path: str | os.PathLike[str], groups: Sequence[NearDuplicateGroup]
) -> int:
    """Write ``group_id<TAB>filename<TAB>kept<TAB>distance`` per member; returns the lines."""
    rows = (
        (str(g_id), name, group.kept, _distance_text(dist, emb))
        for g_id, group in enumerate(groups)
        for name, dist, emb in zip(group.members, group.distances, group.by_embedding, strict=True)
    )
    return _write_table(path, rows)
