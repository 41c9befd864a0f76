"""Near duplicates: the perceptual hash, the pairs, the groups and planted copies."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from _benchmarks import load_benchmark
from selfsup.curation.checks import build_manifest
from selfsup.curation.manifest import SampleRecord, read_filename_table, read_manifest
from selfsup.curation.near_duplicates import (
    BRUTE_FORCE_MAX,
    SHIFT_MARGIN,
    Pairs,
    _faiss_pairs,
    block_hash_of_luma,
    find_groups,
    group_pairs,
    hamming,
    hash_pairs,
    hashes_to_array,
    perceptual_hashes,
    phash,
    phash_of_luma,
    suggest_embedding_threshold,
    write_near_duplicate_filenames,
)


def _benchmark() -> ModuleType:
    """benchmarks/near_duplicates.py: its corpus and scores are what the test checks."""
    return load_benchmark("near_duplicates")


def _reference_phash(luma: np.ndarray) -> str:
    """The hash from its formula, with explicit loops (module docstring, steps 2 and 3)."""
    n = 32
    coefficients = []
    for u in range(8):
        for v in range(8):
            total = 0.0
            for y in range(n):
                for x in range(n):
                    total += (
                        float(luma[y, x])
                        * math.cos(math.pi * (2 * y + 1) * u / (2 * n))
                        * math.cos(math.pi * (2 * x + 1) * v / (2 * n))
                    )
            coefficients.append(total)
    ordered = sorted(coefficients)
    median = (ordered[31] + ordered[32]) / 2
    value = 0
    for c in coefficients:
        value = (value << 1) | (1 if c > median else 0)
    return f"{value:016x}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_phash_matches_the_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Smooth plus noise, so that low frequencies carry structure as in photos.
    yy, xx = np.mgrid[0:32, 0:32]
    luma = 128 + 60 * np.sin(xx / (3 + seed)) * np.cos(yy / 5) + rng.normal(0, 20, (32, 32))
    luma = np.clip(luma, 0, 255).astype(np.uint8)
    assert phash_of_luma(luma) == _reference_phash(luma)


def test_phash_of_an_image_hashes_its_32x32_luma() -> None:
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    small = image.resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=3.0).convert("L")
    assert phash(image) == _reference_phash(np.asarray(small))
    # Any mode: the RGB form is hashed.
    assert phash(image.convert("RGBA")) == phash(image)
    assert len(phash(image.convert("L"))) == 16


def test_phash_of_luma_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(32, 32\)"):
        phash_of_luma(np.zeros((16, 16)))
    with pytest.raises(ValueError, match=r"\(32, 32\)"):
        block_hash_of_luma(np.zeros((16, 16)))


def _reference_block_hash(luma: np.ndarray) -> str:
    """The block hash from its formula, with explicit loops (module docstring)."""
    n = 32

    def at(y: int, x: int) -> float:  # edges repeated
        return float(luma[min(max(y, 0), n - 1), min(max(x, 0), n - 1)])

    weights = (1.0, 2.0, 1.0)
    smooth = [
        [
            sum(
                weights[a] * weights[b] * at(y + a - 1, x + b - 1)
                for a in range(3)
                for b in range(3)
            )
            / 16.0
            for x in range(n)
        ]
        for y in range(n)
    ]
    means = [
        sum(smooth[4 * r + i][4 * c + j] for i in range(4) for j in range(4)) / 16.0
        for r in range(8)
        for c in range(8)
    ]
    ordered = sorted(means)
    median = (ordered[31] + ordered[32]) / 2
    value = 0
    for m in means:
        value = (value << 1) | (1 if m > median else 0)
    return f"{value:016x}"


@pytest.mark.parametrize("seed", [0, 1])
def test_block_hash_matches_the_formula_and_shares_the_phash_reduction(seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    luma = 128 + 60 * np.sin(xx / (3 + seed)) * np.cos(yy / 5) + rng.normal(0, 20, (32, 32))
    luma = np.clip(luma, 0, 255).astype(np.uint8)
    assert block_hash_of_luma(luma) == _reference_block_hash(luma)
    image = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    small = np.asarray(
        image.resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=3.0).convert("L")
    )
    assert perceptual_hashes(image) == (phash(image), _reference_block_hash(small))


def test_hashes_to_array_names_a_bad_hash() -> None:
    assert hashes_to_array(["00000000000000ff"]).tolist() == [255]
    with pytest.raises(ValueError, match="phash #1 is 'xyz'"):
        hashes_to_array(["0000000000000000", "xyz"])


def test_hamming_counts_differing_bits() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 2**63, 200, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    b = rng.integers(0, 2**63, 200, dtype=np.int64).astype(np.uint64) + np.uint64(1)
    expected = [bin(int(x) ^ int(y)).count("1") for x, y in zip(a, b, strict=True)]
    assert hamming(a, b).tolist() == expected


def _planted_hashes(n: int, seed: int) -> np.ndarray:
    """Random hashes with every 7th one a copy of its predecessor with 0-14 bits flipped."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    h |= rng.integers(0, 2, n).astype(np.uint64)
    for i in range(1, n, 7):
        flips = rng.choice(64, size=int(rng.integers(0, 15)), replace=False)
        h[i] = h[i - 1] ^ np.uint64(sum(1 << int(f) for f in flips))
    h[5] = h[4]  # an exact copy: distance 0
    return h


def _brute_reference(h: np.ndarray, t: int) -> list[tuple[int, int, int]]:
    out = []
    for i in range(len(h)):
        for j in range(i + 1, len(h)):
            d = bin(int(h[i]) ^ int(h[j])).count("1")
            if d <= t:
                out.append((i, j, d))
    return out


@pytest.mark.parametrize("t", [0, 3, 10, 17])
@pytest.mark.parametrize("method", ["brute", "multi_index", "faiss", "auto"])
def test_hash_pairs_equal_the_brute_force_reference(t: int, method: str) -> None:
    if method == "faiss":
        pytest.importorskip("faiss")
    h = _planted_hashes(300, seed=t)
    pairs = hash_pairs(h, t, method=method)
    found = list(
        zip(
            pairs.first.tolist(),
            pairs.second.tolist(),
            pairs.distance.astype(int).tolist(),
            strict=True,
        )
    )
    assert found == _brute_reference(h, t)


def _as_tuples(pairs: Pairs) -> list[tuple[int, int, float]]:
    return list(
        zip(pairs.first.tolist(), pairs.second.tolist(), pairs.distance.tolist(), strict=True)
    )


def test_faiss_gives_the_multi_index_pairs_past_the_brute_force_limit() -> None:
    pytest.importorskip("faiss")
    h = _planted_hashes(BRUTE_FORCE_MAX + 904, seed=11)
    expected = _as_tuples(hash_pairs(h, 10, method="multi_index"))
    # Every 7th hash is a copy with 0-14 bits flipped: about 11 in 15 of those are pairs.
    assert len(expected) > 400
    assert _as_tuples(hash_pairs(h, 10, method="faiss")) == expected
    assert _as_tuples(hash_pairs(h, 10)) == expected  # auto: faiss past BRUTE_FORCE_MAX
    # Query blocks that do not divide N: a pair across two blocks is found once.
    blocked = _faiss_pairs(h, 10, block=997)
    order = np.lexsort((blocked.second, blocked.first))
    assert (
        _as_tuples(Pairs(blocked.first[order], blocked.second[order], blocked.distance[order]))
        == expected
    )


def test_without_faiss_auto_uses_multi_index_and_faiss_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = _planted_hashes(BRUTE_FORCE_MAX + 10, seed=3)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    monkeypatch.setattr("selfsup.utils.vectors.faiss_available", lambda: False)
    assert _as_tuples(hash_pairs(h, 6)) == _as_tuples(hash_pairs(h, 6, method="multi_index"))
    with pytest.raises(ImportError, match=r"selfsup\[faiss\].*multi_index"):
        hash_pairs(h, 6, method="faiss")


def test_hash_pairs_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"\[0, 64\]"):
        hash_pairs(np.zeros(3, np.uint64), 65)
    with pytest.raises(ValueError, match="method"):
        hash_pairs(np.zeros(3, np.uint64), 5, method="lsh")


def _record(
    i: int, name: str, phash: str | None, size: int = 10, bhash: str | None = None
) -> SampleRecord:
    return SampleRecord(
        id=i, filename=name, source=name, frame_index=None, file_size=1, mtime_ns=0,
        width=size, height=size, phash=phash, bhash=bhash,
    )  # fmt: skip


def test_block_hashes_confirm_pairs_just_past_the_hash_distance() -> None:
    def bits(lo: int, hi: int) -> str:  # bits lo..hi-1 set
        return f"{((1 << hi) - 1) ^ ((1 << lo) - 1):016x}"

    base = "0000000000000000"
    records = [
        _record(0, "a.png", base, bhash=base),
        # 14 DCT bits from base (past 10, within 10 + SHIFT_MARGIN), block hash 8 bits away.
        _record(1, "a_shifted.png", bits(0, 14), bhash=bits(0, 8)),
        _record(2, "b.png", base, bhash=base),
        _record(3, "b_other.png", bits(20, 34), bhash=bits(0, 11)),  # block hash too far
        _record(4, "c.png", base, bhash=base),
        _record(5, "c_far.png", bits(40, 57), bhash=base),  # 17 DCT bits: past the margin
        _record(6, "d.png", base),
        _record(7, "d_old.png", bits(50, 64)),  # an older manifest: no block hash
    ]
    assert SHIFT_MARGIN == 6
    found = find_groups(records, 10)
    # a, b, c and d are one group (identical DCT hashes); only a_shifted joins it.
    assert [g.members for g in found.groups] == [
        ("a.png", "a_shifted.png", "b.png", "c.png", "d.png")
    ]
    assert found.groups[0].distances == (0.0, 14.0, 0.0, 0.0, 0.0)
    # Without block hashes the search stays at hash_distance.
    plain = [_record(0, "a.png", base), _record(1, "a_shifted.png", bits(0, 14))]
    assert find_groups(plain, 10).groups == []


def test_groups_are_connected_components_kept_largest_then_first_name() -> None:
    records = [
        _record(0, "a.png", "0000000000000000"),
        _record(1, "b.png", "000000000000000f", size=20),  # largest: kept
        _record(2, "c.png", "00000000000000ff"),  # 4 bits from b, 8 from a
        _record(3, "d.png", "ffffffffffffffff"),  # alone
        _record(4, "e.png", "fffffffffffffff0"),
        _record(5, "f.png", "fffffffffffffff0"),  # same size as e: e kept by name
    ]
    result = find_groups(records, 4)
    assert [g.kept for g in result.groups] == ["b.png", "d.png"]
    first, second = result.groups
    assert first.members == ("b.png", "a.png", "c.png")
    assert first.distances == (0.0, 4.0, 4.0)
    # d, e, f: d-e and d-f are 4 bits apart; all the same size, so "d.png" is kept.
    assert second.members == ("d.png", "e.png", "f.png")
    assert result.n_hash_pairs == 5  # a-b, b-c, d-e, d-f, e-f
    summary = result.summary()
    assert summary["n_groups"] == 2
    assert summary["n_members"] == 6
    assert summary["nn_distance_histogram"] is None


def test_embedding_pairs_extend_the_groups() -> None:
    records = [
        _record(0, "a.png", "0000000000000000"),
        _record(1, "b.png", "0000000000000001"),
        _record(2, "c.png", "ffffffffffffffff"),  # far by hash, close by embedding to a
        _record(3, "d.png", "0f0f0f0f0f0f0f0f"),
    ]
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [-1.0, 0.0]])
    result = find_groups(records, 4, embeddings=emb, embedding_distance=0.05)
    (group,) = result.groups
    assert group.members == ("a.png", "b.png", "c.png")
    assert group.by_embedding == (False, False, True)
    assert group.distances[1] == 1.0
    assert group.distances[2] == pytest.approx(
        np.linalg.norm(emb[2] / np.linalg.norm(emb[2]) - emb[0])
    )
    assert result.embedding_distance == 0.05
    assert result.n_embedding_pairs == 1
    # 0 searches no embedding pairs.
    off = find_groups(records, 4, embeddings=emb, embedding_distance=0.0)
    assert [g.members for g in off.groups] == [("a.png", "b.png")]
    with pytest.raises(ValueError, match=r"\(4, D\)"):
        find_groups(records, 4, embeddings=emb[:3])


def test_group_pairs_without_hashes_uses_embedding_distances() -> None:
    records = [_record(0, "a.png", None), _record(1, "b.png", None)]
    emb = np.array([[1.0, 0.0], [0.0, 2.0]])
    links = Pairs(np.array([0]), np.array([1]), np.array([1.4]))
    (group,) = group_pairs(records, None, Pairs.empty(), links, emb)
    assert group.distances[0] == 0.0
    assert group.distances[1] == pytest.approx(math.sqrt(2))
    assert group.by_embedding == (True, True)


def test_suggested_threshold_is_the_valley_after_a_low_mode() -> None:
    rng = np.random.default_rng(5)
    copies = rng.uniform(0.0, 0.05, 100)  # near duplicates
    others = rng.uniform(0.6, 1.2, 900)  # genuine neighbours
    suggested = suggest_embedding_threshold(np.concatenate([copies, others]))
    assert suggested is not None
    assert 0.05 <= suggested <= 0.6
    # Unimodal: nothing to suggest.
    assert suggest_embedding_threshold(rng.uniform(0.5, 1.0, 1000)) is None
    assert suggest_embedding_threshold(np.array([0.3])) is None
    # A few samples: the gaps of a sparse histogram are no valley (the golden run's 28).
    sparse = [0.30, 0.30, 0.33, 0.33, 0.35, 0.35, 0.35, 0.35, 0.37, 0.37, 0.37, 0.38, 0.39, 0.39]
    sparse += [0.41, 0.49, 0.49, 0.54, 0.55, 0.61, 0.63, 0.64, 0.64, 0.65, 0.65, 0.66, 0.69, 0.87]
    assert suggest_embedding_threshold(np.array(sparse)) is None


def test_filename_table_round_trips(tmp_path: Path) -> None:
    records = [
        _record(0, "a\tb.png", "0000000000000000", size=20),
        _record(1, "c.png", "0000000000000003"),
    ]
    groups = find_groups(records, 4).groups
    path = tmp_path / "near.txt"
    assert write_near_duplicate_filenames(path, groups) == 2
    assert read_filename_table(path) == [
        ["0", "a\tb.png", "a\tb.png", "0"],
        ["0", "c.png", "a\tb.png", "2"],
    ]


@pytest.mark.slow  # ~9 s: 140 images written, decoded and hashed
def test_planted_near_duplicates_are_found_and_distinct_images_kept_apart(
    tmp_path: Path,
) -> None:
    bench = _benchmark()
    planted = bench.write_corpus(tmp_path / "images", n_distinct=60, n_copies=20, seed=1)
    result = build_manifest(tmp_path / "images", num_workers=0, progress=False)
    records = [r for r in result.records if r.is_ok]
    assert all(r.phash is not None and len(r.phash) == 16 for r in records)
    scores = bench.evaluate(find_groups(records).groups, planted)
    for transformation in ("jpeg", "resize_90", "shift", "brightness"):
        assert scores.recall[transformation] >= 0.9, (transformation, scores)
        assert scores.precision[transformation] == 1.0, (transformation, scores)
    assert scores.mixed_groups == 0


def test_manifest_without_phash_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text(
        '{"format": "selfsup-manifest", "version": 1, "check_version": 1}\n'
        '{"id": 0, "filename": "a.png", "source": "a.png", "frame_index": null, '
        '"file_size": 3, "mtime_ns": 1}\n'
    )
    manifest = read_manifest(path)
    assert manifest.check_version == 1
    assert manifest.records[0].phash is None


@pytest.mark.slow  # a whole run (check, precomputed embeddings, selection, report)
@pytest.mark.parametrize("remove", [False, True])
def test_run_reports_near_duplicates_and_removes_them_when_asked(
    tmp_path: Path, remove: bool
) -> None:
    from selfsup.config import RunConfig, resolve
    from selfsup.curation.pipeline import run
    from selfsup.runfolder import RunFolder
    from selfsup.utils.io import save_embeddings

    bench = _benchmark()
    rng = np.random.default_rng(7)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(10):
        bench.distinct_image(rng).save(images / f"img_{i}.png")
    with Image.open(images / "img_3.png") as original:
        original.save(images / "img_3_copy.jpg", quality=50)
        bench.TRANSFORMATIONS["brightness"][0](original).save(images / "img_3_bright.png")
    names = sorted(p.name for p in images.iterdir())
    csv = tmp_path / "emb.csv"
    save_embeddings(csv, rng.normal(size=(len(names), 8)).astype(np.float32), [0] * 12, names)
    out = tmp_path / "out"
    overrides = [f"input_dir={images}", f"output_dir={out}", f"embeddings={csv}"]
    overrides += ["umap=false", "num_workers=0", "stopping_condition.n_samples=12"]
    result = run(resolve(RunConfig, overrides=[*overrides, f"near_duplicates.remove={remove}"]))

    folder = RunFolder(out)
    rows = read_filename_table(folder.near_duplicate_filenames)
    assert [row[:3] for row in rows] == [
        ["0", "img_3.png", "img_3.png"],
        ["0", "img_3_bright.png", "img_3.png"],
        ["0", "img_3_copy.jpg", "img_3.png"],
    ]
    assert rows[0][3] == "0"
    assert all(0 <= int(row[3]) <= 10 for row in rows)
    section = folder.read_report()["near_duplicates"]
    assert section["n_groups"] == 1
    assert section["n_members"] == 3
    table = folder.read_selection()
    assert table is not None
    removed = {
        name: table.filters[code]
        for name, code in zip(table.filenames, table.removed_by.tolist(), strict=True)
        if code >= 0
    }
    if remove:
        assert removed == {"img_3_bright.png": "NEAR_DUPLICATE", "img_3_copy.jpg": "NEAR_DUPLICATE"}
        assert sorted(result.selected) == sorted(set(names) - set(removed))
    else:
        assert removed == {}
        assert sorted(result.selected) == names
