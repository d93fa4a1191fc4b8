"""Answer models (what reads the document) and the advisor client (what writes prompts).

Modules import their heavy libraries (torch, transformers, llama_cpp, litellm) lazily.
"""
