"""Real PyTorch Lightning runs on the CPU: the metrics users log, under one process and under DDP.

Each run trains a one-layer segmenter for 2 epochs on seeded synthetic images, logs segdice metrics in
both forms (a ``SegDiceMetric`` object through ``self.log``, and ``SegmentationMetrics.compute(flat=True)``
through ``self.log_dict``) next to torchmetrics' ``DiceScore``, writes them with Lightning's CSV logger,
and records every prediction it scored. The tests then read the CSV and check each logged number
against ``segdice.metrics.dice_score`` on the recorded predictions and against ``DiceScore``.
"""

from __future__ import annotations

import csv
import math
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pl = pytest.importorskip("pytorch_lightning")
pytest.importorskip("torchmetrics")

from pytorch_lightning.callbacks import ModelCheckpoint  # noqa: E402
from pytorch_lightning.loggers import CSVLogger  # noqa: E402
from torchmetrics.segmentation import DiceScore  # noqa: E402

from segdice import SegmentationMetrics  # noqa: E402
from segdice.integrations.torchmetrics import SegDiceMetric  # noqa: E402
from segdice.metrics import dice_score  # noqa: E402

# Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: theirs to fix, not ours to see.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*")

NUM_CLASSES = 3
CLASS_NAMES = ("background", "disc", "bar")
EPOCHS = 2


def synthetic(n: int, seed: int) -> torch.utils.data.TensorDataset:
    """Images [n, 1, 16, 16]: a bright disc (class 1) and a dim bar (class 2) in noise; class 2 is
    missing from every third image, so some per-image scores are NaN."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16]
    images = np.zeros((n, 1, 16, 16), np.float32)
    labels = np.zeros((n, 16, 16), np.int64)
    for i in range(n):
        cy, cx, r = rng.integers(4, 12), rng.integers(4, 12), rng.integers(2, 4)
        labels[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        if i % 3:
            row = rng.integers(0, 14)
            labels[i][row : row + 2, 2:14][labels[i][row : row + 2, 2:14] == 0] = 2
        images[i, 0] = labels[i] * 0.8 + rng.normal(0, 0.4, (16, 16))
    return torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


class Segmenter(pl.LightningModule):
    """One 3x3 convolution; the metrics a user would log, and a record of what they scored."""

    def __init__(self, record_dir: str) -> None:
        super().__init__()
        self.net = nn.Conv2d(1, NUM_CLASSES, 3, padding=1)
        self.record_dir = record_dir
        self.train_dice = SegDiceMetric(NUM_CLASSES)
        self.train_metrics = SegmentationMetrics(NUM_CLASSES, metrics=("dice",), class_names=CLASS_NAMES)
        self.val_dice = SegDiceMetric(NUM_CLASSES)
        self.val_torchmetrics = DiceScore(NUM_CLASSES, average="macro", input_format="index")
        self.val_metrics = SegmentationMetrics(NUM_CLASSES, metrics=("dice",), class_names=CLASS_NAMES)
        # Never reset: everything the run has trained on, to be carried through checkpoints.
        self.seen = SegmentationMetrics(NUM_CLASSES, metrics=("dice",), class_names=CLASS_NAMES)
        self.seen_torchmetrics = SegDiceMetric(NUM_CLASSES, per_image=False)
        self.seen_torchmetrics.persistent(True)
        self.records: dict[str, list] = {"train": [], "val": []}

    def training_step(self, batch, batch_idx):
        images, labels = batch
        logits = self.net(images)
        loss = nn.functional.cross_entropy(logits, labels)
        pred = logits.detach().argmax(1)
        self.train_dice(pred, labels)
        self.log("train/dice", self.train_dice, on_step=True, on_epoch=True)
        step = self.train_metrics(pred, labels, flat=True)  # this batch's values, also accumulated
        self.log_dict({f"train/{k}": v for k, v in step.items() if "/global/" not in k}, on_step=True)
        self.seen.update(pred, labels)
        self.seen_torchmetrics.update(pred, labels)
        self.records["train"].append((pred.clone(), labels.clone()))
        return loss

    def on_train_epoch_end(self):
        self.train_metrics.reset()
        self._save_records("train")

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        pred = self.net(images).argmax(1)
        self.val_dice.update(pred, labels)
        self.val_torchmetrics.update(pred, labels)
        self.val_metrics.update(pred, labels)
        self.log("val/dice", self.val_dice)
        self.log("val/torchmetrics_dice", self.val_torchmetrics)
        self.records["val"].append((pred, labels))

    def on_validation_epoch_end(self):
        # compute() sums the state of every rank; every rank calls it, rank 0's logger writes it
        self.log_dict({f"val/{k}": v for k, v in self.val_metrics.compute(flat=True).items()})
        self.val_metrics.reset()
        self._save_records("val")

    def _save_records(self, stage: str) -> None:
        pred = torch.cat([p for p, _ in self.records[stage]])
        labels = torch.cat([t for _, t in self.records[stage]])
        name = f"{stage}-epoch{self.current_epoch}-rank{self.global_rank}.pt"
        torch.save({"pred": pred, "labels": labels}, Path(self.record_dir) / name)
        self.records[stage] = []

    def on_save_checkpoint(self, checkpoint):
        checkpoint["segdice_seen"] = self.seen.state_dict()

    def on_load_checkpoint(self, checkpoint):
        self.seen.load_state_dict(checkpoint["segdice_seen"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(synthetic(12, seed=1), batch_size=4, shuffle=False)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(synthetic(8, seed=2), batch_size=2, shuffle=False)


def trainer(tmp_path: Path, name: str, **kwargs) -> pl.Trainer:
    options = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": EPOCHS,
        "logger": CSVLogger(tmp_path, name=name, version=0),
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "default_root_dir": tmp_path,
    }
    options.update(kwargs)
    return pl.Trainer(**options)


def fit(tmp_path: Path, name: str, *, ckpt_path=None, **kwargs) -> tuple[Segmenter, Path]:
    record_dir = tmp_path / f"{name}-records"
    record_dir.mkdir(exist_ok=True)
    torch.manual_seed(0)
    module = Segmenter(str(record_dir))
    with warnings.catch_warnings():
        # Lightning's advice for a laptop-sized run (more dataloader workers, sync_dist on epoch values
        # that are already global, a checkpoint folder that the resumed run shares on purpose).
        warnings.filterwarnings(
            "ignore", message=".*(num_workers|sync_dist|does not have many workers|exists and is not empty).*"
        )
        trainer(tmp_path, name, **kwargs).fit(module, ckpt_path=ckpt_path)
    return module, record_dir


def logged_rows(tmp_path: Path, name: str) -> list[dict[str, float]]:
    with open(tmp_path / name / "version_0" / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def records(record_dir: Path, stage: str, epoch: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The predictions scored in one epoch, all ranks together; and how many each rank scored."""
    files = sorted(record_dir.glob(f"{stage}-epoch{epoch}-rank*.pt"))
    parts = [torch.load(f, weights_only=True) for f in files]
    pred = torch.cat([p["pred"] for p in parts])
    labels = torch.cat([p["labels"] for p in parts])
    return pred, labels, [len(p["pred"]) for p in parts]


def close(a: float, b: float, rel: float = 1e-12) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel)


def check_validation_logs(rows, record_dir: Path, *, world: int) -> list[dict[str, float]]:
    """Every epoch's validation values: both segdice forms, torchmetrics, and the functional metrics."""
    val_rows = [r for r in rows if "val/dice" in r]
    assert [int(r["epoch"]) for r in val_rows] == list(range(EPOCHS))
    for epoch, row in enumerate(val_rows):
        pred, labels, per_rank = records(record_dir, "val", epoch)
        assert per_rank == [8 // world] * world  # each rank scored its shard only
        macro = float(dice_score(pred, labels, num_classes=NUM_CLASSES, average="macro"))
        per_image = dice_score(pred, labels, num_classes=NUM_CLASSES)
        pooled = dice_score(pred, labels, num_classes=NUM_CLASSES, per_image=False)
        assert close(row["val/dice"], macro)  # SegDiceMetric through self.log
        # self.log_dict turns Python floats into float32 tensors: the flat values are logged to 7 digits
        assert close(row["val/dice/macro"], macro, rel=1e-6)  # SegmentationMetrics through self.log_dict
        assert close(row["val/torchmetrics_dice"], macro, rel=1e-6)  # DiceScore, float32
        for c, name in enumerate(CLASS_NAMES):
            column = per_image[:, c][~torch.isnan(per_image[:, c])]
            assert close(row[f"val/dice/{name}"], float(column.mean()), rel=1e-6)
            assert close(row[f"val/dice/global/{name}"], float(pooled[c]), rel=1e-6)
    return val_rows


def check_training_logs(rows, record_dir: Path, *, world: int) -> None:
    step_rows = [r for r in rows if "train/dice_step" in r]
    assert len(step_rows) == EPOCHS * math.ceil(12 / world / 4)
    epoch_rows = [r for r in rows if "train/dice_epoch" in r]
    assert [int(r["epoch"]) for r in epoch_rows] == list(range(EPOCHS))
    for epoch in range(EPOCHS):
        pred, labels, per_rank = records(record_dir, "train", epoch)
        assert per_rank == [12 // world] * world
        want = float(dice_score(pred, labels, num_classes=NUM_CLASSES, average="macro"))
        assert close(epoch_rows[epoch]["train/dice_epoch"], want)
        # step values are the batch of rank 0 alone (forward does not sync), in the order trained
        rank0 = torch.load(record_dir / f"train-epoch{epoch}-rank0.pt", weights_only=True)
        steps = [r for r in step_rows if int(r["epoch"]) == epoch]
        for i, row in enumerate(steps):
            batch = slice(4 * i, 4 * i + 4)
            value = float(dice_score(rank0["pred"][batch], rank0["labels"][batch], average="macro"))
            assert close(row["train/dice_step"], value) and close(row["train/dice/macro"], value, rel=1e-6)


def test_two_epoch_fit_logs_the_right_numbers(tmp_path):
    module, record_dir = fit(tmp_path, "single")
    rows = logged_rows(tmp_path, "single")
    val_rows = check_validation_logs(rows, record_dir, world=1)
    check_training_logs(rows, record_dir, world=1)
    assert val_rows[0]["val/dice"] != val_rows[1]["val/dice"]  # it trained: the epochs differ
    # the never-reset metrics hold both epochs' training predictions
    pred = torch.cat([records(record_dir, "train", e)[0] for e in range(EPOCHS)])
    labels = torch.cat([records(record_dir, "train", e)[1] for e in range(EPOCHS)])
    pooled = dice_score(pred, labels, per_image=False, average="macro")
    assert module.seen.compute(flat=True)["dice/global/macro"] == pytest.approx(float(pooled), rel=1e-12)
    assert float(module.seen_torchmetrics.compute()) == pytest.approx(float(pooled), rel=1e-12)


def test_checkpoint_resume_keeps_the_metric_state(tmp_path):
    uninterrupted, _ = fit(tmp_path, "uninterrupted")
    checkpoints = tmp_path / "checkpoints"
    fit(
        tmp_path,
        "first",
        max_epochs=1,
        enable_checkpointing=True,
        callbacks=[ModelCheckpoint(dirpath=checkpoints, save_last=True)],
    )
    checkpoint = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert checkpoint["segdice_seen"]["sums"]["n_images"].item() == 12  # one epoch of training images
    assert checkpoint["state_dict"]["seen_torchmetrics.n_images"].item() == 12  # persistent state
    resumed, _ = fit(
        tmp_path,
        "resumed",
        ckpt_path=checkpoints / "last.ckpt",
        enable_checkpointing=True,
        callbacks=[ModelCheckpoint(dirpath=checkpoints, save_last=True)],
    )
    assert resumed.seen.compute()["n_images"] == 24
    assert resumed.seen.compute(flat=True) == uninterrupted.seen.compute(flat=True)
    assert float(resumed.seen_torchmetrics.compute()) == float(uninterrupted.seen_torchmetrics.compute())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_spawn_two_gloo_processes_equal_one_process(tmp_path, monkeypatch):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    if os.uname().sysname == "Linux":
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    _, record_dir = fit(tmp_path, "ddp", strategy="ddp_spawn", devices=2)
    rows = logged_rows(tmp_path, "ddp")
    # each rank scored half of the images; the logged values are those of all images in one process
    check_validation_logs(rows, record_dir, world=2)
    check_training_logs(rows, record_dir, world=2)
    # and a rank's own half alone would have given another number: the sum over ranks happened
    for epoch, row in enumerate(r for r in rows if "val/dice" in r):
        shard = torch.load(record_dir / f"val-epoch{epoch}-rank0.pt", weights_only=True)
        local = float(dice_score(shard["pred"], shard["labels"], num_classes=NUM_CLASSES, average="macro"))
        assert not close(row["val/dice"], local) and not close(row["val/dice/macro"], local, rel=1e-6)
