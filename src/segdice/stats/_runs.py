"""The CPU counting engine: per-image, per-class counts of two label maps, one element per constant run.

Segmentation maps are made of long constant runs, so the arrays are scanned in cache-sized chunks for the
positions where the (target, prediction) pair changes, and only one element per run is counted, weighted by
the run length. A chunk whose labels change too often for runs to pay off (noise-like maps) falls back to a
bincount of that chunk, so the total is never much worse than one ``np.bincount`` over every voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segdice._checks import SegDiceError

__all__ = ["check_labels", "count_label_maps"]

# Tuned on the benchmark VM; reproduce with `python benchmarks/metrics.py` (counting against np.bincount).
_CHUNK = 1 << 16  # voxels per chunk: two int64 chunks stay within L2/L3
_DENSE_FRACTION = 12  # a chunk with more than chunk/12 runs is counted densely
_PROBE = 4096  # voxels at the head of a chunk looked at first...
_PROBE_FRACTION = 16  # ...and a chunk whose head changes labels more often than 1 in 16 is counted densely


def check_labels(name: str, lo: int, hi: int, num_classes: int) -> None:
    """Raise if the non-ignored labels ``[lo, hi]`` of ``name`` leave ``[0, num_classes)``."""
    if lo < 0 or hi >= num_classes:
        allowed = " or ignore_index" if name == "target" else " (where the target is not ignore_index)"
        raise SegDiceError(
            f"{name}: label values must be in [0, {num_classes - 1}]{allowed} for num_classes={num_classes}; "
            f"got values in [{lo}, {hi}]"
        )


@dataclass
class _Tally:
    """The running counts of one call, flat per (image, class), and what they are counted over."""

    size: int  # voxels per image
    c: int  # number of classes
    ignore: int | None  # target value left out of every count
    g: np.ndarray  # target count G per (image, class), int64 [B * C]
    p: np.ndarray  # prediction count P
    t: np.ndarray  # diagonal TP
    ignored: np.ndarray  # ignored voxels per image, int64 [B]

    @classmethod
    def zeros(cls, n_img: int, size: int, c: int, ignore: int | None) -> _Tally:
        counts = (np.zeros(n_img * c, np.int64) for _ in range(3))
        return cls(size, c, ignore, *counts, np.zeros(n_img, np.int64))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(G, P, TP)`` as ``[B, C]`` and the valid-voxel counts ``[B]``."""
        n_img = self.ignored.size
        valid = np.full(n_img, self.size, np.int64) - self.ignored
        shape = (n_img, self.c)
        return self.g.reshape(shape), self.p.reshape(shape), self.t.reshape(shape), valid


@dataclass
class _Runs:
    """The runs of the sparse chunks, gathered chunk by chunk and counted once at the end."""

    g: list[np.ndarray] = field(default_factory=list)  # target value of each run
    p: list[np.ndarray] = field(default_factory=list)  # prediction value
    length: list[np.ndarray] = field(default_factory=list)
    pos: list[np.ndarray] = field(default_factory=list)  # flat position of the run's first voxel

    def add(
        self, gc: np.ndarray, pc: np.ndarray, start: int, starts: np.ndarray, lengths: np.ndarray
    ) -> None:
        """Add the runs of the chunk at ``start``; ``starts`` are chunk-local (and shifted here, in place)."""
        self.length.append(lengths)
        self.g.append(gc[starts])
        self.p.append(pc[starts])
        starts += start
        self.pos.append(starts)


def count_label_maps(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-image G, P, TP ``[B, C]`` and valid-voxel counts ``[B]`` of two label maps ``[B, S]``."""
    n_img, size = target.shape
    gf, pf = target.reshape(-1), pred.reshape(-1)
    total = gf.size
    tally = _Tally.zeros(n_img, size, num_classes, ignore)
    runs = _Runs()
    # the change mask is padded to whole 8-byte words: non-zero words are found 8 voxels at a time
    buffers = (np.zeros(_CHUNK + 8, np.bool_), np.empty(_CHUNK, np.bool_))
    skip = 0  # chunks left to count densely without probing for runs (after a noise-like chunk)
    backoff = 1
    for start in range(0, total, _CHUNK):
        stop = min(start + _CHUNK, total)
        gc, pc = gf[start:stop], pf[start:stop]
        found = None
        if skip:
            skip -= 1
        else:
            found = _chunk_runs(gc, pc, start, size, buffers)
            # noise-like: runs do not pay off; count densely and probe again later
            skip, backoff = (backoff, min(2 * backoff, 64)) if found is None else (0, 1)
        if found is None:
            _dense_chunk(tally, gc, pc, start)
        else:
            runs.add(gc, pc, start, *found)
    if runs.length:
        _count_runs(tally, runs)
    return tally.result()


def _chunk_runs(
    gc: np.ndarray, pc: np.ndarray, start: int, size: int, buffers: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Chunk-local starts and lengths of the runs of one chunk; None when it is too noise-like for runs.

    ``buffers``: the reused change mask (padded to whole 8-byte words) and a scratch mask.
    """
    k = gc.size
    # a cheap look at the head of the chunk: clearly noise-like chunks skip the full scan
    head = min(k, _PROBE)
    n_head = int(np.count_nonzero((gc[1:head] != gc[: head - 1]) | (pc[1:head] != pc[: head - 1])))
    if n_head * _PROBE_FRACTION > head:
        return None
    changed, scratch = buffers
    n_words = -(-(k - 1) // 8)
    chg, tmp = changed[: k - 1], scratch[: k - 1]
    np.not_equal(gc[1:], gc[:-1], out=chg)
    np.not_equal(pc[1:], pc[:-1], out=tmp)
    chg |= tmp
    changed[k - 1 : n_words * 8] = False
    # an image boundary inside the chunk always starts a new run
    next_image = (start // size + 1) * size
    if next_image < start + k:
        chg[next_image - start - 1 :: size] = True
    words = np.flatnonzero(changed[: n_words * 8].view(np.uint64))
    if words.size * 2 > n_words:
        return None
    flat = np.flatnonzero(changed[: n_words * 8].reshape(-1, 8)[words])
    rows, cols = flat >> 3, flat & 7
    if rows.size * _DENSE_FRACTION > k:
        return None
    starts = np.empty(rows.size + 1, np.int64)
    starts[0] = 0
    np.multiply(words[rows], 8, out=starts[1:])
    starts[1:] += cols
    starts[1:] += 1
    lengths = np.empty_like(starts)
    np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
    lengths[-1] = k - starts[-1]
    return starts, lengths


def _count_runs(tally: _Tally, runs: _Runs) -> None:
    """Validate the run values and add the runs, weighted by their lengths, to the counts."""
    n_img, size, c, ignore, ignored = tally.ignored.size, tally.size, tally.c, tally.ignore, tally.ignored
    rg = np.concatenate(runs.g).astype(np.int64, copy=False)
    rp = np.concatenate(runs.p).astype(np.int64, copy=False)
    rl = np.concatenate(runs.length)
    rb = np.concatenate(runs.pos) // size if n_img > 1 else None
    if ignore is not None:
        drop = rg == ignore
        if drop.any():
            if rb is None:
                ignored[0] += int(rl[drop].sum())
            else:
                ignored += np.bincount(rb[drop], weights=rl[drop], minlength=n_img).astype(np.int64)
            keep = ~drop
            rg, rp, rl = rg[keep], rp[keep], rl[keep]
            rb = None if rb is None else rb[keep]
    if rg.size == 0:
        return
    check_labels("target", int(rg.min()), int(rg.max()), c)
    check_labels("pred", int(rp.min()), int(rp.max()), c)
    # bincount weights are float64: exact, since run lengths and their sums stay far below 2**53
    if n_img * c * c <= max(4 * rg.size, 1 << 16):
        # one weighted bincount of the pair code gives every [image, target, pred] count
        code = rg * c + rp
        if rb is not None:
            code += rb * (c * c)
        m = np.bincount(code, weights=rl, minlength=n_img * c * c).astype(np.int64).reshape(n_img, c, c)
        tally.g += m.sum(2).reshape(-1)
        tally.p += m.sum(1).reshape(-1)
        tally.t += np.diagonal(m, axis1=1, axis2=2).reshape(-1)
    else:  # many images x classes: three marginal bincounts instead of the pair matrix
        row = rb * c if rb is not None else 0
        tally.g += np.bincount(rg + row, weights=rl, minlength=n_img * c).astype(np.int64)
        tally.p += np.bincount(rp + row, weights=rl, minlength=n_img * c).astype(np.int64)
        eq = rg == rp
        t_idx = rg[eq] + (row[eq] if rb is not None else 0)
        tally.t += np.bincount(t_idx, weights=rl[eq], minlength=n_img * c).astype(np.int64)


def _check_chunk_labels(name: str, x: np.ndarray, c: int) -> None:
    """Range check with one pass: viewed as unsigned, negative labels become huge."""
    top = int(x.view(x.dtype.str.replace("i", "u")).max()) if x.dtype.kind == "i" else int(x.max())
    if top >= c:
        check_labels(name, int(x.min()), int(x.max()), c)


def _dense_chunk(tally: _Tally, gc: np.ndarray, pc: np.ndarray, start: int) -> None:
    """Count one chunk voxel by voxel (for noise-like chunks where runs do not pay off)."""
    size, c, ignore, ignored = tally.size, tally.c, tally.ignore, tally.ignored
    first_b = start // size
    local_b = None
    if (start + gc.size - 1) // size != first_b:  # the chunk spans several images
        local_b = (np.arange(start, start + gc.size) // size) - first_b
    if ignore is not None:
        keep = gc != ignore
        n_drop = gc.size - int(np.count_nonzero(keep))
        if n_drop:
            if local_b is None:
                ignored[first_b] += n_drop
            else:
                ignored[first_b:] += np.bincount(local_b[~keep], minlength=ignored.size - first_b)
                local_b = local_b[keep]
            gc, pc = gc[keep], pc[keep]
    if gc.size == 0:
        return
    _check_chunk_labels("target", gc, c)
    _check_chunk_labels("pred", pc, c)
    n_local = 1 if local_b is None else int(local_b[-1]) + 1
    lo, hi = first_b * c, (first_b + n_local) * c
    n_codes = n_local * c * c
    if n_codes <= 4 * gc.size:
        # one bincount of the pair code gives the whole [image, target, pred] matrix of the chunk; the
        # code is built in intp, the dtype np.bincount counts in: a narrower code would only be cast
        # back to intp inside bincount, an extra copy that costs more than it saves
        code = gc.astype(np.intp)
        if local_b is not None:
            np.add(code, local_b * c, out=code, casting="unsafe")
        code *= c
        np.add(code, pc, out=code, casting="unsafe")
        m = np.bincount(code, minlength=n_codes).reshape(n_local, c, c)
        tally.g[lo:hi] += m.sum(2).reshape(-1)
        tally.p[lo:hi] += m.sum(1).reshape(-1)
        tally.t[lo:hi] += np.diagonal(m, axis1=1, axis2=2).reshape(-1)
    else:  # many classes: the pair matrix would dwarf the chunk, count the three marginals instead
        g64 = gc.astype(np.int64)
        if local_b is not None:
            g64 += local_b * c
        p64 = pc.astype(np.int64) + (g64 - gc)  # the same image offset
        tally.g[lo:hi] += np.bincount(g64, minlength=n_local * c)
        tally.p[lo:hi] += np.bincount(p64, minlength=n_local * c)
        tally.t[lo:hi] += np.bincount(g64[gc == pc], minlength=n_local * c)
