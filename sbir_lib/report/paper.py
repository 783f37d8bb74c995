"""The DSSA paper's published numbers (Song et al., ICCV 2017), in one place.

Source: ``../shared/reference/dssa_iccv17_presentation.txt`` (Tables 1-5 of the paper, acc@1 and
acc@10 in percent, test sets of 115 / 97 / 168 queries for QMUL-Shoe / QMUL-Chair / Handbag).
Every table in ``notebooks/05_reproducing_the_tables.ipynb`` and ``REPRODUCTION.md`` reads from here.

Row keys are the variant names of :mod:`sbir_lib.models.dssa` (``VARIANTS``) where a deep model is
meant, and the method names of :mod:`sbir_lib.models.classical` for the classical rows of Table 1.
The DASE/MEMS paper's numeric tables are not in our references, so nothing of it is here.
"""
from __future__ import annotations

DATASETS = ("shoes", "chairs", "handbags")
DATASET_TITLES = {"shoes": "QMUL-Shoe", "chairs": "QMUL-Chair", "handbags": "Handbag"}

# Table 1: comparative results against baselines, (acc@1, acc@10) in percent.
# ISN Deep + rankSVM (a pretrained sketch-classification network) has no reproduction here.
TABLE1 = {
    "shoes": {
        "hog_bow_ranksvm": (17.39, 67.83),
        "dense_hog_ranksvm": (24.35, 65.22),
        "isn_deep_ranksvm": (20.00, 62.61),
        "base": (52.17, 92.17),
        "full": (61.74, 94.78),
    },
    "chairs": {
        "hog_bow_ranksvm": (28.87, 67.01),
        "dense_hog_ranksvm": (52.57, 93.81),
        "isn_deep_ranksvm": (47.42, 82.47),
        "base": (72.16, 98.96),
        "full": (81.44, 95.88),
    },
    "handbags": {
        "hog_bow_ranksvm": (2.38, 10.71),
        "dense_hog_ranksvm": (15.47, 40.48),
        "isn_deep_ranksvm": (9.52, 44.05),
        "base": (39.88, 82.14),
        "full": (49.40, 82.74),
    },
}
TABLE1_LABELS = {
    "hog_bow_ranksvm": "HOG-BoW + rankSVM",
    "dense_hog_ranksvm": "Dense-HOG + rankSVM",
    "isn_deep_ranksvm": "ISN Deep + rankSVM",
    "base": "Triplet SN",
    "full": "Our model (DSSA)",
}

# Table 2: contributions of the components, (acc@1, acc@10). Each row's acc@1 is one cell of Table 3, which
# fixes the network it trains (tests/test_tables.py derives the keys from it): "Base" is Table 3's Base
# *without* attention (52.17 / 72.16 / 39.88), "Base + CFF" and "Full" are *with* attention (58.26 / 79.38 /
# 48.21 and 61.74 / 81.44 / 49.40), and "Base + HOLEF" is *without* attention (56.52 / 74.23; on Handbag
# both of Table 3's HOLEF cells are 40.48), hence ``base+holef``.
TABLE2 = {
    "shoes": {"base": (52.17, 92.17), "base+att+cff": (58.26, 93.04),
              "base+holef": (56.52, 88.70), "full": (61.74, 94.78)},
    "chairs": {"base": (72.16, 98.96), "base+att+cff": (79.38, 95.88),
               "base+holef": (74.23, 97.94), "full": (81.44, 95.88)},
    "handbags": {"base": (39.88, 82.14), "base+att+cff": (48.21, 83.33),
                 "base+holef": (40.48, 83.93), "full": (49.40, 82.74)},
}
TABLE2_LABELS = {"base": "Base", "base+att+cff": "Base + CFF",
                 "base+holef": "Base + HOLEF", "full": "Full: Base + CFF + HOLEF"}

# Table 3: effectiveness of attention, acc@1: row -> (with attention, without attention).
TABLE3 = {
    "shoes": {"base": (54.78, 52.17), "cff": (58.26, 57.39), "holef": (57.39, 56.52),
              "full": (61.74, 58.26)},
    "chairs": {"base": (74.23, 72.16), "cff": (79.38, 75.25), "holef": (75.26, 74.23),
               "full": (81.44, 77.32)},
    "handbags": {"base": (41.07, 39.88), "cff": (48.21, 47.02), "holef": (40.48, 40.48),
                 "full": (49.40, 48.21)},
}
TABLE3_LABELS = {"base": "Base", "cff": "Base + CFF", "holef": "Base + HOLEF", "full": "Our model"}

# Table 4: effect of the attention shortcut, acc@1: row -> (with shortcut, without shortcut).
TABLE4 = {
    "shoes": {"att": (54.78, 15.65), "cff": (58.26, 26.96), "full": (61.74, 27.83)},
    "chairs": {"att": (74.23, 39.18), "cff": (79.38, 48.45), "full": (81.44, 49.48)},
    "handbags": {"att": (41.07, 17.26), "cff": (48.21, 24.40), "full": (49.40, 23.81)},
}
TABLE4_LABELS = {"att": "Base + attention", "cff": "Base + CFF", "full": "Our model"}

# Table 5: comparison of losses on the attention + CFF model, (acc@1, acc@10).
TABLE5 = {
    "shoes": {"euclidean": (58.26, 93.04), "weighted_euclidean": (58.26, 93.04),
              "mahalanobis": (52.17, 89.57), "holef": (61.74, 94.78)},
    "chairs": {"euclidean": (79.38, 95.88), "weighted_euclidean": (79.38, 95.88),
               "mahalanobis": (78.35, 95.88), "holef": (81.44, 95.88)},
    "handbags": {"euclidean": (48.21, 83.33), "weighted_euclidean": (48.81, 82.14),
                 "mahalanobis": (44.64, 79.76), "holef": (49.40, 82.74)},
}
TABLE5_LABELS = {"euclidean": "Triplet loss with Euclidean",
                 "weighted_euclidean": "Triplet loss with Weighted Euclidean",
                 "mahalanobis": "Triplet loss with Mahalanobis", "holef": "Our HOLEF"}

TABLES = {"table1": TABLE1, "table2": TABLE2, "table3": TABLE3, "table4": TABLE4, "table5": TABLE5}
