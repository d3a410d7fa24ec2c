"""Figures (matplotlib, imported lazily so that ``import trajcore`` stays light)."""
