"""The original study's model families and its protocol (FACTS.md sections 3-4).

Protocol: the original recipe's matrix, a stratified 70 / 24 / 6 % split by user (seed 40),
StandardScaler fitted on train, stratified k-fold cross-validation on train (``folds``: 3 at the
quick and default scales), then one fit on train scored on the validation split. Every estimator is
seeded; fit times are measured per model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import AdaBoostClassifier, BaggingClassifier, RandomForestClassifier, StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from study.churn import evaluation
from study.churn.models import split_users
from study.compute import cpu_threads

SEED = 40
# the original study's tuned XGBoost (its grid search's best): the zoo's "tuned XGBoost", the
# champion's base and the original-format scoring model
TUNED_XGB = {"learning_rate": 0.05, "max_depth": 9, "n_estimators": 200}
TUNED_XGB_NAME = "tuned XGBoost (lr .05, depth 9, 200 trees)"  # the original study's best model


def xgb(**kw):
    """An XGBoost classifier with the project's fixed settings (seeded, hist trees; its results do not
    depend on the thread count, measured)."""
    from xgboost import XGBClassifier

    return XGBClassifier(n_jobs=cpu_threads(), random_state=SEED, eval_metric="logloss", tree_method="hist", **kw)


def _lgbm(**kw):
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_jobs=cpu_threads(), random_state=SEED, verbose=-1, **kw)


def families() -> dict:
    """name → factory of an unfitted estimator (the original study's line-up)."""
    from study.churn.mlp import original_mlps

    return {
        "logistic regression": lambda: LogisticRegression(max_iter=2000, random_state=SEED),
        "Gaussian naive Bayes": lambda: GaussianNB(),
        "decision tree": lambda: DecisionTreeClassifier(random_state=SEED),
        "random forest": lambda: RandomForestClassifier(n_estimators=200, n_jobs=cpu_threads(), random_state=SEED),
        "bagging": lambda: BaggingClassifier(n_estimators=20, n_jobs=cpu_threads(), random_state=SEED),
        "AdaBoost": lambda: AdaBoostClassifier(random_state=SEED),
        "LightGBM default": lambda: _lgbm(),
        "XGBoost default": lambda: xgb(),
        TUNED_XGB_NAME: lambda: xgb(**TUNED_XGB),
        "stacking 1 (XGBoost + LightGBM → logistic regression)": lambda: StackingClassifier(
            [("xgb", xgb()), ("lgbm", _lgbm())], final_estimator=LogisticRegression(max_iter=1000), cv=3, n_jobs=1
        ),
        "stacking 2 (tuned XGBoost + LightGBM → logistic regression)": lambda: StackingClassifier(
            [("xgb", xgb(**TUNED_XGB)), ("lgbm", _lgbm())],
            final_estimator=LogisticRegression(max_iter=1000),
            cv=3,
            n_jobs=1,
        ),
        "stacking 3 (tuned XGBoost + LightGBM → LightGBM)": lambda: StackingClassifier(
            [("xgb", xgb(**TUNED_XGB)), ("lgbm", _lgbm())],
            final_estimator=_lgbm(n_estimators=100, num_leaves=7),
            cv=3,
            n_jobs=1,
        ),
        **original_mlps(),
    }


def cross_validated(name: str) -> bool:
    """Stackings cross-fit internally and MLPs hold out 10 % for early stopping: they get the
    validation score only (an outer CV would multiply the longest fits of the study by the folds)."""
    return not (name.startswith("stacking") or name.startswith("MLP"))


@dataclass
class ProtocolResult:
    table: pd.DataFrame
    predictions: dict = field(default_factory=dict)  # name → validation probabilities
    y_valid: np.ndarray | None = None
    columns: list = field(default_factory=list)
    scaler: StandardScaler | None = None
    fitted: dict = field(default_factory=dict)
    split: np.ndarray | None = None  # 'train' / 'valid' / 'test' per row

    def reference(self, name: str = TUNED_XGB_NAME) -> Reference:
        """A fitted model of the protocol and its fit time, for the trials that would refit it."""
        return Reference(self.fitted[name], float(self.table.set_index("model").loc[name, "fit time s"]))


@dataclass
class Reference:
    model: object
    fit_seconds: float


def run_protocol(
    x: pd.DataFrame, y: pd.Series, users: pd.Series, names=None, folds: int = 5, seed: int = SEED, progress=None
) -> ProtocolResult:
    """Cross-validate each family on the train split, fit it on train, score the validation split."""
    split = split_users(pd.DataFrame({"msno": users.to_numpy(), "is_churn": y.to_numpy()}), seed=seed).to_numpy()
    tr, va = split == "train", split == "valid"
    scaler = StandardScaler().fit(x[tr])
    xs = pd.DataFrame(scaler.transform(x), columns=x.columns, index=x.index)
    xt, yt, xv, yv = xs[tr].to_numpy(), y[tr].to_numpy(), xs[va].to_numpy(), y[va].to_numpy()
    zoo = families()
    rows, preds, fitted = [], {}, {}
    for name in names or list(zoo):
        if progress:
            progress(name)
        cv_ll, cv_auc = [], []
        if name.startswith("MLP"):
            from study.churn.mlp import keras_backend

            keras_backend()  # import Keras and PyTorch outside the timed fit
        if folds > 1 and cross_validated(name):
            for a, b in StratifiedKFold(folds, shuffle=True, random_state=seed).split(xt, yt):
                p = zoo[name]().fit(xt[a], yt[a]).predict_proba(xt[b])[:, 1]
                s = evaluation.scores(yt[b], p)
                cv_ll.append(s["log loss"])
                cv_auc.append(s["ROC AUC"])
        t0 = time.perf_counter()
        model = zoo[name]().fit(xt, yt)
        fit_s = time.perf_counter() - t0
        p = model.predict_proba(xv)[:, 1]
        preds[name], fitted[name] = p, model
        row = {"model": name, **evaluation.scores(yv, p), "fit time s": fit_s}
        if cv_ll:
            row["CV log loss"] = f"{np.mean(cv_ll):.4f} ± {np.std(cv_ll):.4f}"
            row["CV ROC AUC"] = f"{np.mean(cv_auc):.4f} ± {np.std(cv_auc):.4f}"
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("log loss").reset_index(drop=True)
    return ProtocolResult(table, preds, yv, list(x.columns), scaler, fitted, split)


def pit_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time features as a model matrix: identifiers and label dropped, gender one-hot."""
    x = df.drop(columns=["msno", "month", "is_churn"])
    g = x.pop("gender")
    for v in ("male", "female", "unknown"):
        x[f"gender_{v}"] = (g == v).astype("int8")
    return x


def ladder(pit: pd.DataFrame, test_month: str, seed: int = SEED) -> pd.DataFrame:
    """Random split vs temporal split on the point-in-time set, same model (tuned XGBoost).

    Random: rows of every month split by user (70/24/6), scored on the validation users' rows of
    ``test_month``. Temporal: fitted on the earlier months, scored on every row of ``test_month``
    (as the winning solution validated on a later month)."""
    return _ladder(pit_matrix(pit), pit.is_churn, pit, pit.month.to_numpy(), test_month, seed)


def original_ladder(february: pd.DataFrame, march: pd.DataFrame, seed: int = SEED) -> pd.DataFrame:
    """The same two protocols on the original recipe: March (v2 files) and its February analogue
    (:func:`study.churn.features.original_recipe_february`)."""
    from study.churn.features import original_model_matrix

    both = pd.concat([february.assign(month="2017-02"), march.assign(month="2017-03")], ignore_index=True)
    x = original_model_matrix(both.drop(columns="month"))
    return _ladder(x, both.is_churn, both, both.month.to_numpy(), "2017-03", seed)


def _ladder(x, y, frame, month, test_month, seed) -> pd.DataFrame:
    split = split_users(frame[["msno", "is_churn"]], seed=seed).to_numpy()
    protocols = {
        "random split by user": (split == "train", (split == "valid") & (month == test_month)),
        f"temporal: earlier months → {test_month}": (month < test_month, month == test_month),
    }
    rows = []
    for name, (tr, te) in protocols.items():
        t0 = time.perf_counter()
        model = families()[TUNED_XGB_NAME]().fit(x[tr], y[tr])
        p = model.predict_proba(x[te])[:, 1]
        rows.append(
            {
                "protocol": name,
                "train rows": int(tr.sum()),
                "test rows": int(te.sum()),
                **evaluation.scores(y[te], p),
                "fit time s": time.perf_counter() - t0,
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Tuning, feature selection and class imbalance (the original study's trials).
ORIGINAL_GRID = {"learning_rate": [0.1, 0.05], "n_estimators": [100, 150, 200], "max_depth": [6, 9, 12]}
# Without a row subsample (0.8 vs 1.0) as a sixth axis: on the default twin the search over these 36
# candidates picks what the 72 picked (lr .02, depth 6, min_child_weight 1, 400 trees; CV log loss
# 0.06116) in 74 s instead of 175 s (one thread each, 2026-12-02).
WIDER_GRID = {
    "learning_rate": [0.1, 0.05, 0.02],
    "n_estimators": [200, 400],
    "max_depth": [4, 6, 9],
    "min_child_weight": [1, 5],
}


def halving_search(x, y, grid: dict, seed: int = SEED, cv: int = 3) -> tuple[dict, pd.DataFrame]:
    """HalvingGridSearchCV on XGBoost (neg log loss); returns the best parameters and the ranking."""
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    # refit=False: the study reads the ranking and the best parameters, not a model refitted on all rows
    search = HalvingGridSearchCV(
        xgb(), grid, scoring="neg_log_loss", cv=cv, factor=3, random_state=seed, n_jobs=1, refit=False
    )
    search.fit(x, y)
    res = pd.DataFrame(search.cv_results_)
    res = res[res.iter == res.iter.max()].sort_values("rank_test_score")
    table = pd.DataFrame(
        {"parameters": res.params.astype(str), "CV log loss": -res.mean_test_score, "resources (rows)": res.n_resources}
    ).reset_index(drop=True)
    return search.best_params_, table


def top_k_curve(xt, yt, xv, yv, columns, ks=(5, 10, 20, 30, 50), params=None, reference=None) -> pd.DataFrame:
    """Validation log loss and AUC of tuned XGBoost on its top-k features (SelectFromModel).

    ``reference``: the protocol's tuned XGBoost already fitted on these matrices
    (:meth:`ProtocolResult.reference`); it ranks the features and is the all-features row, instead
    of fitting the same model twice more (identical: seeded, thread count without effect)."""
    from sklearn.feature_selection import SelectFromModel

    params = params or TUNED_XGB
    first = reference.model if reference is not None else xgb(**params).fit(xt, yt)
    rows = []
    for k in [k for k in ks if k < len(columns)] + [len(columns)]:
        keep = SelectFromModel(first, prefit=True, max_features=k, threshold=-np.inf).get_support()
        if reference is not None and keep.all():
            p = reference.model.predict_proba(xv)[:, 1]
        else:
            p = xgb(**params).fit(xt[:, keep], yt).predict_proba(xv[:, keep])[:, 1]
        s = evaluation.scores(yv, p)
        rows.append({"top k features": k, "log loss": s["log loss"], "ROC AUC": s["ROC AUC"]})
    return pd.DataFrame(rows)


def imbalance_trials(xt, yt, xv, yv, seed: int = SEED, reference=None) -> pd.DataFrame:
    """Resampling and cost-sensitive strategies with imbalanced-learn, all scored on the untouched
    validation split with tuned XGBoost (or their own ensemble).

    ``reference``: the protocol's tuned XGBoost already fitted on these matrices; it is the
    "none" and "scale_pos_weight 1" rows (the same model) with the protocol's fit time."""
    from imblearn.ensemble import BalancedRandomForestClassifier, RUSBoostClassifier
    from imblearn.over_sampling import ADASYN, SMOTE, RandomOverSampler
    from imblearn.pipeline import make_pipeline
    from imblearn.under_sampling import NearMiss, RandomUnderSampler, TomekLinks

    tuned = lambda **kw: xgb(**TUNED_XGB, **kw)  # noqa: E731
    trials = {
        "none (tuned XGBoost)": tuned(),
        "NearMiss-3": make_pipeline(NearMiss(version=3), tuned()),
        "SMOTE": make_pipeline(SMOTE(random_state=seed), tuned()),
        "ADASYN": make_pipeline(ADASYN(random_state=seed), tuned()),
        "Tomek links": make_pipeline(TomekLinks(), tuned()),
        "random under-sampling": make_pipeline(RandomUnderSampler(random_state=seed), tuned()),
        "random over-sampling": make_pipeline(RandomOverSampler(random_state=seed), tuned()),
        "balanced random forest": BalancedRandomForestClassifier(
            n_estimators=200,
            random_state=seed,
            n_jobs=cpu_threads(),
            sampling_strategy="all",
            replacement=True,
            bootstrap=False,
        ),
        "RUSBoost": RUSBoostClassifier(random_state=seed),
    }
    for over in (0.1, 0.2):
        for under in (0.5, 0.8):
            trials[f"SMOTE {over} + under {under}"] = make_pipeline(
                SMOTE(sampling_strategy=over, random_state=seed),
                RandomUnderSampler(sampling_strategy=under, random_state=seed),
                tuned(),
            )
    for w in (1, 3, 5, 9, 13, 17):
        trials[f"scale_pos_weight {w}"] = tuned(scale_pos_weight=w)
    rows = []
    for name, model in trials.items():
        if reference is not None and name in ("none (tuned XGBoost)", "scale_pos_weight 1"):
            p = reference.model.predict_proba(xv)[:, 1]
            rows.append({"strategy": name, **evaluation.scores(yv, p), "fit time s": reference.fit_seconds})
            continue
        t0 = time.perf_counter()
        try:
            p = model.fit(xt, yt).predict_proba(xv)[:, 1]
        except ValueError as exc:  # e.g. a sampler that cannot reach its ratio on a tiny minority
            rows.append({"strategy": name, "error": str(exc).splitlines()[0]})
            continue
        rows.append({"strategy": name, **evaluation.scores(yv, p), "fit time s": time.perf_counter() - t0})
    return pd.DataFrame(rows)
