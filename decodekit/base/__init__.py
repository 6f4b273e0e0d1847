"""Base layer: the checkout and data paths (``paths``) and subprocess helpers (``proc``).

Imports nothing else of decodekit; every other layer may import it.
"""
