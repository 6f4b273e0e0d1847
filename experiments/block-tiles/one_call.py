"""One call of a family build on B = 256 of pool qk16/v32, for `ncu` to profile:
python experiments/block-tiles/one_call.py '{"WARPS": 4, "ROWS_PER_WARP": 4, ...}'"""

import json
import sys

import torch

from decodekit.impls.family_kernels import kit_kernel
from decodekit.measure.family_check import _outputs
from decodekit.problem.family import SERVING, cases, make_inputs

(case,) = cases(SERVING[1], (256,))
x = make_inputs(case, "cuda")
x.update(_outputs(case, x))
kit_kernel(SERVING[1], json.loads(sys.argv[1]))(**x)
torch.cuda.synchronize()
