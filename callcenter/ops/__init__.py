"""Running it for real: metrics (`metrics.py`, `collectors.py`), health and readiness
(`services.py`, `http.py`), log output (`logs.py`), and `wiring.py`, which the composition
root calls (docs/operations.md)."""
