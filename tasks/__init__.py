"""Data sets: the CSV format and its validation, pair splits, the CER metric, demo data."""
