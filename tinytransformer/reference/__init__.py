"""PyTorch twins of tinytransformer's models, for tests and benchmarks only.

Importing this package needs the ``reference`` extra (torch). The library
itself never imports it.
"""
