"""A package run with `python -m modpkg` (emberscope-run python -m ...)."""
