"""Shared test set-up: the ``gpu`` marker skips cleanly without a CUDA GPU."""

import os
import tempfile

import pytest
import torch

# the suite's cubins go to a cache of its own, not the user's ~/.cache/decodekit
_CACHE = tempfile.TemporaryDirectory(prefix="decodekit-test-cache-")
os.environ["DECODEKIT_CACHE"] = _CACHE.name

HAS_GPU = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on a GPU machine: make test-gpu)")
    for item in items:
        if "gpu" in item.keywords and not HAS_GPU:
            item.add_marker(skip)
