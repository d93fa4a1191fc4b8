"""The engine: contracts, evaluator, answer store, run loop and the Hydra entry point.

Kept import-light on purpose: `python -m optimize --help` must stay fast, so nothing
here imports torch, transformers, llama_cpp or litellm at module level.
"""
