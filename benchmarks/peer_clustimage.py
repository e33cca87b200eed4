"""clustimage (installed only for the benchmark, in its own venv) on a set of 32x32 images.

    python benchmarks/peer_clustimage.py IMAGES.npy N_CLUSTERS OUT_LABELS.npy

Writes one label per image: clustimage's HOG features with t-SNE and agglomerative clustering,
forced to N_CLUSTERS. Run by benchmarks/accuracy.py and benchmarks/peers.py with the interpreter
given by --peers-python.
"""

import sys

import numpy as np
from clustimage import Clustimage

images = np.load(sys.argv[1])
k = int(sys.argv[2])
cl = Clustimage(method="hog", embedding="tsne", dim=(32, 32), grayscale=True, verbose="error")
results = cl.fit_transform(images.reshape(len(images), -1), min_clust=k, max_clust=k + 1)
np.save(sys.argv[3], np.asarray(results["labels"]))
