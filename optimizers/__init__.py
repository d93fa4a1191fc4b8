"""Optimizer plugins. Adding one is one module here plus one YAML in conf/optimizer/."""
