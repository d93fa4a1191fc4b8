"""Data sets: the CSV format and its validation, pair splits, the CER metric (the bundled demo
data lives in tasks/demo/; its generator is scripts/demo_data/)."""
