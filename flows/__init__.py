"""Prefect flows: the CT step (ct.py), retraining, backtesting."""
