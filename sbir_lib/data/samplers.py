"""Batch samplers: index tensors drawn on the device, so a batch never leaves it.

- :class:`ClassPairSampler` (DASE/MEMS, notebook 07): a batch of distinct classes, one sketch and one
  photo of each.
"""

from __future__ import annotations

import torch

class ClassPairSampler:
    """Draw batches of classes with one sketch and one photo of each, as index tensors on ``device``.

    Classes are visited in a random order reshuffled each epoch (every class once per epoch; a batch
    never repeats a class unless the batch is larger than the number of classes); within a class
    the sketch and the photo are uniform draws. ``sample(b) -> (classes, sketch_idx, photo_idx)``.
    """

    def __init__(self, sketch_labels: torch.Tensor, photo_labels: torch.Tensor, num_classes: int,
                 seed: int = 0, device=None):
        device = torch.device(device or "cpu")
        self.device = device
        self.num_classes = int(num_classes)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.sk_table, self.sk_count = self._table(sketch_labels, "sketches")
        self.ph_table, self.ph_count = self._table(photo_labels, "photos")
        self._order = torch.empty(0, dtype=torch.long, device=device)

    def _table(self, labels: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        labels = labels.to(torch.long).cpu()
        count = torch.bincount(labels, minlength=self.num_classes)
        if (count == 0).any():
            empty = (count == 0).nonzero().squeeze(1).tolist()[:5]
            raise ValueError(f"classes {empty} have no training {what}")
        order = torch.argsort(labels, stable=True)
        starts = torch.cumsum(count, 0) - count
        table = torch.zeros(self.num_classes, int(count.max()), dtype=torch.long)
        pos = torch.arange(len(labels)) - starts[labels[order]]
        table[labels[order], pos] = order
        return table.to(self.device), count.to(self.device)

    def _classes(self, b: int) -> torch.Tensor:
        while self._order.numel() < b:
            perm = torch.randperm(self.num_classes, generator=self.gen, device=self.device)
            self._order = torch.cat([self._order, perm])
        out, self._order = self._order[:b], self._order[b:]
        return out

    def sample(self, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self._classes(b)
        u = torch.rand(2, b, generator=self.gen, device=self.device)
        si = self.sk_table[c, (u[0] * self.sk_count[c]).long().clamp_max(self.sk_count[c] - 1)]
        pi = self.ph_table[c, (u[1] * self.ph_count[c]).long().clamp_max(self.ph_count[c] - 1)]
        return c, si, pi
