"""SwAV in a plain PyTorch loop, from selfsup's parts.

    python examples/swav.py --input-dir ./images --epochs 10
    python examples/swav.py              # on generated images (torchvision FakeData)
    python examples/swav.py --queue-length 3840  # codes over batch + queue (small batches)

Caron et al. 2020: features of every crop are scored against learnable prototypes; the
soft cluster assignments (codes) of the two high-resolution crops, balanced over the batch
by the Sinkhorn-Knopp algorithm, are predicted from every other crop, small ones included.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import MemoryBankModule, SwaVLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import SwaVProjectionHead, SwaVPrototypes
from selfsup.transforms import SwaVTransform
from selfsup.utils.debug import std_of_l2_normalized


class SwaV(nn.Module):
    """Backbone, projection head to unit features (B, out_dim), prototypes -> scores (B, K)."""

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        out_dim: int = 128,
        n_prototypes: int = 512,
        n_steps_frozen_prototypes: int = 0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SwaVProjectionHead(num_features, num_features, out_dim)
        self.prototypes = SwaVPrototypes(out_dim, n_prototypes, n_steps_frozen_prototypes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D) and unit projections (B, out_dim)."""
        features = self.backbone(x).flatten(start_dim=1)
        z = nn.functional.normalize(self.projection_head(features), dim=1)
        return features, z

    def scores(self, z: torch.Tensor, step: int) -> torch.Tensor:
        """(B, out_dim) unit features -> (B, K) scores against the prototypes."""
        out = self.prototypes(z, step)
        assert isinstance(out, torch.Tensor)  # one set of prototypes
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    parser.add_argument("--queue-length", type=int, default=0, help="0: no queue")
    args = parser.parse_args()

    # 2 high-resolution crops at the input size, 6 small ones (paper: 2 x 224 + 6 x 96).
    transform = SwaVTransform(
        crop_sizes=(args.input_size, max(args.input_size // 2, 8)), gaussian_blur=0.0
    )
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    # The prototypes stay frozen during the first epoch, as in the paper.
    model = SwaV(resnet, resnet.num_features, n_steps_frozen_prototypes=len(loader))
    criterion = SwaVLoss(temperature=0.1, sinkhorn_iterations=3, sinkhorn_epsilon=0.05)
    # One queue of past features per high-resolution crop, for the codes only.
    queues = [MemoryBankModule(size=(args.queue_length, 128)) for _ in range(2)]
    queued = 0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-6)

    step = 0
    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            model.prototypes.normalize()  # prototypes on the unit sphere at every step
            # Crops of one size go through the network as one batch.
            high_crops, low_crops = torch.cat(views[:2]), torch.cat(views[2:])
            features, z_high = model(high_crops)
            _, z_low = model(low_crops)
            high = [model.scores(z, step) for z in z_high.chunk(2)]
            low = [model.scores(z, step) for z in z_low.chunk(len(views) - 2)]
            queue_scores = None
            if args.queue_length > 0:
                pairs = zip(queues, z_high.chunk(2), strict=True)
                banks = [queue(z.detach(), update=True)[1] for queue, z in pairs]
                # The queue starts out random: use it once it holds real features.
                if queued >= args.queue_length:
                    with torch.no_grad():
                        queue_scores = [model.scores(b.T, step) for b in banks if b is not None]
                queued += views[0].shape[0]
            loss = criterion(high, low, queue_scores)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(features.detach()[: views[0].shape[0]])))
            step += 1
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
