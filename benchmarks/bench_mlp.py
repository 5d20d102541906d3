"""Benchmark: the original study's three Keras MLPs, Keras's ``fit`` against the PyTorch loop that
trains them now (``study.churn.mlp``), in one run on the same data.

Both ways build the same seeded Keras model (Glorot initialisation), hold out the same stratified
10 % for early stopping (patience 10, best weights restored), use Adamax, binary cross-entropy and
batches of 256; the script prints seconds, epochs, ms per batch and the log loss and ROC AUC on a
the protocol's validation users (its split and scaling), per MLP and way, and the ratio of the times.

Usage: python benchmarks/bench_mlp.py [--scale default] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")


def keras_fit(mlp, x, y):
    """The way the MLPs were trained until 2026-12-02: ``model.fit`` with Keras's EarlyStopping."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from study.compute import keras_backend

    keras = keras_backend()
    keras.utils.set_random_seed(mlp.seed)
    x, y = np.asarray(x, dtype="float32"), np.asarray(y, dtype="float32")
    xt, xv, yt, yv = train_test_split(x, y, test_size=mlp.validation_fraction, stratify=y, random_state=mlp.seed)
    mlp.classes_ = np.array([0, 1])
    mlp.model_ = mlp._build(x.shape[1])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=mlp.patience, restore_best_weights=True)
    hist = mlp.model_.fit(
        xt, yt, validation_data=(xv, yv), epochs=mlp.epochs, batch_size=mlp.batch_size, callbacks=[stop], verbose=0
    )
    mlp.n_epochs_ = len(hist.history["loss"])
    return mlp, len(xt)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="default")
    ap.add_argument("--seed", type=int, default=2017)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (one step of ./run_all.sh gets 1)")
    args = ap.parse_args()
    os.environ["STUDY_TORCH_THREADS"] = str(args.threads)
    import math

    import pandas as pd
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from study.churn import data, modelling, zoo
    from study.churn.mlp import original_mlps

    d = modelling.inputs(data.resolve_source(None, scale=args.scale, seed=args.seed))
    y = d.original.is_churn
    split = zoo.split_users(pd.DataFrame({"msno": d.original.msno.to_numpy(), "is_churn": y.to_numpy()})).to_numpy()
    tr, va = split == "train", split == "valid"  # the protocol's split and scaling
    scaler = StandardScaler().fit(d.x[tr])
    xt, xv = scaler.transform(d.x[tr]).astype("float32"), scaler.transform(d.x[va]).astype("float32")
    yt, yv = y[tr].to_numpy(), y[va].to_numpy()
    print(
        f"data: {d.describe()}; {len(xt):,} training users, {len(xv):,} validation users; {args.threads} torch thread(s)"
    )
    total = {"Keras fit": 0.0, "PyTorch loop": 0.0}
    for name, make in original_mlps().items():
        for way in total:
            t0 = time.perf_counter()
            if way == "Keras fit":
                m, rows = keras_fit(make(), xt, yt)
            else:
                m = make().fit(xt, yt)
                rows = len(xt) - math.ceil(len(xt) * m.validation_fraction)
            seconds = time.perf_counter() - t0
            total[way] += seconds
            p = m.predict_proba(xv)[:, 1]
            batches = m.n_epochs_ * math.ceil(rows / m.batch_size)
            print(
                f"{name:<40} {way:<13} {seconds:6.1f} s, {m.n_epochs_:3d} epochs, {1000 * seconds / batches:5.2f} ms per batch; "
                f"held-out log loss {log_loss(yv, p):.4f}, ROC AUC {roc_auc_score(yv, p):.4f}"
            )
    print(
        f"\nthree MLPs: Keras fit {total['Keras fit']:.1f} s, PyTorch loop {total['PyTorch loop']:.1f} s "
        f"({total['Keras fit'] / total['PyTorch loop']:.1f}x)"
    )


if __name__ == "__main__":
    main()
