"""Assignment of predicted to reference objects from a sparse table of pair scores.

Pairs are ``(pred_id, target_id) -> score`` for the pairs that share voxels; nothing here looks at
voxels. The optimal one-to-one assignment is solved per connected block of the candidate graph (a
prediction and a reference are linked when their score passes the threshold): with IoU > 0.5 every
block is a single pair, and a dense ``linear_sum_assignment`` is only run on the few blocks that need it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["match_greedy", "match_optimal", "pair_score"]


def pair_score(criterion: str, inter: int, size_p: int, size_t: int) -> float:
    """IoU, Dice or the share of the target covered (``"overlap"``) for one pair."""
    if criterion == "iou":
        return inter / (size_p + size_t - inter)
    if criterion == "dice":
        return 2 * inter / (size_p + size_t)
    return inter / size_t


def _blocks(edges: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Split bipartite edges (pred, target) into connected blocks (union-find over both sides)."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(x: tuple[str, int]) -> tuple[str, int]:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for p, t in edges:
        a, b = find(("p", p)), find(("t", t))
        if a != b:
            parent[a] = b
    groups: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for p, t in edges:
        groups.setdefault(find(("p", p)), []).append((p, t))
    return list(groups.values())


def match_optimal(
    scores: dict[tuple[int, int], float], candidates: Iterable[tuple[int, int]], *, most_pairs: bool = False
) -> list[tuple[int, int]]:
    """One-to-one assignment of the candidate pairs maximising the total score.

    With ``most_pairs=True`` the number of pairs is maximised first and the total score second (every
    candidate weighs ``block size + score``, more than any set of fewer pairs can reach).
    """
    from scipy.optimize import linear_sum_assignment  # imported on use (SciPy stays out of import segdice)

    chosen: list[tuple[int, int]] = []
    for block in _blocks(sorted(candidates)):
        if len(block) == 1:
            chosen.append(block[0])
            continue
        preds = sorted({p for p, _ in block})
        targets = sorted({t for _, t in block})
        row = {p: i for i, p in enumerate(preds)}
        col = {t: j for j, t in enumerate(targets)}
        bonus = float(len(block) + 1) if most_pairs else 0.0
        weight = np.zeros((len(preds), len(targets)))
        for p, t in block:
            weight[row[p], col[t]] = bonus + scores[(p, t)]
        rows, cols = linear_sum_assignment(weight, maximize=True)
        chosen += [(preds[i], targets[j]) for i, j in zip(rows, cols, strict=True) if weight[i, j] > 0]
    return sorted(chosen, key=lambda pair: (pair[1], pair[0]))


def match_greedy(
    scores: dict[tuple[int, int], float], candidates: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Pairs taken by descending score (ties: lower target id, then lower pred id), each object once."""
    order = sorted(candidates, key=lambda pair: (-scores[pair], pair[1], pair[0]))
    used_p: set[int] = set()
    used_t: set[int] = set()
    chosen = []
    for p, t in order:
        if p in used_p or t in used_t:
            continue
        used_p.add(p)
        used_t.add(t)
        chosen.append((p, t))
    return sorted(chosen, key=lambda pair: (pair[1], pair[0]))
