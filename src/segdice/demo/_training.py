"""The demo's training loop: same initial weights, same batches and same schedule for every loss."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from segdice.demo._data import SyntheticSlices
from segdice.demo._model import TinyUNet

__all__ = ["History", "TrainConfig", "predict", "train_model"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters shared by every trained method, so that only the loss differs."""

    epochs: int
    batch_size: int = 4
    lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0
    base_channels: int = 8


@dataclass
class History:
    """Per-epoch training loss and validation scores of one method."""

    loss: list[float] = field(default_factory=list)
    val_dice: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, list[float]]:
        return {"loss": self.loss, "val_dice": self.val_dice, "val_accuracy": self.val_accuracy}


def build_model(config: TrainConfig, device: torch.device) -> TinyUNet:
    """The initial network, identical for every method of a run (seeded from ``config.seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return TinyUNet(1, 2, base_channels=config.base_channels).to(device)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 32) -> np.ndarray:
    """Arg-max label maps ``int64 [N, H, W]`` for images ``[N, 1, H, W]``."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).to(device)
        out.append(model(x).argmax(1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.int64)


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # Flips and 90-degree turns keep the lesions' pixels exact (no interpolation of the masks).
    flip_h, flip_v, turn = (torch.rand(3, x.shape[0], generator=gen) < 0.5).unbind(0)
    x, y = x.clone(), y.clone()
    x[flip_h], y[flip_h] = x[flip_h].flip(-1), y[flip_h].flip(-1)
    x[flip_v], y[flip_v] = x[flip_v].flip(-2), y[flip_v].flip(-2)
    x[turn], y[turn] = x[turn].transpose(-1, -2), y[turn].transpose(-1, -2)
    return x, y


def train_model(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train: SyntheticSlices,
    val: SyntheticSlices,
    config: TrainConfig,
    *,
    device: torch.device,
    validate: Callable[[np.ndarray, np.ndarray], tuple[float, float]],
    on_step: Callable[[float], None] | None = None,
) -> tuple[TinyUNet, History]:
    """Train a fresh :class:`TinyUNet` with ``loss_fn`` on ``train``; validate on ``val`` every epoch.

    ``validate(pred, target)`` returns the epoch's ``(dice, accuracy)``. Adam with a cosine learning-rate
    decay to zero; the returned model is the last epoch's (choosing the best epoch on the validation set
    would make the reported validation scores optimistic).
    """
    model = build_model(config, device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = config.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    gen = torch.Generator().manual_seed(config.seed + 1)
    images = torch.from_numpy(train.images)
    masks = torch.from_numpy(train.masks)
    history = History()
    start = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        running, seen = 0.0, 0
        for first in range(0, len(train), config.batch_size):
            idx = order[first : first + config.batch_size]
            x, y = _augment(images[idx], masks[idx], gen)
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            value = float(loss.detach())
            running += value * len(idx)
            seen += len(idx)
            if on_step is not None:
                on_step(value)
        history.loss.append(running / seen)
        dice, acc = validate(predict(model, val.images, device), val.masks)
        history.val_dice.append(dice)
        history.val_accuracy.append(acc)
    history.seconds = time.perf_counter() - start
    return model, history
