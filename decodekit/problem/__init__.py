"""Problem layer: what is computed, independent of any GPU.

The contest definition and its family (``spec``, ``family``), the fp64 oracle and torch
references (``reference``), workloads and their seeded inputs (``workloads``, ``trace``) and
the calling contracts (``contracts``). Imports only ``base``.
"""
