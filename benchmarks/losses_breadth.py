"""FocalLoss and LovaszLoss forward + backward, side by side with the peers that have them (time ratios).

Run ``python benchmarks/losses_breadth.py`` (or ``--quick``). Each implementation runs on the same logits
and target; after one untimed warm-up call of each, a round times forward + backward with
``perf_counter`` (``logits.grad = None`` before each call, not timed), alternating the order of segdice
and the peer from round to round; the ratio is the
median over rounds of ``peer time / segdice time`` (> 1: segdice is faster). Peak memory: the rise of
the process's peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs`` where the kernel allows it)
during one forward + backward, in MiB, measured in a fresh subprocess per implementation with a 64 KiB
mmap threshold (every larger block is fresh memory, so a freed block cannot hide a temporary).

smp's loss files are loaded without its encoders (smp is installed without timm/torchvision).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
import warnings

CASES = {"2d": ((8, 4, 256, 256), "multiclass"), "binary": ((8, 1, 256, 256), "binary")}
QUICK = {"2d": ((2, 4, 96, 96), "multiclass"), "binary": ((2, 1, 96, 96), "binary")}


def _smp_losses():
    try:
        import segmentation_models_pytorch.losses as losses

        return losses
    except ImportError:
        spec = importlib.util.find_spec("segmentation_models_pytorch")
        if spec is None:
            return None
        parent = types.ModuleType("segmentation_models_pytorch")
        parent.__path__ = list(spec.submodule_search_locations)
        sys.modules["segmentation_models_pytorch"] = parent
        return importlib.import_module("segmentation_models_pytorch.losses")


def _implementations(mode: str):
    from monai.losses import FocalLoss as MonaiFocal

    import segdice

    smp = _smp_losses()
    smp_mode = "multiclass" if mode == "multiclass" else "binary"
    impls = {
        "segdice FocalLoss": segdice.FocalLoss(mode),
        "segdice LovaszLoss": segdice.LovaszLoss(mode),
    }
    if mode == "binary":
        impls["MONAI FocalLoss"] = lambda x, t: MonaiFocal(gamma=2.0)(x, t.float())
    else:
        import kornia

        impls["kornia focal_loss"] = lambda x, t: kornia.losses.focal_loss(
            x, t, alpha=None, gamma=2.0, reduction="mean"
        )
        impls["MONAI FocalLoss (softmax)"] = lambda x, t: MonaiFocal(
            gamma=2.0, use_softmax=True, to_onehot_y=True
        )(x, t[:, None])
    if smp is not None:
        impls["smp FocalLoss"] = smp.FocalLoss(smp_mode)
        impls["smp LovaszLoss"] = smp.LovaszLoss(smp_mode)
    return impls


def _inputs(shape, mode):
    import torch

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=g, requires_grad=True)
    if mode == "multiclass":
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    else:
        target = torch.randint(0, 2, shape, generator=g)
    return logits, target


def _step(fn, logits, target) -> float:
    logits.grad = None
    start = time.perf_counter()
    fn(logits, target).backward()
    return time.perf_counter() - start


def _peak_rss_child(case: str, impl: str, quick: bool) -> float | None:
    code = (
        "import sys, json; sys.path.insert(0, 'benchmarks'); import losses_breadth as b; "
        f"print(json.dumps(b._peak_rss({case!r}, {impl!r}, {quick!r})))"
    )
    # Every block of 64 KiB or more is fresh memory (as the cold regime of benchmarks/losses.py): otherwise
    # the blocks freed by the warm-up call are reused and the rise reads near 0 for everyone.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])  # kB
    return 0


def _peak_rss(case: str, impl: str, quick: bool) -> float | None:
    warnings.filterwarnings("ignore")
    shape, mode = (QUICK if quick else CASES)[case]
    fn = _implementations(mode)[impl]
    logits, target = _inputs(shape, mode)
    _step(fn, logits, target)  # imports, first allocations
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _status("VmRSS")
    _step(fn, logits, target)
    return (_status("VmHWM") - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's); 1 is robust on a shared machine"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cases = QUICK if args.quick else CASES
    rounds = args.rounds or (5 if args.quick else 15)
    for case, (shape, mode) in cases.items():
        impls = _implementations(mode)
        logits, target = _inputs(shape, mode)
        print(f"\n### {case}: {mode} {tuple(shape)}, forward + backward, {rounds} rounds\n")
        print("| implementation | median ms | vs segdice (same loss) | peak MiB |")
        print("|---|---|---|---|")
        for name in impls:
            base = "segdice FocalLoss" if "ocal" in name else "segdice LovaszLoss"
            ratios, times = [], []
            for n in (name, base):  # one-time costs (first allocations, lazy imports) stay out of the rounds
                _step(impls[n], logits, target)
            for r in range(rounds):
                order = (name, base) if r % 2 else (base, name)
                t = {n: _step(impls[n], logits, target) for n in order}
                times.append(t[name])
                ratios.append(t[name] / t[base])
            peak = _peak_rss_child(case, name, args.quick)
            peak_text = f"{peak:.1f}" if peak is not None else "n/a"
            ratio = "1.00x" if name == base else f"{statistics.median(ratios):.2f}x"
            print(f"| {name} | {1e3 * statistics.median(times):.2f} | {ratio} | {peak_text} |")


if __name__ == "__main__":
    main()
