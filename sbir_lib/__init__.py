"""sbir_lib: the helper library behind the sbir-course notebooks, one folder per pipeline stage.

Read it top to bottom; each folder imports only from the folders above it:

- ``core``         paths and profiles, atomic writes, result records, plotting helpers
- ``data``         dataset registry and verified downloads, QMUL / Sketchy-mini loaders, synthetic data,
                   photo-to-edge maps, the triplet and class-pair samplers, augmentation
- ``metrics``      retrieval metrics (acc@K, mAP, precision@K) and the embedding geometry the DASE/MEMS
                   abstract's claims are about
- ``losses``       energies (Euclidean, weighted, Mahalanobis, HOLEF) and losses (triplet, softmax,
                   CosFace, MEMS)
- ``models``       Sketch-a-Net, spatial attention, coarse-fine fusion (DSSA), SE/DASE backbones, the
                   classical HOG baselines, loading the authors' weights
- ``training``     the training loops: triplet (DSSA), class-pair (DASE/MEMS), Sketch-a-Net pretraining
- ``experiments``  both papers' experiments, the runner, the validation-split tuning, the one CLI
                   (``python -m sbir_lib.experiments``)
- ``report``       the papers' numbers, tables, figures, REPRODUCTION.md (``python -m sbir_lib.report``)
- ``course``       notebook setup (``course.setup``) and the notebook runner (``python -m sbir_lib.course``)

Each module's docstring says which equation it implements and which notebook teaches it.
"""

__version__ = "0.1.0"
