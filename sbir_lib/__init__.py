"""sbir_lib: the helper library behind the sbir-course notebooks.

One module per concept (each docstring names the paper equation and the notebook that teaches it):

- ``config``      paths (data root, results, figures), the quick|full profile, devices
- ``io``          atomic writes shared by downloads and result records
- ``download``    dataset registry, verified/resumable downloads (``data_download.py``)
- ``data``        QMUL / Sketchy-mini loaders, synthetic data, triplet sampler, GPU augmentation
- ``models``      Sketch-a-Net, spatial attention, coarse-fine fusion (DSSA)
- ``losses``      triplet hinge, weighted Euclidean, Mahalanobis, HOLEF
- ``metrics``     acc@K, mAP, precision@K
"""

__version__ = "0.1.0"
