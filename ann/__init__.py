"""ann: a NumPy neural-network lab."""
