"""Writes the supervised-to-bandit CSV files of docs/benchmarks.md (header;
numeric features; last column the integer label), deterministically.

Usage: make_datasets.py OUT_DIR
Needs scikit-learn (the peer environment of ../shared/peers/setup.sh has it).

- iris, wine, breast_cancer (as cancer), digits: scikit-learn's bundled sets,
  the small ones tiled (20, 10 and 5 times: 3,000, 1,780 and 2,845 rows),
  rows shuffled with seed 0;
- synth5, synth10: make_classification problems of 20,000 and 50,000 rows;
- big8, big16, big32: 100,000-row make_classification problems in 8, 16 and
  32 dimensions, large enough that decisions per second measure the
  decisions rather than process start and file reading."""
import os, sys
import numpy as np
from sklearn import datasets

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def write(name, X, y):
    with open(os.path.join(out, name + ".csv"), "w") as f:
        f.write(",".join(f"f{j}" for j in range(X.shape[1])) + ",label\n")
        for xi, yi in zip(X, y):
            f.write(",".join(f"{v:.6g}" for v in xi) + f",{int(yi)}\n")
    print(name, X.shape, int(y.max()) + 1, "labels")


for name, loader, reps in [("iris", datasets.load_iris, 20), ("wine", datasets.load_wine, 10),
                           ("cancer", datasets.load_breast_cancer, 5), ("digits", datasets.load_digits, 1)]:
    X, y = loader(return_X_y=True)
    X, y = np.tile(X, (reps, 1)), np.tile(y, reps)
    order = np.random.RandomState(0).permutation(len(y))
    write(name, X[order], y[order])

for name, n, d, k, informative, seed in [("synth5", 20000, 20, 5, 10, 5), ("synth10", 50000, 16, 10, 8, 10),
                                         ("big8", 100000, 8, 4, 4, 1), ("big16", 100000, 16, 8, 8, 2),
                                         ("big32", 100000, 32, 5, 16, 3)]:
    X, y = datasets.make_classification(n_samples=n, n_features=d, n_informative=informative,
                                        n_redundant=d // 4, n_classes=k, n_clusters_per_class=1,
                                        class_sep=1.0, random_state=seed)
    write(name, X, y)
