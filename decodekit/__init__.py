"""decodekit: write, check, time and profile Gated Delta Net decode kernels from Jupyter.

The path every number takes: workloads -> inputs -> implementation (registry) -> check ->
bench / ncu -> records in data/ -> plots, widgets, notebooks, HTML report.

>>> import decodekit
>>> decodekit.DEFINITION.name
'gdn_decode_qk4_v8_d128_k_last'
"""

from decodekit.problem.spec import DEFINITION, SpecError

__all__ = ["DEFINITION", "SpecError"]
__version__ = "0.1.0"
