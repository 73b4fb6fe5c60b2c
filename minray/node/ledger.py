"""The node's GPUs, memory and custom resources: who holds how much, and which GPUs.

CPUs are counted apart (`scheduler.CpuLedger`), since every task takes them; this ledger is
touched only by tasks and actors that ask for more. GPUs are handed out by index, so a task
knows which ones are its own (CUDA_VISIBLE_DEVICES, `get_gpu_ids()`): a whole number of GPUs
takes that many free devices, a fraction shares one device with other fractions, as in Ray.
"""

from __future__ import annotations

from minray.named_tuple import Record
from minray.resources import GPU


class Holding(Record):
    """What one task or actor holds."""

    amounts: dict[str, float]
    gpu_ids: list[int]


class ResourceLedger:
    def __init__(self, totals: dict[str, float]):
        self.totals = totals
        self.used = dict.fromkeys(totals, 0.0)
        self._gpu_free = [1.0] * int(totals.get(GPU, 0))  # the unused share of each device

    def available(self) -> dict[str, float]:
        return {name: self.totals[name] - self.used[name] for name in self.totals}

    def fits(self, asked: dict[str, float]) -> bool:
        if any(self.used.get(k, 0.0) + v > self.totals.get(k, 0.0) + 1e-9
               for k, v in asked.items()):
            return False
        return self._pick_gpus(asked.get(GPU, 0.0)) is not None

    def take(self, asked: dict[str, float]) -> Holding:
        """Hold `asked` (which must fit)."""
        ids = self._pick_gpus(asked.get(GPU, 0.0)) or []
        share = asked.get(GPU, 0.0) / len(ids) if ids else 0.0
        for i in ids:
            self._gpu_free[i] -= share
        for name, amount in asked.items():
            self.used[name] = self.used.get(name, 0.0) + amount
        return Holding(asked, ids)

    def give_back(self, holding: Holding) -> None:
        share = holding.amounts.get(GPU, 0.0) / len(holding.gpu_ids) if holding.gpu_ids else 0
        for i in holding.gpu_ids:
            self._gpu_free[i] += share
        for name, amount in holding.amounts.items():
            self.used[name] -= amount

    def _pick_gpus(self, amount: float) -> list[int] | None:
        """The devices a GPU demand would get; None if it cannot be met now."""
        if amount <= 0:
            return []
        if amount < 1:
            for i, free in enumerate(self._gpu_free):
                if free + 1e-9 >= amount:
                    return [i]
            return None
        whole = [i for i, free in enumerate(self._gpu_free) if free >= 1 - 1e-9]
        return whole[:int(amount)] if len(whole) >= amount else None
