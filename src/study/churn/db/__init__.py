"""The relational databases, one module per responsibility; :mod:`study.churn.database` is
their single entry point."""
