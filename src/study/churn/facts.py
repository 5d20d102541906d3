"""Measured facts about the real KKBOX release (from FACTS.md), used to calibrate and audit the twin.

Only numbers live here; the data card puts them next to the twin's own figures.
"""

from __future__ import annotations

# Kaggle v2 release sizes (FACTS.md section 1).
REAL_ROWS = {
    "train.csv": 992_931,
    "train_v2.csv": 970_960,
    "members_v3.csv": 6_769_473,
    "transactions_v2.csv": 1_431_009,
    "user_logs_v2.csv": 18_396_362,
    "transactions.csv": 21_547_746,
    "user_logs.csv": 392_106_543,
}

REAL_CHURN = {
    "train.csv (February expiries)": 0.0639,
    "train_v2.csv (March expiries)": 0.0899,
    "after the original study's inner joins": 0.0642,
}

# Daily log rows: mean, sd, q25, q50, q75, max (FACTS.md section 1).
REAL_LOG_MARGINALS = {
    "num_25": (6.19, 13.4, 0, 2, 7, 5639),
    "num_50": (1.51, 3.91, 0, 1, 2, 912),
    "num_75": (0.94, 1.92, 0, 0, 1, 508),
    "num_985": (1.08, 3.52, 0, 0, 1, 1561),
    "num_100": (30.3, 42.0, 7, 17, 37, 41107),
    "num_unq": (29.0, 32.2, 8, 18, 38, 4925),
    "total_secs": (7905.0, 10136.0, 1960.0, 4583.0, 9848.0, 9.19e6),
}

REAL_MARGINALS = {
    "share of transactions with payment_method_id 41": 0.49,
    "share of transactions with payment_plan_days 30": 0.85,
    "share of transactions with plan_list_price 149": 0.42,
    "share of transactions with plan_list_price 99": 0.29,
    "mean is_auto_renew (transactions_v2)": 0.785,
    "mean is_cancel (transactions_v2)": 0.0246,
    "members with empty gender": 0.654,
    "members with bd = 0": 0.67,
    "members in city 1": 0.71,
    "log days per user in March": 16.7,
    "labelled users without a member row": 0.115,
    "labelled users without March logs": 0.12,
}

REAL_ODDITIES = {
    "transactions expiring before their date (v1 + v2)": 153_660,
    "transactions expiring on 1970-01-01": 1_776,
    "negative total_secs in user_logs.csv": 61_493,
}

# The original study's validation results (FACTS.md section 4), for the side-by-side table.
ORIGINAL_RESULTS = [
    ("tuned XGBoost (lr .05, depth 9, 200 trees)", 0.9805, 0.0681, 0.8060, 0.9184, 0.7182, 0.8012),
    ("LightGBM default", 0.9800, 0.0687, 0.8043, 0.9205, 0.7142, 0.7999),
    ("tuned LightGBM", 0.9797, 0.0694, 0.8023, 0.9190, 0.7119, 0.7978),
    ("MLP 1 (Keras 20-15-10, Adamax)", 0.9690, 0.0801, 0.7729, 0.9116, 0.6708, 0.7698),
    ("stacking 2 (tuned XGBoost + LightGBM → logistic regression)", 0.9804, 0.0817, 0.8072, 0.9181, 0.7203, 0.8023),
    ("XGBoost default", 0.9704, 0.0830, 0.7566, 0.9359, 0.6349, 0.7589),
    ("random forest", 0.9705, 0.0996, 0.7847, 0.9364, 0.6753, 0.7840),
    ("logistic regression", 0.9268, 0.1255, 0.6606, 0.8860, 0.5267, 0.6679),
    ("bagging", 0.9409, 0.2674, 0.7974, 0.9052, 0.7126, 0.7916),
    ("AdaBoost", 0.9616, 0.6470, 0.6842, 0.8627, 0.5669, 0.6837),
    ("decision tree", 0.8530, 1.309, 0.7115, 0.6960, 0.7278, 0.6915),
    ("Gaussian naive Bayes", 0.8528, 1.327, 0.6314, 0.8155, 0.5151, 0.6301),
]
ORIGINAL_RESULT_COLUMNS = ["model", "ROC AUC", "log loss", "F1", "precision", "recall", "MCC"]
