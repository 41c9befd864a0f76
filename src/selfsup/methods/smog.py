"""SMoG (Pang et al. 2022): synchronous momentum grouping, contrast against groups.

SMoG contrasts instances with groups rather than with other instances, and updates the group
features by momentum in the same step as the network (hence "synchronous"): the momentum
(target) projection of one view picks the group, the online prediction of the other view is
classified into it by a softmax over its cosine similarities to all groups (τ = 0.1), and the
groups move towards the mean online projection of their members in the same step (β = 0.99).
Both views play both roles (the loss is symmetrised, where lightly's example swaps the views
every other batch).

The paper also re-initialises the groups by k-means over recent features every 300
iterations (Table 7b): this model keeps the momentum (target) features of the last steps in a
FIFO bank (4·K of them) and, at every ``reset_interval``-th optimisation step once the bank
holds at least K features, replaces the groups by the spherical k-means centres of the bank
and copies the online encoder into the momentum encoder, as lightly's example does. Between
resets the groups start as random unit vectors and follow the momentum update.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.loss._pair import check_positive
from selfsup.methods._base import (
    Method,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.models.modules import SMoGPredictionHead, SMoGProjectionHead, SMoGPrototypes
from selfsup.models.modules.smog import smog_kmeans

#: Momentum of the target encoder and of the groups (lightly's example; the paper's β).
MOMENTUM = 0.99
GROUP_MOMENTUM = 0.99
#: Optimisation steps between two k-means resets of the groups (the paper's 300).
RESET_INTERVAL = 300


class SMoGModel(MomentumEncoderModel):
    """Online backbone, projector and predictor; momentum copies; K = 4·out_dim groups.

    Hidden widths are 16·out_dim (2048 for out_dim 128, as lightly's example); the paper uses
    3000 groups on ImageNet, lightly's example 300 on CIFAR-10.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection, prediction and group size.
        temperature: τ of the group softmax (0.1).
        reset_interval: Steps between k-means resets of the groups (300); 0 disables them.
    """

    feature_bank: Tensor  # (4·K, out_dim) recent momentum features, a FIFO ring
    bank_pointer: Tensor  # () next row of the ring to write
    bank_count: Tensor  # () rows of the ring filled so far

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        temperature: float = 0.1,
        reset_interval: int = RESET_INTERVAL,
    ) -> None:
        hidden = 16 * out_dim
        super().__init__(backbone, SMoGProjectionHead(num_ftrs, hidden, out_dim))
        self.prediction_head = SMoGPredictionHead(out_dim, hidden, out_dim)
        groups = F.normalize(torch.randn(4 * out_dim, out_dim), dim=1)
        self.smog = SMoGPrototypes(groups, beta=GROUP_MOMENTUM)
        self.temperature = check_positive(temperature, "temperature", "SMoGModel")
        self.criterion = nn.CrossEntropyLoss()
        if (
            isinstance(reset_interval, bool)
            or not isinstance(reset_interval, int)
            or reset_interval < 0
        ):
            raise ConfigError(
                f"SMoGModel: reset_interval must be an integer >= 0 (steps between k-means "
                f"resets of the groups, 0 for none), got {reset_interval!r}"
            )
        self.reset_interval = reset_interval
        # Recent momentum features for the k-means reset: a FIFO ring, saved in checkpoints.
        self.register_buffer("feature_bank", torch.zeros(4 * groups.shape[0], out_dim))
        self.register_buffer("bank_pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        self.last_reset_step = -1

    @torch.no_grad()
    def _remember(self, features: Tensor) -> None:
        """Add (N, d) momentum features to the FIFO bank, overwriting the oldest."""
        size = self.feature_bank.shape[0]
        features = features[-size:].to(self.feature_bank)
        index = (self.bank_pointer + torch.arange(features.shape[0], device=features.device)) % size
        self.feature_bank[index] = features
        self.bank_pointer.copy_((self.bank_pointer + features.shape[0]) % size)
        self.bank_count.clamp_(max=size - features.shape[0]).add_(features.shape[0])

    @torch.no_grad()
    def reset_groups(self) -> bool:
        """Groups <- k-means centres of the bank, momentum encoder <- online encoder.

        Returns False (and changes nothing) while the bank holds fewer features than groups.
        """
        n_groups = self.smog.group_features.shape[0]
        count = int(self.bank_count)
        if count < n_groups:
            return False
        self.smog.set_group_features(smog_kmeans(self.feature_bank[:count], n_groups))
        self.update_momentum_encoder(0.0)
        return True

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "smog")
        training = torch.is_grad_enabled()
        step = progress.step
        if (
            training
            and self.reset_interval > 0
            and step > 0
            and step % self.reset_interval == 0
            and step != self.last_reset_step
        ):
            self.last_reset_step = step
            self.reset_groups()
        self.update_momentum_encoder(MOMENTUM)
        z = [self.project(v) for v in views]
        p = [self.prediction_head(zi) for zi in z]
        # Groups of the targets are picked before the groups move, as in the paper.
        targets = [self.project_momentum(v) for v in views]
        assignments = [self.smog.assign_groups(t) for t in targets]
        groups = self.smog.get_updated_group_features(torch.cat(z))
        logits = [self.smog(pi, groups, self.temperature) for pi in p]
        loss: Tensor = 0.5 * (
            self.criterion(logits[0], assignments[1]) + self.criterion(logits[1], assignments[0])
        )
        if training:
            self.smog.set_group_features(groups)
            self._remember(torch.cat(targets))
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SMoGTransform

    # Two crops of SMoG's large-crop augmentations.
    return SMoGTransform(
        crop_sizes=(input_size,),
        crop_counts=(2,),
        crop_min_scales=(0.2,),
        crop_max_scales=(1.0,),
        gaussian_blur_probs=(0.5,),
        gaussian_blur_kernel_sizes=(None,),
        solarize_probs=(0.0,),
    )


METHOD = Method(
    name="smog",
    title="SMoG (Pang et al. 2022)",
    build_model=SMoGModel,
    build_transform=_transform,
    # The paper: LARS at batch 4096; lightly's example: SGD at lr 0.06.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source="lightly's SMoG example (paper: LARS at batch 4096)",
    ),
)
