"""One call of a family build of a member at one batch size, for `ncu` to profile:
python experiments/solve-tiles/one_call.py NAME B '{"WARPS": 2, "ROWS_PER_WARP": 8, ...}'"""

import json
import sys

import torch

from decodekit.impls.family_kernels import kit_kernel
from decodekit.measure.family_check import _outputs
from decodekit.problem.family import cases, make_inputs, parse

member = parse(sys.argv[1])
(case,) = cases(member, (int(sys.argv[2]),))
x = make_inputs(case, "cuda")
x.update(_outputs(case, x))
kit_kernel(member, json.loads(sys.argv[3]))(**x)
torch.cuda.synchronize()
