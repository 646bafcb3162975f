"""The CPU counting engine: per-image, per-class counts of two label maps, one element per constant run.

Segmentation maps are made of long constant runs, so the arrays are scanned in cache-sized chunks for the
positions where the (target, prediction) pair changes, and only one element per run is counted, weighted by
the run length. A chunk whose labels change too often for runs to pay off (noise-like maps) falls back to a
bincount of that chunk, so the total is never much worse than one ``np.bincount`` over every voxel.
"""

from __future__ import annotations

import numpy as np

from segdice._checks import SegDiceError

__all__ = ["check_labels", "count_label_maps"]

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


def count_label_maps(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-image G, P, TP ``[B, C]`` and valid-voxel counts ``[B]`` of two label maps ``[B, S]``."""
    n_img, size = target.shape
    c = num_classes
    gf, pf = target.reshape(-1), pred.reshape(-1)
    total = gf.size
    # Run starts and lengths of sparse chunks, and per-chunk dense counts, gathered then counted once.
    run_g: list[np.ndarray] = []
    run_p: list[np.ndarray] = []
    run_pos: list[np.ndarray] = []
    run_len: list[np.ndarray] = []
    g_cnt = np.zeros(n_img * c, np.int64)
    p_cnt = np.zeros(n_img * c, np.int64)
    t_cnt = np.zeros(n_img * c, np.int64)
    ignored = np.zeros(n_img, np.int64)
    # the change mask is padded to whole 8-byte words: non-zero words are found 8 voxels at a time
    changed = np.zeros(_CHUNK + 8, np.bool_)
    scratch = np.empty(_CHUNK, np.bool_)
    skip = 0  # chunks left to count densely without probing for runs (after a noise-like chunk)
    backoff = 1
    for start in range(0, total, _CHUNK):
        stop = min(start + _CHUNK, total)
        gc, pc = gf[start:stop], pf[start:stop]
        k = stop - start
        if skip:
            skip -= 1
            _dense_chunk(gc, pc, start, size, c, ignore, g_cnt, p_cnt, t_cnt, ignored)
            continue
        # a cheap look at the head of the chunk: clearly noise-like chunks skip the full scan
        head = min(k, _PROBE)
        n_head = int(np.count_nonzero((gc[1:head] != gc[: head - 1]) | (pc[1:head] != pc[: head - 1])))
        if n_head * _PROBE_FRACTION > head:
            _dense_chunk(gc, pc, start, size, c, ignore, g_cnt, p_cnt, t_cnt, ignored)
            skip, backoff = backoff, min(2 * backoff, 64)
            continue
        n_words = -(-(k - 1) // 8)
        chg, tmp = changed[: k - 1], scratch[: k - 1]
        np.not_equal(gc[1:], gc[:-1], out=chg)
        np.not_equal(pc[1:], pc[:-1], out=tmp)
        chg |= tmp
        changed[k - 1 : n_words * 8] = False
        # an image boundary inside the chunk always starts a new run
        next_image = (start // size + 1) * size
        if next_image < stop:
            chg[next_image - start - 1 :: size] = True
        words = np.flatnonzero(changed[: n_words * 8].view(np.uint64))
        rows = cols = None
        if words.size * 2 <= n_words:
            flat = np.flatnonzero(changed[: n_words * 8].reshape(-1, 8)[words])
            rows, cols = flat >> 3, flat & 7
        if rows is None or rows.size * _DENSE_FRACTION > k:
            # noise-like: runs do not pay off; count densely and probe again later
            _dense_chunk(gc, pc, start, size, c, ignore, g_cnt, p_cnt, t_cnt, ignored)
            skip, backoff = backoff, min(2 * backoff, 64)
            continue
        backoff = 1
        starts = np.empty(rows.size + 1, np.int64)
        starts[0] = 0
        np.multiply(words[rows], 8, out=starts[1:])
        starts[1:] += cols
        starts[1:] += 1
        lengths = np.empty_like(starts)
        np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
        lengths[-1] = k - starts[-1]
        run_len.append(lengths)
        run_g.append(gc[starts])
        run_p.append(pc[starts])
        starts += start
        run_pos.append(starts)
    if run_len:
        _count_runs(run_g, run_p, run_len, run_pos, size, c, ignore, g_cnt, p_cnt, t_cnt, ignored)
    valid = np.full(n_img, size, np.int64) - ignored
    shape = (n_img, c)
    return g_cnt.reshape(shape), p_cnt.reshape(shape), t_cnt.reshape(shape), valid


def _count_runs(
    run_g: list[np.ndarray],
    run_p: list[np.ndarray],
    run_len: list[np.ndarray],
    run_pos: list[np.ndarray],
    size: int,
    c: int,
    ignore: int | None,
    g_cnt: np.ndarray,
    p_cnt: np.ndarray,
    t_cnt: np.ndarray,
    ignored: np.ndarray,
) -> None:
    """Validate the run values and add the runs, weighted by their lengths, to the counts."""
    n_img = ignored.size
    rg = np.concatenate(run_g).astype(np.int64, copy=False)
    rp = np.concatenate(run_p).astype(np.int64, copy=False)
    rl = np.concatenate(run_len)
    rb = np.concatenate(run_pos) // size if n_img > 1 else None
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
        g_cnt += m.sum(2).reshape(-1)
        p_cnt += m.sum(1).reshape(-1)
        t_cnt += np.diagonal(m, axis1=1, axis2=2).reshape(-1)
    else:  # many images x classes: three marginal bincounts instead of the pair matrix
        row = rb * c if rb is not None else 0
        g_cnt += np.bincount(rg + row, weights=rl, minlength=n_img * c).astype(np.int64)
        p_cnt += np.bincount(rp + row, weights=rl, minlength=n_img * c).astype(np.int64)
        eq = rg == rp
        t_idx = rg[eq] + (row[eq] if rb is not None else 0)
        t_cnt += np.bincount(t_idx, weights=rl[eq], minlength=n_img * c).astype(np.int64)


def _check_chunk_labels(name: str, x: np.ndarray, c: int) -> None:
    """Range check with one pass: viewed as unsigned, negative labels become huge."""
    top = int(x.view(x.dtype.str.replace("i", "u")).max()) if x.dtype.kind == "i" else int(x.max())
    if top >= c:
        check_labels(name, int(x.min()), int(x.max()), c)


def _dense_chunk(
    gc: np.ndarray,
    pc: np.ndarray,
    start: int,
    size: int,
    c: int,
    ignore: int | None,
    g_cnt: np.ndarray,
    p_cnt: np.ndarray,
    t_cnt: np.ndarray,
    ignored: np.ndarray,
) -> None:
    """Count one chunk voxel by voxel (for noise-like chunks where runs do not pay off)."""
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
        g_cnt[lo:hi] += m.sum(2).reshape(-1)
        p_cnt[lo:hi] += m.sum(1).reshape(-1)
        t_cnt[lo:hi] += np.diagonal(m, axis1=1, axis2=2).reshape(-1)
    else:  # many classes: the pair matrix would dwarf the chunk, count the three marginals instead
        g64 = gc.astype(np.int64)
        if local_b is not None:
            g64 += local_b * c
        p64 = pc.astype(np.int64) + (g64 - gc)  # the same image offset
        g_cnt[lo:hi] += np.bincount(g64, minlength=n_local * c)
        p_cnt[lo:hi] += np.bincount(p64, minlength=n_local * c)
        t_cnt[lo:hi] += np.bincount(g64[gc == pc], minlength=n_local * c)
