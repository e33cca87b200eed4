"""What every training phase shares: seeding, and stopping on a loss that is not finite."""

from __future__ import annotations

import random

import numpy as np
import torch

from aecluster.errors import AeclusterError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class TrainingDiverged(AeclusterError):
    """The loss became NaN or infinite; nothing of that epoch is saved."""


def check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"training diverged in {where}: the loss is {loss.item()}; the last good epoch "
            "checkpoint is kept and no final model is written (lower train.lr?)"
        )
