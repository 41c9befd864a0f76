"""Similarity search over a run's embeddings artifact: the numpy index, the endpoint
``POST /v1/runs/{id}/similar`` and ``ApiWorkflowClient.find_similar``. Expected neighbours
are computed here by brute force."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selfsup.openapi_generated.swagger_client.rest import ApiException
from selfsup.server.routes.similar import EmbeddingIndex, index_of_file
from selfsup.server.testing import ServerHarness
from selfsup.utils.io import save_embeddings

NAMES = [f"img_{i:02d}.png" for i in range(12)]


def _vectors(seed: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.random.default_rng(seed).normal(size=(len(NAMES), 5)).astype(np.float32)


def _brute_force(
    vectors: np.ndarray[Any, Any], query: np.ndarray[Any, Any], skip: int | None
) -> list[tuple[str, float]]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = query / np.linalg.norm(query)
    distances = np.linalg.norm(unit - q, axis=1)
    order = [int(r) for r in np.lexsort((np.arange(len(unit)), distances)) if r != skip]
    return [(NAMES[r], float(distances[r])) for r in order]


def test_the_index_finds_the_exact_nearest_rows_and_vectors() -> None:
    vectors = _vectors()
    index = EmbeddingIndex.from_embeddings(vectors, NAMES)
    got = index.nearest_to_row(3, 4)
    want = _brute_force(vectors, vectors[3], skip=3)[:4]
    assert [n for n, _ in got] == [n for n, _ in want]
    np.testing.assert_allclose([d for _, d in got], [d for _, d in want], atol=1e-5)
    # A vector query is normalised first: a scaled copy of row 5 finds row 5 at distance 0.
    by_vector = index.nearest_to_vector(7.0 * vectors[5], 2)
    assert by_vector[0][0] == NAMES[5]
    assert by_vector[0][1] == pytest.approx(0.0, abs=1e-5)
    assert len(index.nearest_to_row(0, 100)) == len(NAMES) - 1
    with pytest.raises(ValueError, match="has 3 values; this run's embeddings have 5"):
        index.nearest_to_vector(np.ones(3), 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.nearest_to_vector(np.array([1, np.nan, 0, 0, 0]), 2)


def test_the_index_of_a_file_is_built_once_and_rebuilt_when_the_file_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "embeddings.csv"
    save_embeddings(path, _vectors(0), [0] * len(NAMES), NAMES)
    first = index_of_file(path)
    assert index_of_file(path) is first
    save_embeddings(path, _vectors(1)[:5], [0] * 5, NAMES[:5])
    second = index_of_file(path)
    assert second is not first
    assert second.names == NAMES[:5]


def _completed_run_with_embeddings(
    server: ServerHarness, make_actor: Callable[..., Any], tmp_path: Path, upload: bool = True
) -> tuple[Any, str]:
    alice = make_actor("alice", on=server)
    alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    run_id = str(claim["run"]["id"])
    if upload:
        csv = tmp_path / "embeddings.csv"
        save_embeddings(csv, _vectors(), [0] * len(NAMES), NAMES)
        r = server.http.post(
            f"{alice.run_path(worker_id, run_id)}/artifacts",
            files={"file": ("embeddings.csv", csv.read_bytes())},
            data={"type": "EMBEDDINGS", "file_name": "embeddings.csv"},
            headers=alice.h,
        )
        assert r.status_code == 201, r.text
    return alice, run_id


def test_the_endpoint_answers_by_file_name_and_by_vector(
    server: ServerHarness, make_actor: Callable[..., Any], tmp_path: Path
) -> None:
    alice, run_id = _completed_run_with_embeddings(server, make_actor, tmp_path)
    url = f"/v1/runs/{run_id}/similar"
    r = server.http.post(url, json={"filename": NAMES[2], "k": 3}, headers=alice.h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == run_id
    assert body["query"] == NAMES[2]
    want = _brute_force(_vectors(), _vectors()[2], skip=2)[:3]
    assert [x["filename"] for x in body["results"]] == [n for n, _ in want]

    r = server.http.post(url, json={"embedding": _vectors()[7].tolist(), "k": 1}, headers=alice.h)
    assert r.json()["results"][0]["filename"] == NAMES[7]

    r = server.http.post(url, json={"filename": "nope.png"}, headers=alice.h)
    assert r.status_code == 404
    assert "nope.png" in r.json()["error"]
    r = server.http.post(url, json={"embedding": [1.0, 2.0]}, headers=alice.h)
    assert r.status_code == 400
    assert "has 2 values" in r.json()["error"]
    both = {"filename": NAMES[0], "embedding": [0.0] * 5}
    assert server.http.post(url, json=both, headers=alice.h).status_code == 422
    assert server.http.post(url, json={}, headers=alice.h).status_code == 422
    bob = make_actor("bob", on=server)
    assert server.http.post(url, json={"filename": NAMES[0]}, headers=bob.h).status_code == 404


def test_a_run_without_embeddings_is_a_409(
    server: ServerHarness, make_actor: Callable[..., Any], tmp_path: Path
) -> None:
    alice, run_id = _completed_run_with_embeddings(server, make_actor, tmp_path, upload=False)
    r = server.http.post(f"/v1/runs/{run_id}/similar", json={"filename": "a"}, headers=alice.h)
    assert r.status_code == 409
    assert r.json()["code"] == "NO_EMBEDDINGS"


def test_the_client_finds_similar_samples(
    server: ServerHarness, make_actor: Callable[..., Any], tmp_path: Path
) -> None:
    alice, run_id = _completed_run_with_embeddings(server, make_actor, tmp_path)
    client = server.client(alice.token)
    found = client.find_similar(run_id, filename=NAMES[4], k=2)
    want = _brute_force(_vectors(), _vectors()[4], skip=4)[:2]
    assert [s.filename for s in found] == [n for n, _ in want]
    assert [s.distance for s in found] == pytest.approx([d for _, d in want], abs=1e-5)
    assert (
        client.find_similar(run_id, embedding=_vectors()[9].tolist(), k=1)[0].filename == (NAMES[9])
    )
    with pytest.raises(ValueError, match="exactly one of filename, embedding and image"):
        client.find_similar(run_id)
    with pytest.raises(ApiException) as info:
        client.find_similar(run_id, filename="missing.png")
    assert info.value.status == 404


def _upload(
    server: ServerHarness, alice: Any, worker_id: str, run_id: str, path: Path, kind: str
) -> None:
    r = server.http.post(
        f"{alice.run_path(worker_id, run_id)}/artifacts",
        files={"file": (path.name, path.read_bytes())},
        data={"type": kind, "file_name": path.name},
        headers=alice.h,
    )
    assert r.status_code == 201, r.text


@pytest.mark.slow
def test_an_uploaded_image_is_embedded_with_the_run_model_and_finds_its_copy(
    server: ServerHarness, make_actor: Callable[..., Any], tmp_path: Path
) -> None:
    # A run as the worker leaves it: its embeddings, its resolved config and the checkpoint
    # it trained (here an untrained tiny model saved as one), all as artifacts.
    import base64

    from PIL import Image

    from faults._input_helpers import run_config, tiny_checkpoint
    from selfsup.cli.apps import RunImageEmbedder
    from selfsup.core import embed

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    names = [f"img_{i}.png" for i in range(6)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / name)
    checkpoint = tiny_checkpoint(tmp_path / "selfsup_epoch_1.ckpt")
    cfg = run_config(images, tmp_path / "out", checkpoint, "stopping_condition.n_samples=2")
    vectors, _, embedded = embed(
        cfg.lightly.model_copy(update={"input_dir": str(images)}), checkpoint
    )
    csv = tmp_path / "embeddings.csv"
    save_embeddings(csv, vectors, [0] * len(embedded), list(embedded))
    config = tmp_path / "config.json"
    # As trained by the run: no checkpoint= given, so the CHECKPOINT artifact is the model.
    config.write_text(cfg.model_copy(update={"checkpoint": ""}).model_dump_json(), "utf-8")

    alice = make_actor("alice", on=server)
    alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    run_id = str(claim["run"]["id"])
    for path, kind in ((csv, "EMBEDDINGS"), (config, "CONFIG"), (checkpoint, "CHECKPOINT")):
        _upload(server, alice, worker_id, run_id, path, kind)

    url = f"/v1/runs/{run_id}/similar"
    query = (images / "img_3.png").read_bytes()
    body = {"image": base64.b64encode(query).decode(), "k": 3}
    # The harness builds the app of selfsup serve, which has the run-model embedder.
    assert isinstance(server.app.state.image_embedder, RunImageEmbedder)
    r = server.http.post(url, json=body, headers=alice.h)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["filename"] == "img_3.png"
    assert results[0]["distance"] < 1e-4
    assert results[1]["distance"] > 1e-3
    assert r.json()["query"] is None

    found = server.client(alice.token).find_similar(run_id, image=images / "img_4.png", k=1)
    assert found[0].filename == "img_4.png"

    for bad in ("not base64!", base64.b64encode(b"GIF89a broken").decode()):
        r = server.http.post(url, json={"image": bad}, headers=alice.h)
        assert r.status_code == 400
        assert r.json()["code"] == "BAD_IMAGE"
        assert "JPEG, PNG, WEBP" in r.json()["error"]

    server.app.state.image_embedder = None  # as the API alone (server.app.create_app) is
    r = server.http.post(url, json=body, headers=alice.h)
    assert r.status_code == 409
    assert r.json()["code"] == "EMBEDDER_UNAVAILABLE"
    assert "without an image embedder" in r.json()["error"]
