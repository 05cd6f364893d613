"""Pixel baseline of builtin:photo-crops (docs/natural_images.md): logistic regression on raw pixels."""
import numpy as np
from sklearn.linear_model import LogisticRegression
from transferlens.data import load_data, ImageSpec
for ntr in (30, 300):
    tr = load_data(f"builtin:photo-crops?split=train&n_per_class={ntr}")
    te = load_data("builtin:photo-crops?split=test&n_per_class=40")
    for size in (8, 16):
        X = tr.images(np.arange(len(tr)), ImageSpec(size)).reshape(len(tr), -1).numpy()
        Y = te.images(np.arange(len(te)), ImageSpec(size)).reshape(len(te), -1).numpy()
        clf = LogisticRegression(max_iter=2000, C=1.0).fit(X, tr.labels)
        print(f"train {ntr}/class, raw pixels {size}x{size}: test acc {clf.score(Y, te.labels):.3f}")
