"""The fixed per-call cost of the Dice losses on small inputs, forward + backward, beside MONAI's.

Run ``nice -n -15 python benchmarks/small_inputs.py`` (``--threads 2`` for two threads). On 4x1x64x64
(binary) and 4x4x64x64 (multiclass) logits the milliseconds are mostly fixed costs: Python, op dispatch and
autograd nodes, which is what the small-input paths of ``segdice.stats._small`` cut.

Method: every implementation is called on the same logits in one process; a warm-up, then ``--rounds``
rounds in which each implementation runs ``--calls`` timed calls (``perf_counter``, ``grad = None`` before
each, untimed) one after the other, so a burst of load on a shared machine hits all of them alike. The
number is the smallest round median. Binary: segdice gets the int64 label map ("int") and the float 0/1 mask
("float"), MONAI the float mask. Multiclass: segdice gets the int64 labels and the float one-hot target,
MONAI the ``[B, 1, H, W]`` labels with ``to_onehot_y=True``. Same losses everywhere: batch pooling
(MONAI ``batch=True``), smooth 1e-5, focal gamma 2 without alpha (MONAI applies its sigmoid focal term
also to softmax outputs, ours the softmax focal term). The load average is printed beside the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

import segdice


def _best_medians(fns: dict, reset, rounds: int, calls: int) -> dict[str, float]:
    for fn in fns.values():
        for _ in range(20):
            reset()
            fn().backward()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            times = []
            for _ in range(calls):
                reset()
                start = time.perf_counter()
                fn().backward()
                times.append(time.perf_counter() - start)
            best[name] = min(best[name], statistics.median(times) * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=60)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import monai
    import monai.losses as ml

    gen = torch.Generator().manual_seed(0)
    xb = (torch.randn(4, 1, 64, 64, generator=gen) * 2).requires_grad_(True)
    lb = torch.randint(0, 2, (4, 1, 64, 64), generator=gen)
    fb = lb.float()
    xm = (torch.randn(4, 4, 64, 64, generator=gen) * 2).requires_grad_(True)
    lm = torch.randint(0, 4, (4, 64, 64), generator=gen)
    onehot = F.one_hot(lm, 4).permute(0, 3, 1, 2).float().contiguous()
    mc = {"softmax": True, "to_onehot_y": True, "batch": True}
    lm1 = lm.unsqueeze(1)
    rows = [
        ("binary Dice", segdice.DiceLoss("binary"), ml.DiceLoss(sigmoid=True, batch=True), xb, lb, fb, fb),
        ("binary DiceCE", segdice.DiceCELoss("binary"), ml.DiceCELoss(sigmoid=True, batch=True), xb, lb, fb, fb),
        ("binary DiceFocal", segdice.DiceFocalLoss("binary"), ml.DiceFocalLoss(sigmoid=True, batch=True), xb, lb, fb, fb),
        ("multiclass Dice", segdice.DiceLoss("multiclass"), ml.DiceLoss(**mc), xm, lm, onehot, lm1),
        ("multiclass DiceCE", segdice.DiceCELoss("multiclass"), ml.DiceCELoss(**mc), xm, lm, onehot, lm1),
        ("multiclass DiceFocal", segdice.DiceFocalLoss("multiclass"), ml.DiceFocalLoss(**mc), xm, lm, onehot, lm1),
    ]
    print(
        f"torch {torch.__version__}, MONAI {monai.__version__}, {args.threads} thread(s), "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    print("| loss | ours, int labels (ms) | ours, float mask / one-hot (ms) | MONAI (ms) | int / MONAI | float / MONAI |")
    print("|---|---|---|---|---|---|")
    for name, ours, theirs, x, t_int, t_float, t_theirs in rows:

        def reset(x=x):
            x.grad = None

        fns = {
            "int": lambda ours=ours, x=x, t=t_int: ours(x, t),
            "float": lambda ours=ours, x=x, t=t_float: ours(x, t),
            "monai": lambda theirs=theirs, x=x, t=t_theirs: theirs(x, t),
        }
        r = _best_medians(fns, reset, args.rounds, args.calls)
        print(
            f"| {name} | {r['int']:.3f} | {r['float']:.3f} | {r['monai']:.3f} | {r['int'] / r['monai']:.2f} | "
            f"{r['float'] / r['monai']:.2f} |",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
