"""The synthetic Russian document generator behind tasks/demo/ (``scripts/make_demo_data.py``)."""
