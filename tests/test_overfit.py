"""The overfitting check of issue 11: the corrected DSSA model can memorise a tiny training set.

16 synthetic sketch/edge-map pairs, the quick profile's optimiser (SGD, momentum 0.9, lr 1e-2, batch 16,
weight decay on weights only), the true match as the positive and the centre crop as the only view
(``augment="none"``): after 80 iterations every training sketch retrieves its own edge map first.

Why these two settings: with the authors' random crops and independent flips, 16 pairs from scratch
plateau at a training loss of ~0.07 and acc@1 ~0.3-0.5 after 100 iterations (measured on this CPU,
seed 0, whatever the optimiser: SGD 1e-2 / 1e-1, Adam 1e-4 / 1e-3, or the embedding BatchNorm option),
while without augmentation the same network reaches acc@1 1.0 within 40 iterations of a plain loop:
what limits fitting is invariance to crops and flips, not the narrow cone the embeddings start in.
With the annotated positives the target is the human "more similar" photo, which need not be the
true match, so acc@1 on the true match is not what that loss optimises.
"""
from __future__ import annotations

import torch

from sbir_lib.data.synthetic import make_synthetic
from sbir_lib.training import triplet as T


def test_dssa_memorises_16_pairs():
    torch.set_num_threads(2)
    ds = make_synthetic(n_train=16, n_test=2, seed=0)
    cfg = T.profile_config("quick", experiment="pretrain", variant="full", iterations=80, positives="true_match", augment="none",
                           checkpoint_every=10 ** 6, seed=0)
    res = T.train(cfg, ds, device=torch.device("cpu"), progress=False)
    acc = T.evaluate(res.model, res.energy, ds.train, 1, torch.device("cpu"))["acc@1"]
    assert acc == 1.0, f"training acc@1 {acc} after {cfg.iterations} iterations; losses {res.history['loss']}"
