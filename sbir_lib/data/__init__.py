"""Data: everything between the files on disk and a batch of network inputs, one module per job.

- :mod:`~sbir_lib.data.registry`: what each dataset consists of (files, sizes, SHA-256; manual installs).
- :mod:`~sbir_lib.data.download`: fetching and verifying it (``data_download.py``), per dataset.
- :mod:`~sbir_lib.data.transfer`: moving the bytes (HTTP with resume and deadlines, mirrors, a stoppable
  worker pool) and telling network failures from write failures.
- :mod:`~sbir_lib.data.datasets`: the QMUL-V1 and Sketchy-mini loaders, containers and errors.
- :mod:`~sbir_lib.data.external`: the full Sketchy and TU-Berlin Extension, for users who install them.
- :mod:`~sbir_lib.data.synthetic`: synthetic stand-ins, and the real set or its stand-in.
- :mod:`~sbir_lib.data.paired`: labelled sketch/photo splits for the class-pair recipe (DASE/MEMS).
- :mod:`~sbir_lib.data.edges`: photo -> QMUL-like edge map (pretraining data).
- :mod:`~sbir_lib.data.pack`: the one-file ``.npz`` pack format for offline GPU machines.
- :mod:`~sbir_lib.data.samplers`: which images make up a training batch (index tensors on the device).
- :mod:`~sbir_lib.data.augment`: augmentation, test views and input normalisation (batched on the device).
- :mod:`~sbir_lib.data.sketch_augment`: thicker / thinner strokes and erased parts (offline pretraining).
"""
