"""Dice losses, forward + backward: time and peak memory as ratios to cross-entropy, side by side with peers.

Run ``python benchmarks/losses.py`` (full, several minutes) or ``python benchmarks/losses.py --quick``;
``--threads 1`` for one CPU thread, ``--device cuda`` on a GPU. Every (case, implementation, regime) runs in
a fresh Python process, so one allocator history cannot leak into the next measurement. Printed as
markdown tables.

Method
------
* Time: a warm-up call, then ``--rounds`` rounds; each round times cross-entropy forward+backward
  (``F.cross_entropy`` on the same logits, ``binary_cross_entropy_with_logits`` for binary) and the
  implementation, both with ``perf_counter`` and ``logits.grad = None`` before each call (not timed). We
  report the median time and a paired ratio, which is what stays meaningful on a shared, noisy machine.
  The order alternates from round to round (cross-entropy first in even rounds, the implementation first
  in odd ones): in the warm regime the second call of a round reuses memory the first one freed, so a
  fixed order flatters whichever runs second. The ratio is the median over pairs of rounds of the
  geometric mean of the pair's two per-round quotients, in which that order effect cancels. The
  ``cross-entropy (reference)`` row, cross-entropy against itself, shows what bias remains (it should
  read about 1.00x). The compound losses' own term alone is that same reference: ``DiceCELoss``'s
  cross-entropy, and the cross-entropy a focal term generalises.
* Same loss for everyone: segdice's default ``per_image=False`` pools the batch, so MONAI runs with
  ``batch=True``. Binary targets: segdice gets the int64 label map (converted inside the timed call);
  the ``float mask`` row gives it the float 0/1 mask that MONAI, smp and kornia get (converted beforehand).
  Focal terms use ``gamma=2`` and no ``alpha`` everywhere (kornia's binary focal: ``alpha=None``). MONAI's
  ``DiceFocalLoss`` applies a sigmoid focal term even with ``softmax=True``; smp and kornia have no
  compound loss, so their rows add their Dice and focal losses.
* Malloc regime (glibc, CPU): ``cold`` = ``MALLOC_MMAP_THRESHOLD_=65536`` (every block of 64 KiB or more
  is fresh memory, faulted in on each call); ``warm`` = a 32 MiB threshold (blocks below it are reused, the
  steady state of a training loop). Blocks of 32 MiB and more are always fresh. On CUDA there is one
  regime, the caching allocator's, and every timed call is bracketed by ``torch.cuda.synchronize()``.
* Peak memory: CPU, in the cold process after the timed rounds, ``/proc/self/clear_refs`` resets the peak
  RSS; one forward+backward runs (the gradient is kept) and the rise of ``VmHWM`` over the ``VmRSS`` before
  the call is the peak, on top of the inputs. CUDA: ``max_memory_allocated`` over ``memory_allocated``
  before the call. Shown in MiB and as a multiple of the logits' bytes.
* The ``small`` case (4x1x64x64) measures the fixed per-call cost: there the milliseconds are mostly
  Python and launch overhead, and they are the number to read.
* ``--autocast bf16``: every timed call (cross-entropy included) runs under ``torch.autocast`` with bf16 on
  float32 logits, as mixed-precision training calls a loss. ``--compile``: the implementation and the
  cross-entropy are both wrapped in ``torch.compile`` (inductor, ``dynamic=False``); the warm-up calls
  absorb the compilation, and the peak is that of a compiled call.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

CASES = {
    "2d": ("multiclass", (16, 4, 256, 256)),
    "3d": ("multiclass", (2, 4, 96, 96, 96)),
    "3d-big": ("multiclass", (2, 8, 128, 128, 128)),
    "binary": ("binary", (16, 1, 256, 256)),
    "binary-3d": ("binary", (2, 1, 128, 128, 128)),
    "small": ("binary", (4, 1, 64, 64)),
    "small-mc": ("multiclass", (4, 4, 64, 64)),
}
QUICK_CASES = {
    "2d": ("multiclass", (4, 4, 64, 64)),
    "3d": ("multiclass", (1, 4, 32, 32, 32)),
    "binary": ("binary", (4, 1, 64, 64)),
}
IMPLS = [
    "cross-entropy (reference)",
    "segdice DiceLoss",
    "segdice DiceLoss, float mask",
    "segdice DiceCELoss",
    "segdice DiceCELoss, float mask",
    "segdice DiceFocalLoss",
    "segdice DiceFocalLoss, float mask",
    "MONAI DiceLoss",
    "MONAI DiceCELoss",
    "MONAI DiceFocalLoss",
    "smp DiceLoss",
    "smp DiceLoss + FocalLoss",
    "kornia dice_loss",
    "kornia dice_loss + focal_loss",
    "kornia binary_focal_loss_with_logits (focal alone)",
]
REGIME_ENV = {"cold": "65536", "warm": str(32 * 1024 * 1024)}


# ---------------------------------------------------------------------------------------------------
# child process: one measurement
# ---------------------------------------------------------------------------------------------------


def _load_smp_losses():
    """smp's loss package without smp's __init__ (which imports timm/torchvision, not installed here)."""
    spec = importlib.util.find_spec("segmentation_models_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = os.path.join(spec.submodule_search_locations[0], "losses")
    pkg_spec = importlib.util.spec_from_file_location(
        "_smp_losses", os.path.join(root, "__init__.py"), submodule_search_locations=[root]
    )
    module = importlib.util.module_from_spec(pkg_spec)
    sys.modules["_smp_losses"] = module
    pkg_spec.loader.exec_module(module)
    return module


def _make_loss(impl: str, mode: str, ndim: int):
    """Return fn(logits, labels) or None when the implementation does not cover the case."""
    import torch.nn.functional as F

    import segdice

    binary = mode == "binary"
    float_mask = impl.endswith(", float mask")
    if float_mask and not binary:
        return None
    name = impl.removesuffix(", float mask")
    if name == "cross-entropy (reference)":
        return (lambda x, t: F.binary_cross_entropy_with_logits(x, t)) if binary else F.cross_entropy
    if name.startswith("segdice"):
        cls = {"DiceLoss": segdice.DiceLoss, "DiceCELoss": segdice.DiceCELoss, "DiceFocalLoss": segdice.DiceFocalLoss}
        return cls[name.split()[1]](mode)
    if name.startswith("MONAI"):
        import monai.losses as ml

        cls = {"DiceLoss": ml.DiceLoss, "DiceCELoss": ml.DiceCELoss, "DiceFocalLoss": ml.DiceFocalLoss}[name.split()[1]]
        if binary:
            m = cls(sigmoid=True, batch=True)
            return lambda x, t: m(x, t)
        m = cls(softmax=True, to_onehot_y=True, batch=True)
        return lambda x, t: m(x, t.unsqueeze(1))
    if name.startswith("smp"):
        smp = _load_smp_losses()
        if smp is None:
            return None
        smp_mode = "binary" if binary else "multiclass"
        dice = smp.DiceLoss(smp_mode, from_logits=True)
        if name == "smp DiceLoss":
            return lambda x, t: dice(x, t)
        focal = smp.FocalLoss(smp_mode, gamma=2.0)
        return lambda x, t: dice(x, t) + focal(x, t)
    if name.startswith("kornia"):
        import kornia.losses as kl

        if name == "kornia binary_focal_loss_with_logits (focal alone)":
            if not binary:
                return None
            return lambda x, t: kl.binary_focal_loss_with_logits(x, t, alpha=None, gamma=2.0, reduction="mean")
        if binary or ndim != 4:
            return None  # kornia's dice_loss takes (B, C, H, W) softmax input only
        if name == "kornia dice_loss":
            return kl.dice_loss
        return lambda x, t: kl.dice_loss(x, t) + kl.focal_loss(x, t, alpha=None, gamma=2.0, reduction="mean")
    raise ValueError(impl)


def _rss(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def child(
    case: str, impl: str, rounds: int, threads: int, quick: bool, device: str = "cpu", autocast: str = "",
    compiled: bool = False,
) -> dict:  # fmt: skip
    import contextlib

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    mode, shape = (QUICK_CASES if quick else CASES)[case]
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(*shape, generator=gen) * 2).to(device).requires_grad_(True)
    if mode == "binary":
        labels = torch.randint(0, 2, shape, generator=gen).to(device)
        target_for = {"float": labels.float()}
    else:
        labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen).to(device)
    loss = _make_loss(impl, mode, len(shape))
    if loss is None:
        return {"skipped": True}
    # Binary targets: integer labels for segdice, float masks for the libraries that need them.
    int_labels = impl.startswith("segdice") and "float mask" not in impl
    tgt = labels if int_labels or mode != "binary" else target_for["float"]
    ref = _make_loss("cross-entropy (reference)", mode, len(shape))
    ref_t = labels if mode != "binary" else target_for["float"]
    if compiled:
        loss, ref = torch.compile(loss, dynamic=False), torch.compile(ref, dynamic=False)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(autocast)

    def amp():
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=x.device.type, dtype=dtype)

    def run(fn, t):
        x.grad = None
        sync()
        start = time.perf_counter()
        with amp():
            value = fn(x, t)
        value.backward()
        sync()
        return time.perf_counter() - start

    for _ in range(3 if compiled else 1):
        run(ref, ref_t)
        run(loss, tgt)
    times, ratios = [], []
    for i in range(rounds):
        if i % 2 == 0:
            r = run(ref, ref_t)
            m = run(loss, tgt)
        else:
            m = run(loss, tgt)
            r = run(ref, ref_t)
        times.append(m)
        ratios.append(m / r)
    # One ratio per pair of rounds (both orders), their geometric mean: the order bias cancels out.
    pairs = [(ratios[i] * ratios[i + 1]) ** 0.5 for i in range(0, len(ratios) - 1, 2)] or ratios
    out = {"ms": 1e3 * statistics.median(times), "ratio": statistics.median(pairs)}
    x.grad = None
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with amp():
            value = loss(x, tgt)
        value.backward()
        sync()
        out["peak"] = torch.cuda.max_memory_allocated() - base
    elif os.path.exists("/proc/self/clear_refs"):
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        base = _rss("VmRSS")
        with amp():
            value = loss(x, tgt)
        value.backward()
        out["peak"] = _rss("VmHWM") - base
    out["logits_bytes"] = x.numel() * x.element_size()
    return out


# ---------------------------------------------------------------------------------------------------
# parent: spawn the children, print the tables
# ---------------------------------------------------------------------------------------------------


def _spawn(case, impl, regime, rounds, threads, quick, device="cpu", autocast="", compiled=False) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if regime in REGIME_ENV:
        env["MALLOC_MMAP_THRESHOLD_"] = REGIME_ENV[regime]
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.abspath(src), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", case, impl, str(rounds), str(threads)]
    cmd += ["--device", device]
    if autocast:
        cmd += ["--autocast", autocast]
    if compiled:
        cmd.append("--compile")
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else (f"{v:.2f}" if v >= 1 else f"{v:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, 4 rounds, cold regime only")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="timed rounds per process (default 8, 6 for 3d-big; even, so both orders count alike)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--regime", choices=["cold", "warm", "both"], default="both")
    ap.add_argument("--cases", nargs="*", default=None)
    ap.add_argument("--impls", nargs="*", default=None, help="substrings selecting implementations")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--autocast", choices=["", "bf16", "fp16"], default="", help="run every call under autocast")
    ap.add_argument("--compile", action="store_true", help="torch.compile the loss and the cross-entropy")
    ap.add_argument("--child", nargs=4, metavar=("CASE", "IMPL", "ROUNDS", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        case, impl, rounds, threads = args.child
        out = child(case, impl, int(rounds), int(threads), args.quick, args.device, args.autocast, args.compile)
        print(json.dumps(out))
        return
    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    cases = QUICK_CASES if args.quick else CASES
    unknown = [c for c in args.cases or [] if c not in cases]
    if unknown:
        ap.error(f"--cases: unknown {unknown}; expected some of {list(cases)}")
    selected = [c for c in cases if not args.cases or c in args.cases]
    impls = [i for i in IMPLS if not args.impls or any(s.lower() in i.lower() for s in args.impls)]
    if cuda:
        regimes = ["cuda"]
    elif args.quick or args.regime == "cold":
        regimes = ["cold"]
    else:
        regimes = ["warm"] if args.regime == "warm" else ["warm", "cold"]
    where = torch.cuda.get_device_name() if cuda else f"{args.threads} CPU thread(s)"
    extra = (f", autocast {args.autocast}" if args.autocast else "") + (", torch.compile" if args.compile else "")
    print(f"# Dice losses, forward + backward, {where}{extra}, torch {torch.__version__}\n")
    print("Each cell: median ms over the rounds; `vs CE`: median of per-round time quotients against")
    print("cross-entropy fwd+bwd on the same logits (BCE-with-logits for binary); peak: rise of one")
    if cuda:
        print("fwd+bwd (gradient included) of torch.cuda.max_memory_allocated.\n")
    else:
        print("fwd+bwd (gradient included) in the RSS of a fresh process with a 64 KiB mmap threshold.\n")
    for case in selected:
        mode, shape = cases[case]
        rounds = args.rounds or (4 if args.quick else {"3d-big": 6, "small": 40, "small-mc": 40}.get(case, 8))
        mib = 1
        for s in shape:
            mib *= s
        mib = mib * 4 / 2**20
        print(
            f"## {case}: logits {'x'.join(map(str, shape))} float32 ({mib:.1f} MiB), {mode}, {rounds} rounds\n"
        )
        head = (
            "| implementation |"
            + "".join(f" {r} ms | {r} vs CE |" for r in regimes)
            + " peak MiB (/ logits) |"
        )
        print(head)
        print("|" + "---|" * (2 + 2 * len(regimes)))
        for impl in impls:
            cells, peak = [], ""
            skipped = False
            for regime in regimes:
                res = _spawn(
                    case, impl, regime, rounds, args.threads, args.quick, args.device, args.autocast, args.compile
                )
                if res.get("skipped"):
                    skipped = True
                    break
                if "error" in res:
                    cells += [f"error: {res['error'][:60]}", ""]
                    continue
                cells += [_fmt(res["ms"]), f"{res['ratio']:.2f}x"]
                if (regime != "warm" or len(regimes) == 1) and "peak" in res:
                    peak = f"{res['peak'] / 2**20:.1f} ({res['peak'] / res['logits_bytes']:.2f}x)"
            if skipped:
                continue
            print(f"| {impl} | " + " | ".join(cells) + f" | {peak} |")
            sys.stdout.flush()
        print()


if __name__ == "__main__":
    main()
