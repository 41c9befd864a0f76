"""SelfSupervisedEmbedding trains two-view models, checkpoints them and embeds datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from selfsup.data import LightlyDataset, SimCLRCollateFunction
from selfsup.embedding import CHECKPOINT_METADATA_KEY, SelfSupervisedEmbedding
from selfsup.embedding._base import split_views
from selfsup.errors import DataError
from selfsup.loss import NTXentLoss
from selfsup.models import ResNetGenerator, SimCLR


def _model() -> SimCLR:
    resnet = ResNetGenerator("resnet-9", width=0.125)
    backbone = nn.Sequential(*list(resnet.children())[:-1])
    return SimCLR(backbone, num_ftrs=resnet.num_features, out_dim=16)


@pytest.mark.slow
def test_train_checkpoint_and_embed(make_image_folder: Callable[..., Path], tmp_path: Path) -> None:
    torch.manual_seed(0)
    root = make_image_folder(n_classes=2, n_per_class=8, size=(32, 32))
    dataset = LightlyDataset(input_dir=str(root))
    collate = SimCLRCollateFunction(input_size=32, gaussian_blur=0.0)
    loader = DataLoader(dataset, batch_size=8, shuffle=True, collate_fn=collate, drop_last=True)
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )
    embedding.checkpoint_metadata = {"note": "kept"}
    ckpt = embedding.train_embedding(
        gpus=0, max_epochs=2, checkpoint_dir=tmp_path / "ckpt", enable_progress_bar=False
    )
    assert Path(ckpt).is_file()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    stored = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert stored[CHECKPOINT_METADATA_KEY] == {"note": "kept"}
    assert any(k.startswith("model.backbone.") for k in stored["state_dict"])

    eval_loader = DataLoader(
        LightlyDataset(input_dir=str(root)),
        batch_size=5,
    )
    emb, labels, names = embedding.embed(eval_loader, progress=False)
    assert emb.shape == (16, 64)  # resnet-9 at width 0.125 ends with 512 * 0.125 channels
    assert labels.tolist() == [0] * 8 + [1] * 8
    assert names[0] == "class_0/img_0_0.png"
    assert model.training, "embed must restore the training mode"


def test_embed_pil_dataset_of_mixed_sizes_is_a_clear_error(tmp_path: Path) -> None:
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (30, 20)).save(tmp_path / "b.png")
    loader = DataLoader(LightlyDataset(input_dir=str(tmp_path)), batch_size=2)
    model = _model()
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )
    with pytest.raises(DataError, match="different sizes"):
        embedding.embed(loader, progress=False)


def test_split_views_accepts_both_batch_forms_and_rejects_others() -> None:
    x0, x1 = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    assert split_views(((x0, x1), torch.zeros(2), ["a", "b"]))[1] is x1
    assert split_views(([x0, x1], torch.zeros(2), ["a", "b"]))[0] is x0
    with pytest.raises(DataError, match="holds 3 view"):
        split_views(([x0, x1, x1], torch.zeros(2), ["a", "b"]))
    with pytest.raises(DataError, match="single tensor"):
        split_views((x0, torch.zeros(2), ["a", "b"]))


def test_embed_returns_dataset_order_whatever_the_shuffle(
    make_image_folder: Callable[..., Path],
) -> None:
    # lightly sorts the rows by the dataset's file names: a shuffled loader must give the
    # same rows in the same order on every call.
    import torchvision.transforms as T

    root = make_image_folder(n_classes=2, n_per_class=5, size=(16, 16))
    dataset = LightlyDataset(input_dir=str(root), transform=T.ToTensor())
    model = _model().eval()
    plain = DataLoader(dataset, batch_size=3)
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), plain
    )
    emb0, labels0, names0 = embedding.embed(plain, progress=False)
    assert names0 == dataset.get_filenames()
    for seed in (1, 2):
        shuffled = DataLoader(
            dataset, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        emb, labels, names = embedding.embed(shuffled, progress=False)
        assert names == names0
        assert labels.tolist() == labels0.tolist()
        torch.testing.assert_close(torch.from_numpy(emb), torch.from_numpy(emb0))


def test_embed_keeps_a_subset_samplers_rows_in_dataset_order(
    make_image_folder: Callable[..., Path],
) -> None:
    import torchvision.transforms as T
    from torch.utils.data import SubsetRandomSampler

    root = make_image_folder(n_classes=1, n_per_class=6, size=(16, 16))
    dataset = LightlyDataset(input_dir=str(root), transform=T.ToTensor())
    model = _model().eval()
    loader = DataLoader(dataset, batch_size=2, sampler=SubsetRandomSampler([5, 1, 3]))
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )
    _, _, names = embedding.embed(loader, progress=False)
    everything = dataset.get_filenames()
    assert names == [everything[1], everything[3], everything[5]]
