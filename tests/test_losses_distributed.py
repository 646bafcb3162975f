"""distributed=True: two gloo processes each holding half the batch give the single-process global-batch loss."""

from __future__ import annotations

import datetime
import os
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segdice import dice_ce_loss, dice_loss, generalized_dice_loss, tversky_loss

WORLD = 2
LOSSES = {
    "dice": lambda x, t, **kw: dice_loss(x, t, "multiclass", ignore_index=255, **kw),
    "dice_ce": lambda x, t, **kw: dice_ce_loss(x, t, "multiclass", ignore_index=255, **kw),
    "tversky": lambda x, t, **kw: tversky_loss(
        x, t, "multiclass", alpha=0.3, beta=0.7, gamma=1.5, ignore_index=255, **kw
    ),
    "gdl": lambda x, t, **kw: generalized_dice_loss(x, t, "multiclass", ignore_index=255, **kw),
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 6, 5, generator=gen, dtype=torch.float64) * 2
    t = torch.randint(0, 3, (4, 6, 5), generator=gen)
    t[0, 0] = 255
    t[3][t[3] == 2] = 1  # a class absent from rank 1's half
    return x, t


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    try:
        x, t = _data()
        half = slice(rank * 2, rank * 2 + 2)
        results = {}
        for name, fn in LOSSES.items():
            xr = x[half].clone().requires_grad_(True)
            loss = fn(xr, t[half], distributed=True)
            loss.backward()
            results[name] = (loss.detach(), xr.grad)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.slow
def test_two_gloo_ranks_reproduce_the_global_batch_loss_and_gradients():
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(_free_port(), out_dir), nprocs=WORLD, join=True)
        ranks = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(WORLD)]
    x, t = _data()
    for name, fn in LOSSES.items():
        xg = x.clone().requires_grad_(True)
        want = fn(xg, t)
        want.backward()
        for rank, res in enumerate(ranks):
            loss, grad = res[name]
            torch.testing.assert_close(loss, want.detach(), msg=f"{name} value on rank {rank}")
            # DDP averages parameter gradients over ranks, so each rank carries world_size x its share.
            half = slice(rank * 2, rank * 2 + 2)
            torch.testing.assert_close(grad, WORLD * xg.grad[half], msg=f"{name} gradient on rank {rank}")
