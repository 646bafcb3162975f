"""distributed=True: two gloo processes each holding half the batch give the single-process global-batch loss."""

from __future__ import annotations

import datetime
import os
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


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 6, 5, generator=gen, dtype=torch.float64) * 2
    t = torch.randint(0, 3, (4, 6, 5), generator=gen)
    t[0, 0] = 255
    t[3][t[3] == 2] = 1  # a class absent from rank 1's half
    return x, t


def _worker(rank: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    # Rendezvous through a file, not a probed TCP port that another process may take before rank 0 binds
    # it; the timeout only catches a hang (a loaded machine can take minutes to start both ranks).
    init = f"file://{os.path.join(out_dir, 'rendezvous')}"
    dist.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=600)
    )
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
        mp.spawn(_worker, args=(out_dir,), nprocs=WORLD, join=True)
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
