"""Object-level selection: crop geometry and names, CropDataset, saved crops, crop embeddings."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from selfsup.config import LightlyConfig
from selfsup.curation.object_level import (
    Crop,
    CropDataset,
    crop_boxes,
    crop_class_counts,
    crop_name,
    crop_scores,
    embed_crops,
    pad_box,
    save_crops,
)
from selfsup.curation.predictions import (
    ClassificationPredictions,
    DetectionPredictions,
    Detections,
    TaskSchema,
    load_predictions,
    prediction_path,
)
from selfsup.data import LightlyDataset
from selfsup.errors import ConfigError, DataError

SCHEMA = TaskSchema("cars", "object-detection", (0, 1), ("car", "bus"))


def _dets(boxes: list[list[float]], class_ids: list[int], scores: list[float]) -> Detections:
    k = len(boxes)
    return Detections(
        boxes=np.asarray(boxes, dtype=np.float64).reshape(k, 4),
        class_ids=np.asarray(class_ids, dtype=np.int64),
        scores=np.asarray(scores, dtype=np.float64),
        probabilities=np.full((k, 2), np.nan),
    )


def _preds(names: list[str], dets: list[Detections]) -> DetectionPredictions:
    return DetectionPredictions(
        schema=SCHEMA,
        filenames=tuple(names),
        present=np.ones(len(names), dtype=bool),
        detections=tuple(dets),
    )


def _image(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr, mode="RGB").save(path)
    return path


# ----------------------------------------------------------------------------- geometry and names


@pytest.mark.parametrize(
    ("box", "size", "padding", "expected"),
    [
        # 10% of (30, 40) = (3, 4) on each side, all inside the 100 x 100 image
        ([10, 20, 30, 40], (100, 100), 0.1, (7, 16, 43, 64)),
        # no padding: fractional edges round outward
        ([10.5, 3.2, 4.1, 2.0], (100, 100), 0.0, (10, 3, 15, 6)),
        # padding 0.5 of a 10 x 10 box at the origin: clipped at 0 on the left and top
        ([0, 0, 10, 10], (100, 100), 0.5, (0, 0, 15, 15)),
        # bottom-right corner: 102 -> 100 and 101 -> 100
        ([90, 95, 10, 5], (100, 100), 0.2, (88, 94, 100, 100)),
        # a wide box: padding follows each axis' own size (0.25 * 60 = 15, 0.25 * 8 = 2)
        ([20, 10, 60, 8], (64, 48), 0.25, (5, 8, 64, 20)),
    ],
)
def test_pad_box_arithmetic(
    box: list[float], size: tuple[int, int], padding: float, expected: tuple[int, int, int, int]
) -> None:
    assert pad_box(box, size[0], size[1], padding) == expected


def test_crop_names_are_stable_and_distinct() -> None:
    assert crop_name("subdir/img_3.jpg", "vehicles", 2) == "subdir/img_3-vehicles-2-jpg.png"
    assert crop_name("clips/a-042-mp4.png", "vehicles", 0) == "clips/a-042-mp4-vehicles-0-png.png"
    assert crop_name("noext", "t", 1) == "noext-t-1.png"
    assert crop_name("a.png", "t", 0) != crop_name("a.jpg", "t", 0)


def test_crop_boxes_filters_and_keeps_file_indices() -> None:
    preds = _preds(
        ["a.png", "b.png", "c.png"],
        [
            _dets([[1, 1, 10, 10], [5, 5, 0, 0], [2, 2, 4, 4]], [0, 1, 1], [0.9, 0.8, 0.2]),
            _dets([], [], []),
            _dets([[0, 0, 8, 6]], [1], [0.7]),
        ],
    )
    sizes: list[tuple[int, int] | None] = [(32, 32), None, (16, 16)]
    crops = crop_boxes(preds, sizes, padding=0.0, min_size=2, min_confidence=0.5)
    # box a/1 is empty (dropped by min_size), a/2 has a low score
    assert [c.name for c in crops] == ["a-cars-0-png.png", "c-cars-0-png.png"]
    assert crops[0] == Crop("a-cars-0-png.png", "a.png", 0, (1, 1, 11, 11), 0, 0.9)
    assert crops[1].box == (0, 0, 8, 6)
    assert (crops[1].width, crops[1].height, crops[1].class_id) == (8, 6, 1)
    assert [c.box_index for c in crop_boxes(preds, sizes, padding=0.0)] == [0, 2, 0]


def test_crop_boxes_errors() -> None:
    preds = _preds(["a.png"], [_dets([[1, 1, 2, 2]], [0], [0.9])])
    with pytest.raises(ConfigError, match="padding must be >= 0"):
        crop_boxes(preds, [(8, 8)], padding=-0.1)
    with pytest.raises(ConfigError, match="min_size"):
        crop_boxes(preds, [(8, 8)], min_size=0)
    with pytest.raises(DataError, match=r"'a\.png' has boxes.*no known size"):
        crop_boxes(preds, [None])
    classification = ClassificationPredictions(
        schema=TaskSchema("weather", "classification", (0, 1), ("sun", "rain")),
        filenames=("a.png",),
        present=np.ones(1, dtype=bool),
        labels=np.zeros(1, dtype=np.int64),
        probabilities=np.array([[1.0, 0.0]]),
    )
    with pytest.raises(ConfigError, match=r"needs an object-detection task.*'classification'"):
        crop_boxes(classification, [(8, 8)])  # type: ignore[arg-type]  # the mistake under test


# ----------------------------------------------------------------------------- reading crops


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, DetectionPredictions, list[tuple[int, int] | None]]:
    root = tmp_path / "input"
    _image(root / "a.png", (40, 30), seed=1)
    _image(root / "sub" / "b.png", (20, 24), seed=2)
    preds = _preds(
        ["a.png", "sub/b.png"],
        [
            _dets([[4, 3, 10, 8], [30, 20, 10, 10]], [0, 1], [0.9, 0.6]),
            _dets([[0, 0, 20, 24]], [1], [0.8]),
        ],
    )
    return root, preds, [(40, 30), (20, 24)]


def test_crop_dataset_items(
    scene: tuple[Path, DetectionPredictions, list[tuple[int, int] | None]],
) -> None:
    root, preds, sizes = scene
    crops = crop_boxes(preds, sizes, padding=0.1)
    # (4 - 1, 3 - 0.8, 14 + 1, 11 + 0.8) -> (3, 2, 15, 12); (29, 19, 41 -> 40, 31 -> 30)
    assert [c.box for c in crops] == [(3, 2, 15, 12), (29, 19, 40, 30), (0, 0, 20, 24)]
    dataset = CropDataset(root, crops, transform=T.Compose([T.Resize((16, 16)), T.ToTensor()]))
    assert len(dataset) == 3
    samples = [dataset[i] for i in range(3)]
    assert all(s[0].shape == (3, 16, 16) and s[0].dtype == torch.float32 for s in samples)
    assert [s[1] for s in samples] == [0, 1, 1]
    assert [s[2] for s in samples] == dataset.get_filenames()
    assert dataset.get_filenames() == [
        "a-cars-0-png.png",
        "a-cars-1-png.png",
        "sub/b-cars-0-png.png",
    ]
    raw = CropDataset(root, crops)[1][0]
    expected = np.asarray(Image.open(root / "a.png").convert("RGB"))[19:30, 29:40]
    np.testing.assert_array_equal(np.asarray(raw), expected)


def test_crop_dataset_pickles_without_cached_image(
    scene: tuple[Path, DetectionPredictions, list[tuple[int, int] | None]],
) -> None:
    root, preds, sizes = scene
    dataset = CropDataset(root, crop_boxes(preds, sizes))
    first = np.asarray(dataset[0][0])
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._cached is None
    np.testing.assert_array_equal(np.asarray(clone[0][0]), first)


def test_crop_dataset_errors(
    scene: tuple[Path, DetectionPredictions, list[tuple[int, int] | None]],
) -> None:
    root, preds, sizes = scene
    crops = crop_boxes(preds, sizes)
    gone = [Crop("x-cars-0-png.png", "x.png", 0, (0, 0, 2, 2), 0, 1.0)]
    with pytest.raises(DataError, match=r"x\.png"):
        CropDataset(root, gone)
    _image(root / "a.png", (10, 10))  # the file changed after its size was recorded
    with pytest.raises(DataError, match=r"exceeds the 10x10 image 'a\.png'"):
        CropDataset(root, crops)[0]
    images = LightlyDataset(root, transform=T.ToTensor())
    with pytest.raises(ConfigError, match="no transform"):
        CropDataset(root, crops, images=images)


def test_save_crops_writes_source_pixels(
    scene: tuple[Path, DetectionPredictions, list[tuple[int, int] | None]], tmp_path: Path
) -> None:
    root, preds, sizes = scene
    crops = crop_boxes(preds, sizes, padding=0.1)
    out = tmp_path / "crops"
    paths = save_crops(root, crops, out)
    assert paths == [
        out / "a-cars-0-png.png",
        out / "a-cars-1-png.png",
        out / "sub/b-cars-0-png.png",
    ]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "a-cars-0-png.png",
        "a-cars-1-png.png",
        "sub",
        "sub/b-cars-0-png.png",
    ]  # nothing else, e.g. no temporary files
    source = np.asarray(Image.open(root / "a.png").convert("RGB"))
    np.testing.assert_array_equal(np.asarray(Image.open(paths[0])), source[2:12, 3:15])
    whole_b = np.asarray(Image.open(root / "sub" / "b.png").convert("RGB"))
    np.testing.assert_array_equal(np.asarray(Image.open(paths[2])), whole_b)


def test_crops_of_video_frames(make_video: Callable[..., Path], tmp_path: Path) -> None:
    root = tmp_path / "videos"
    make_video("clip.mp4", n_frames=6, size=(32, 32), root=root)
    frames = LightlyDataset(root).get_filenames()
    names = [frames[1], frames[4]]
    preds = _preds(names, [_dets([[0, 0, 8, 8]], [0], [0.9]), _dets([[8, 16, 16, 16]], [1], [0.5])])
    crops = crop_boxes(preds, [(32, 32), (32, 32)], padding=0.0)
    assert crops[1].name == f"{names[1][: -len('.png')]}-cars-0-png.png"
    dataset = CropDataset(root, crops)
    reference = LightlyDataset(root, filenames=names)
    for i in range(2):
        frame = np.asarray(reference[i][0])
        left, top, right, bottom = crops[i].box
        np.testing.assert_array_equal(np.asarray(dataset[i][0]), frame[top:bottom, left:right])


def test_crops_from_a_predictions_folder(tmp_path: Path) -> None:
    root = tmp_path / "input"
    _image(root / "img.png", (40, 30))
    folder = tmp_path / "preds"
    (folder / "cars").mkdir(parents=True)
    (folder / "tasks.json").write_text('["cars"]')
    (folder / "cars" / "schema.json").write_text(
        '{"task_type": "object-detection", "categories": [{"id": 0, "name": "car"}]}'
    )
    prediction_path(folder, "cars", "img.png").write_text(
        '{"file_name": "img.png", "predictions": '
        '[{"category_id": 0, "bbox": [30, 20, 10, 10], "score": 0.5}]}'
    )
    preds = load_predictions(folder, "cars", ["img.png"], [(40, 30)])
    assert isinstance(preds, DetectionPredictions)
    crops = crop_boxes(preds, [(40, 30)], padding=0.1)
    assert [(c.name, c.box) for c in crops] == [("img-cars-0-png.png", (29, 19, 40, 30))]


# ----------------------------------------------------------------------------- embedding


def test_embed_crops_matches_model_on_each_crop(
    scene: tuple[Path, DetectionPredictions, list[tuple[int, int] | None]], tmp_path: Path
) -> None:
    from selfsup.core import build_model
    from selfsup.transforms.utils import IMAGENET_NORMALIZE

    torch.manual_seed(0)
    root, preds, sizes = scene
    crops = crop_boxes(preds, sizes)
    cfg = LightlyConfig.model_validate(
        {
            "input_dir": str(root),
            "model": {"name": "resnet-9", "width": 0.125, "num_ftrs": 8, "out_dim": 8},
            "collate": {"input_size": 32},
            "loader": {"num_workers": 0, "batch_size": 2},
            "trainer": {"gpus": 0},
            # float32: compared with the model's float32 forward pass on each crop
            "embedding": {"precision": "32"},
        }
    )
    model = build_model(cfg.model)
    checkpoint = tmp_path / "tiny.ckpt"
    torch.save(
        {"state_dict": model.state_dict(), "selfsup": {"model": cfg.model.model_dump()}}, checkpoint
    )
    emb, labels, names = embed_crops(cfg, crops, checkpoint, progress=False)
    # Through a run's checked samples (no listing of the folder): the same embeddings.
    from selfsup.curation.checks import build_manifest
    from selfsup.data import ManifestDataset

    checked = build_manifest(root, remove_exact_duplicates=False, progress=False)
    samples = ManifestDataset(
        root, [r for r in checked.records if r.is_ok], classes=checked.classes
    )
    via_samples = embed_crops(cfg, crops, checkpoint, progress=False, samples=samples)
    np.testing.assert_array_equal(via_samples[0], emb)
    assert via_samples[1].tolist() == labels.tolist()
    assert via_samples[2] == names
    assert emb.shape == (3, 8)
    assert emb.dtype == np.float32
    assert labels.tolist() == [0, 1, 1]
    assert names == [c.name for c in crops]
    # the same transform as whole images: resize to input_size, normalise
    transform = T.Compose(
        [
            T.Resize((32, 32)),
            T.ToTensor(),
            T.Normalize(IMAGENET_NORMALIZE["mean"], IMAGENET_NORMALIZE["std"]),
        ]
    )
    model.eval()
    with torch.no_grad():
        x = torch.stack([transform(CropDataset(root, crops).crop_image(i)) for i in range(3)])
        backbone = model.backbone
        assert isinstance(backbone, torch.nn.Module)
        expected = backbone(x).flatten(start_dim=1).numpy()
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-5)
    # embedding.precision reaches the crops' forward pass, as it does whole images'.
    bf16 = cfg.model_copy(
        update={"embedding": cfg.embedding.model_copy(update={"precision": "bf16"})}
    )
    half, _, _ = embed_crops(bf16, crops, checkpoint, progress=False)
    assert not np.array_equal(half, emb)
    np.testing.assert_allclose(half, emb, rtol=0.1, atol=0.05)


def test_crop_scores_and_class_counts() -> None:
    dets = Detections(
        boxes=np.array([[0, 0, 4, 4], [1, 1, 4, 4], [2, 2, 4, 4]], dtype=np.float64),
        class_ids=np.array([0, 1, 1]),
        scores=np.array([0.9, 0.5, 0.8]),
        probabilities=np.array([[0.6, 0.4], [np.nan, np.nan], [0.1, 0.9]]),
    )
    preds = _preds(["a.png"], [dets])
    crops = crop_boxes(preds, [(16, 16)], min_confidence=0.6)  # box 1 dropped
    assert [c.box_index for c in crops] == [0, 2]
    scores = crop_scores(preds, crops)
    # each crop scores its own box: margin 1 - |p1 - p2| from its probabilities
    np.testing.assert_allclose(scores["uncertainty_margin"], [1 - 0.2, 1 - 0.8])
    np.testing.assert_allclose(scores["objectness_least_confidence"], [0.1, 0.2])
    counts = crop_class_counts(preds, crops)
    assert counts.names == ("car", "bus")
    assert counts.counts.tolist() == [[1, 0], [0, 1]]
    # a box without probabilities falls back to (score, 1 - score)
    all_scores = crop_scores(preds, crop_boxes(preds, [(16, 16)]))
    assert all_scores["uncertainty_margin"][1] == pytest.approx(1.0)
    assert all_scores["uncertainty_entropy"][1] == pytest.approx(1.0)
