"""Build layer: source to a launchable kernel.

NVRTC through cuda.bindings (``nvrtc``), builds and their digests (``compile``), the cubin and
its disk cache (``cubin``, ``cubin_cache``), SASS (``sass``), CUDA tools (``tools``), and the
launcher over CuPy RawModule (``launch``). Imports ``records``, ``problem``, ``base``.
"""
