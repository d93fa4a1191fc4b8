"""Set-up, model fetching, demo-data generation and benchmarks (run as ``python scripts/NAME.py``).

A package only so that scripts and tests share its helper modules (``scripts.default_models``,
``scripts.fake_openai_server``, ``scripts.demo_data``); nothing under the installed packages
imports it.
"""
