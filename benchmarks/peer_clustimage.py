"""clustimage (installed only for the benchmark, in its own venv) on trainX + valX.

    python benchmarks/peer_clustimage.py TRAINX VALX N_CLUSTERS OUT_LABELS.npy

Writes the labels of the valX rows. clustimage's HOG features with agglomerative clustering,
forced to N_CLUSTERS. Run by benchmarks/accuracy.py with the interpreter given by --peers-python.
"""

import sys

import numpy as np
from clustimage import Clustimage

train, val = np.load(sys.argv[1]), np.load(sys.argv[2])
k = int(sys.argv[3])
X = np.concatenate([train, val]).reshape(len(train) + len(val), -1)
cl = Clustimage(method="hog", embedding="tsne", dim=(32, 32), grayscale=True, verbose="error")
results = cl.fit_transform(X, min_clust=k, max_clust=k + 1)
np.save(sys.argv[4], np.asarray(results["labels"])[-len(val) :])
