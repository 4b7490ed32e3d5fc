"""Streaming quantile estimate in constant memory (the P² algorithm, Jain & Chlamtac 1985).

Five markers track the minimum, the ``p/2``, ``p`` and ``(1+p)/2`` quantiles and the
maximum; each new value moves them with a piecewise-parabolic update. Memory does not
grow with the number of values, which is what an on-device, per-reading detector needs.

Examples
--------
>>> import numpy as np
>>> est = P2Quantile(0.9)
>>> for x in np.random.default_rng(0).normal(size=5000):
...     est.update(float(x))
>>> abs(est.value() - 1.2816) < 0.1
True
"""

from __future__ import annotations

import math


class P2Quantile:
    """Running estimate of the ``p`` quantile of a stream, O(1) memory and time per value.

    Parameters
    ----------
    p : quantile to track, strictly between 0 and 1.
    """

    __slots__ = ("count", "desired", "heights", "increments", "p", "positions")

    def __init__(self, p: float) -> None:
        if not 0 < p < 1:
            raise ValueError(f"quantile p must lie strictly between 0 and 1, got {p}")
        self.p = p
        self.count = 0
        self.heights: list[float] = []
        self.positions = [1.0, 2.0, 3.0, 4.0, 5.0]
        self.desired = [1.0, 1 + 2 * p, 1 + 4 * p, 3 + 2 * p, 5.0]
        self.increments = [0.0, p / 2, p, (1 + p) / 2, 1.0]

    def update(self, x: float) -> None:
        """Add one value."""
        self.count += 1
        q = self.heights
        if self.count <= 5:
            q.append(x)
            q.sort()
            return
        if x < q[0]:
            q[0] = x
            cell = 0
        elif x >= q[4]:
            q[4] = x
            cell = 3
        else:
            cell = next(i for i in range(4) if q[i] <= x < q[i + 1])
        n = self.positions
        for i in range(cell + 1, 5):
            n[i] += 1
        for i in range(5):
            self.desired[i] += self.increments[i]
        for i in (1, 2, 3):
            d = self.desired[i] - n[i]
            if (d >= 1 and n[i + 1] - n[i] > 1) or (d <= -1 and n[i - 1] - n[i] < -1):
                step = 1 if d > 0 else -1
                candidate = self._parabolic(i, step)
                if not q[i - 1] < candidate < q[i + 1]:
                    candidate = q[i] + step * (q[i + step] - q[i]) / (n[i + step] - n[i])
                q[i] = candidate
                n[i] += step

    def _parabolic(self, i: int, d: int) -> float:
        q, n = self.heights, self.positions
        return q[i] + d / (n[i + 1] - n[i - 1]) * (
            (n[i] - n[i - 1] + d) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
            + (n[i + 1] - n[i] - d) * (q[i] - q[i - 1]) / (n[i] - n[i - 1])
        )

    def value(self) -> float:
        """Current estimate (exact while fewer than six values were seen; NaN if none)."""
        if self.count == 0:
            return math.nan
        if self.count <= 5:
            ordered = self.heights
            rank = self.p * (len(ordered) - 1)
            low = math.floor(rank)
            high = min(low + 1, len(ordered) - 1)
            return ordered[low] + (rank - low) * (ordered[high] - ordered[low])
        return self.heights[2]
