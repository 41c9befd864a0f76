"""Datapools: remembered selections, the changed-file policy, the embedding cache, crash safety."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import selfsup.curation.datapool as dp
from selfsup.curation.datapool import (
    MAX_CHUNKS,
    MAX_MODELS,
    Datapool,
    DatapoolBusyError,
    PoolSample,
    RunInfo,
    datapool_dir,
    default_datapool_root,
    model_fingerprint,
    validate_datapool_name,
)
from selfsup.curation.manifest import SampleRecord
from selfsup.errors import ConfigError, DataError
from selfsup.selection import DiversityStrategy, SelectionConfig, SelectionInputs, select
from selfsup.utils.atomic import atomic_write_text


def rec(name: str, content: str | None = None) -> SampleRecord:
    """A checked image record whose pixel hash is derived from ``content`` (default: name)."""
    return SampleRecord(
        id=0,
        filename=name,
        source=name,
        frame_index=None,
        file_size=1,
        mtime_ns=1,
        pixel_hash=None if content == "" else f"h-{content or name}",
    )


def recs(names: Sequence[str]) -> list[SampleRecord]:
    return [rec(n) for n in names]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "pools"


@pytest.fixture
def pool(root: Path) -> Iterator[Datapool]:
    with Datapool.open("p", root) as opened:
        yield opened


# --------------------------------------------------------------------------- names and paths


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "a b", "x" * 129, "ä", "a\\b"])
def test_bad_names_are_refused_naming_the_value(root: Path, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Datapool.open(name, root)
    assert repr(name) in str(info.value)
    assert not root.exists() or not any(root.iterdir())


@pytest.mark.parametrize("name", ["street-scenes_v2.0", "A", "_x", "-y", "1.2"])
def test_good_names_are_accepted(name: str) -> None:
    assert validate_datapool_name(name) == name


def test_default_root_follows_selfsup_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SELFSUP_HOME", str(tmp_path / "home"))
    assert default_datapool_root() == tmp_path / "home" / "datapools"
    assert datapool_dir("p") == tmp_path / "home" / "datapools" / "p"
    monkeypatch.delenv("SELFSUP_HOME")
    assert default_datapool_root() == Path("~/.selfsup/datapools").expanduser()


# --------------------------------------------------------------------------- selection memory


def test_round_trip_keeps_selection_and_history(root: Path) -> None:
    records = recs(["a.png", "b.png", "c.png", "d.png"])
    with Datapool.open("p", root) as pool:
        assert pool.samples == ()
        row = pool.record_selection(records, [2, 0], RunInfo("run-1", "/in", "/out/1"))
    assert (row.n_samples, row.n_preselected, row.n_selected, row.n_selected_total) == (4, 0, 2, 2)
    with Datapool.open("p", root, readonly=True) as again:
        assert again.samples == (
            PoolSample("c.png", "h-c.png", "run-1"),
            PoolSample("a.png", "h-a.png", "run-1"),
        )
        assert again.selected_filenames() == ["c.png", "a.png"]
        assert again.runs == (row,)
        assert again.runs[0].input_dir == "/in"
        assert again.runs[0].output_dir == "/out/1"
    state = json.loads((root / "p" / "datapool.json").read_text())
    assert (state["format"], state["version"]) == ("selfsup-datapool", 1)


def test_second_run_on_grown_folder_treats_earlier_picks_as_chosen(root: Path) -> None:
    rng = np.random.default_rng(0)
    # cluster A (first run), cluster B far away (added later)
    a = rng.normal(0, 0.05, size=(6, 4)) + np.array([1.0, 0, 0, 0])
    b = rng.normal(0, 0.05, size=(4, 4)) + np.array([0, 1.0, 0, 0])
    config = SelectionConfig((DiversityStrategy(),), n_samples=2)
    first = recs([f"a{i}.png" for i in range(6)])
    with Datapool.open("p", root) as pool:
        chosen = select(SelectionInputs(embeddings=a), config).indices
        pool.record_selection(first, chosen, RunInfo("run-1"))
    # grown folder: new files sort before and after the old ones, so indices shift
    second = recs(["0new.png", *[f"a{i}.png" for i in range(6)], "b1.png", "b2.png", "b3.png"])
    emb = np.concatenate([b[:1], a, b[1:]])
    with Datapool.open("p", root) as pool:
        pre = pool.selected(second)
        assert sorted(second[i].filename for i in pre) == sorted(first[i].filename for i in chosen)
        result = select(SelectionInputs(embeddings=emb), config, preselected=pre)
        assert not set(result.indices.tolist()) & set(pre.tolist())
        # diversity fills the gap: both picks come from the new cluster B
        assert {second[i].filename[0] for i in result.indices} <= {"0", "b"}
        row = pool.record_selection(second, result.indices, RunInfo("run-2"))
    assert (row.n_preselected, row.n_selected, row.n_selected_total) == (2, 2, 4)
    # without the pool the first pick would be sample 0 and the second from cluster A or B
    plain = select(SelectionInputs(embeddings=emb), config).indices
    assert plain[0] == 0


def test_changed_content_is_no_longer_selected_and_is_dropped(pool: Datapool) -> None:
    pool.record_selection(recs(["a.png", "b.png"]), [0, 1], RunInfo("r1"))
    now = [rec("a.png", "edited"), rec("b.png")]
    match = pool.match(now)
    assert match.indices.tolist() == [1]
    assert match.changed == ("a.png",)
    assert match.renamed == ()
    row = pool.record_selection(now, [], RunInfo("r2"))
    assert row.n_changed == 1
    assert pool.samples == (PoolSample("b.png", "h-b.png", "r1"),)
    # the edited file can be selected again, with its new content
    pool.record_selection(now, [0], RunInfo("r3"))
    assert pool.selected(now).tolist() == [0, 1]


def test_renamed_file_stays_selected_under_its_new_name(pool: Datapool) -> None:
    pool.record_selection(recs(["a.png", "b.png"]), [0], RunInfo("r1"))
    now = [rec("b.png"), rec("moved/a.png", "a.png")]
    match = pool.match(now)
    assert match.indices.tolist() == [1]
    assert match.renamed == (("a.png", "moved/a.png"),)
    pool.record_selection(now, [], RunInfo("r2"))
    assert pool.samples == (PoolSample("moved/a.png", "h-a.png", "r1"),)


def test_swapped_names_both_stay_selected(pool: Datapool) -> None:
    pool.record_selection(recs(["a.png", "b.png"]), [0, 1], RunInfo("r1"))
    swapped = [rec("a.png", "b.png"), rec("b.png", "a.png")]
    match = pool.match(swapped)
    assert match.indices.tolist() == [0, 1]
    assert match.changed == ()


def test_a_copy_of_a_selected_file_is_a_new_sample(pool: Datapool) -> None:
    pool.record_selection(recs(["a.png"]), [0], RunInfo("r1"))
    assert pool.selected([rec("a.png"), rec("copy.png", "a.png")]).tolist() == [0]


def test_absent_entries_are_kept_and_count_again_when_back(pool: Datapool) -> None:
    pool.record_selection(recs(["a.png", "b.png"]), [0, 1], RunInfo("r1"))
    subset = recs(["b.png", "c.png"])
    match = pool.match(subset)
    assert [e.filename for e in match.absent] == ["a.png"]
    pool.record_selection(subset, [1], RunInfo("r2"))
    assert pool.selected(recs(["a.png", "b.png", "c.png"])).tolist() == [0, 1, 2]


def test_record_without_pixel_hash_never_matches_and_cannot_be_recorded(pool: Datapool) -> None:
    pool.record_selection(recs(["a.png"]), [0], RunInfo("r1"))
    unhashed = [rec("a.png", "")]
    assert pool.selected(unhashed).tolist() == []
    with pytest.raises(DataError, match=r"'a\.png'.*pixel_hash"):
        pool.record_selection(unhashed, [0], RunInfo("r2"))


def test_rerun_with_the_same_run_id_replaces_that_run(pool: Datapool) -> None:
    records = recs(["a.png", "b.png", "c.png"])
    pool.record_selection(records, [0], RunInfo("r1"))
    pool.record_selection(records, [1], RunInfo("r2"))
    # r2 rerun: its own picks are not preselected for it, and they are replaced
    assert pool.selected(records, ignore_run="r2").tolist() == [0]
    pool.record_selection(records, [2], RunInfo("r2"))
    assert pool.selected_filenames() == ["a.png", "c.png"]
    assert [r.run_id for r in pool.runs] == ["r1", "r2"]


def test_record_selection_checks_indices(pool: Datapool) -> None:
    with pytest.raises(DataError, match=r"\[0, 2\)"):
        pool.record_selection(recs(["a.png", "b.png"]), [2], RunInfo("r1"))


# --------------------------------------------------------------------------- embedding cache


def test_embedding_cache_hits_by_model_key_and_content(pool: Datapool) -> None:
    records = recs(["a.png", "b.png", "c.png"])
    emb = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    assert pool.add_embeddings(records, emb, "model-1") == 3
    rows, found = pool.cached_embeddings(records, "model-1")
    assert rows.tolist() == [0, 1, 2]
    assert found.dtype == np.float32
    np.testing.assert_array_equal(found, emb.astype(np.float32))
    # another model: no hits at all
    rows, found = pool.cached_embeddings(records, "model-2")
    assert rows.size == 0
    assert found.shape == (0, 0)
    # grown folder: only new samples miss; a renamed file hits (same pixels)
    grown = [rec("new.png"), rec("c.png"), rec("renamed.png", "a.png"), rec("x.png", "")]
    rows, found = pool.cached_embeddings(grown, "model-1")
    assert rows.tolist() == [1, 2]
    np.testing.assert_array_equal(found, emb[[2, 0]].astype(np.float32))


def test_embedding_cache_persists_and_later_rows_win(root: Path) -> None:
    records = recs(["a.png", "b.png"])
    with Datapool.open("p", root) as pool:
        pool.add_embeddings(records, np.zeros((2, 3)), "m")
        pool.add_embeddings(records[1:], np.ones((1, 3)), "m")
    with Datapool.open("p", root, readonly=True) as pool:
        rows, found = pool.cached_embeddings(records, "m")
    assert rows.tolist() == [0, 1]
    np.testing.assert_array_equal(found, [[0, 0, 0], [1, 1, 1]])


def test_embedding_chunks_are_merged_beyond_the_limit(pool: Datapool) -> None:
    n = MAX_CHUNKS + 3
    records = recs([f"{i}.png" for i in range(n)])
    for i in range(n):
        pool.add_embeddings([records[i], records[0]], np.full((2, 2), float(i)), "m")
    state = json.loads((pool.path / "datapool.json").read_text())
    assert len(state["embeddings"]["m"]["chunks"]) <= MAX_CHUNKS
    rows, found = pool.cached_embeddings(records, "m")
    assert rows.tolist() == list(range(n))
    expected = np.arange(n, dtype=np.float32)
    expected[0] = n - 1  # record 0 was written last by the last call
    np.testing.assert_array_equal(found[:, 0], expected)
    on_disk = sorted(p.name for p in (pool.path / "embeddings").rglob("*") if p.is_file())
    referenced = len(state["embeddings"]["m"]["chunks"])
    assert len(on_disk) == 2 * referenced  # merged-away chunks were deleted


def test_only_the_latest_model_keys_are_kept(pool: Datapool) -> None:
    records = recs(["a.png"])
    keys = [f"m{i}" for i in range(MAX_MODELS + 1)]
    for key in keys:
        pool.add_embeddings(records, np.ones((1, 2)), key)
    assert pool.model_keys == tuple(keys[1:])
    assert pool.cached_embeddings(records, keys[0])[0].size == 0


def test_add_embeddings_validates(pool: Datapool) -> None:
    records = recs(["a.png", "b.png"])
    with pytest.raises(DataError, match=r"\(2, D\)"):
        pool.add_embeddings(records, np.zeros((3, 4)), "m")
    with pytest.raises(DataError, match="finite"):
        pool.add_embeddings(records, np.array([[0.0, np.nan], [0, 0]]), "m")
    pool.add_embeddings(records, np.zeros((2, 4)), "m")
    with pytest.raises(DataError, match="4-dimensional"):
        pool.add_embeddings(records, np.zeros((2, 5)), "m")
    assert pool.add_embeddings([rec("x.png", "")], np.zeros((1, 4)), "m") == 0


def test_model_fingerprint_hashes_content_and_settings(tmp_path: Path) -> None:
    a = tmp_path / "a.ckpt"
    a.write_bytes(b"weights-1")
    b = tmp_path / "sub" / "b.ckpt"
    b.parent.mkdir()
    b.write_bytes(b"weights-1")
    assert model_fingerprint(a, input_size=64) == model_fingerprint(b, input_size=64)
    assert model_fingerprint(a, input_size=64) != model_fingerprint(a, input_size=32)
    b.write_bytes(b"weights-2")
    assert model_fingerprint(a, input_size=64) != model_fingerprint(b, input_size=64)
    assert model_fingerprint(None).startswith("blake2b:")


# --------------------------------------------------------------------------- crash safety


def _fail(exc: type[BaseException] = OSError) -> Callable[..., Any]:
    def raiser(*args: Any, **kwargs: Any) -> Any:
        raise exc("simulated crash")

    return raiser


def test_crash_while_writing_the_state_keeps_the_previous_state(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = recs(["a.png", "b.png"])
    with Datapool.open("p", root) as pool:
        pool.record_selection(records, [0], RunInfo("r1"))
        before = (root / "p" / "datapool.json").read_bytes()
        with monkeypatch.context() as m:
            m.setattr(os, "fsync", _fail())  # the new state is written but never fsynced
            with pytest.raises(OSError, match="simulated crash"):
                pool.record_selection(records, [1], RunInfo("r2"))
        # the object keeps the state that is on disk
        assert pool.selected_filenames() == ["a.png"]
    assert (root / "p" / "datapool.json").read_bytes() == before
    assert [p.name for p in (root / "p").iterdir() if "tmp" in p.name] == []
    with Datapool.open("p", root) as pool:
        assert pool.selected_filenames() == ["a.png"]
        assert [r.run_id for r in pool.runs] == ["r1"]


def test_crash_between_chunk_and_state_leaves_old_cache_and_no_garbage(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = recs(["a.png", "b.png"])
    with Datapool.open("p", root) as pool:
        pool.add_embeddings(records[:1], np.ones((1, 2)), "m")
        with monkeypatch.context() as m:
            # A hard crash: the chunk files are written, the state swap fails, and no
            # cleanup code runs.
            real_write = atomic_write_text

            def write_all_but_the_state(path: Path, text: str) -> None:
                if Path(path).name == "datapool.json":
                    raise OSError("simulated crash")
                real_write(path, text)

            m.setattr(dp, "atomic_write_text", write_all_but_the_state)
            m.setattr(dp, "_remove_quietly", lambda paths: None)
            with pytest.raises(OSError, match="simulated crash"):
                pool.add_embeddings(records, np.full((2, 2), 5.0), "m")
    files = [p for p in (root / "p" / "embeddings").rglob("*") if p.is_file()]
    assert len(files) == 4  # the orphaned chunk is still there ...
    stray = root / "p" / ".datapool.json.x1y2.tmp.json"  # as a killed atomic write leaves it
    stray.write_text("{")
    with Datapool.open("p", root) as pool:
        rows, found = pool.cached_embeddings(records, "m")
        assert rows.tolist() == [0]
        np.testing.assert_array_equal(found, [[1, 1]])
    files = [p for p in (root / "p" / "embeddings").rglob("*") if p.is_file()]
    assert len(files) == 2  # ... and removed when the pool is next opened for writing
    assert not stray.exists()


def test_unreadable_or_newer_state_is_an_error_naming_the_file(root: Path) -> None:
    with Datapool.open("p", root):
        pass
    state_path = root / "p" / "datapool.json"
    state = json.loads(state_path.read_text())
    state["version"] = 99
    state_path.write_text(json.dumps(state))
    with pytest.raises(DataError, match=r"datapool\.json.*version 99"):
        Datapool.open("p", root)
    state_path.write_text("{not json")
    with pytest.raises(DataError, match=r"datapool\.json: not valid JSON"):
        Datapool.open("p", root)


def test_older_state_without_optional_keys_loads(root: Path) -> None:
    (root / "old").mkdir(parents=True)
    minimal = {
        "format": "selfsup-datapool",
        "version": 1,
        "selected": [{"filename": "a.png", "pixel_hash": "h-a.png"}],
    }
    (root / "old" / "datapool.json").write_text(json.dumps(minimal))
    with Datapool.open("old", root) as pool:
        assert pool.selected(recs(["a.png"])).tolist() == [0]
        assert pool.runs == ()


# --------------------------------------------------------------------------- locking


def test_second_writer_gets_a_clear_error(root: Path) -> None:
    with Datapool.open("p", root):
        with pytest.raises(DatapoolBusyError, match=rf"'p'.*in use.*pid {os.getpid()}"):
            Datapool.open("p", root)
        with pytest.raises(DatapoolBusyError):
            Datapool.open("p", root, readonly=True)
    with Datapool.open("p", root) as pool:  # released on close
        assert pool.name == "p"


def test_readers_share_and_exclude_writers(root: Path) -> None:
    with Datapool.open("p", root):
        pass
    with Datapool.open("p", root, readonly=True) as r1, Datapool.open("p", root, readonly=True):
        with pytest.raises(DatapoolBusyError):
            Datapool.open("p", root)
        with pytest.raises(RuntimeError, match="read-only"):
            r1.record_selection([], [], RunInfo("r"))


def test_readonly_open_of_a_missing_pool_fails(root: Path) -> None:
    with pytest.raises(DataError, match="'nope' does not exist"):
        Datapool.open("nope", root, readonly=True)


def test_closed_pool_refuses_use(root: Path) -> None:
    pool = Datapool.open("p", root)
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        pool.selected([])


def test_a_dropped_pool_releases_its_lock(root: Path) -> None:
    pool = Datapool.open("p", root)
    del pool
    with Datapool.open("p", root) as again:
        assert again.samples == ()


# --------------------------------------------------------------------------- manifest cache


def test_manifest_cache_per_input_folder(pool: Datapool, tmp_path: Path) -> None:
    folder = tmp_path / "input"
    folder.mkdir()
    assert pool.previous_manifest(folder) is None
    records = [rec("a.png"), rec("b.png")]
    pool.save_manifest(folder, records)
    cached = pool.previous_manifest(str(folder) + "/")
    assert cached is not None
    assert [r.filename for r in cached.records] == ["a.png", "b.png"]
    assert pool.previous_manifest(tmp_path) is None
    path = next((pool.path / "manifests").iterdir())
    path.write_text("garbage\n")
    with pytest.warns(UserWarning, match="unreadable cached manifest"):
        assert pool.previous_manifest(folder) is None
