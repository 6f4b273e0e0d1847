"""Launch ``kernels/gdn_decode_family.cu`` for one member of the decode family.

:class:`FamilyLauncher` compiles the kernel (or another of the same arguments and defines:
``kernels/family_row_copy.cu``, the member's row-copy floor) once (:func:`decodekit.build.compile.compile_kernel`)
with the member's defines plus tuning ones (``WARPS``, ``ROWS_PER_WARP``, ``LANES_PER_ROW``,
the cache hints), loads that build with ``cupy.RawModule`` per device on its first call and
launches on torch's current stream. Every call checks its arguments against the member first
(one-line :class:`SpecError` s naming the argument, what was expected and what came); a pool's
``state_indices`` go through :func:`decodekit.problem.family.validate_indices` once per tensor
object and version, so a timed loop re-launching the same tensors copies nothing to the host.

>>> from decodekit.problem.family import Member
>>> run = FamilyLauncher(Member(16, 32, layout="pool", l2norm=True), arch="sm_90a")
>>> run.launch_shape(4)
((512,), (128,))
>>> run.build.usage("gdn_decode_family").spills
0
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from decodekit.build.compile import Build, compile_kernel, declared_defines
from decodekit.problem.family import Member, check_intermediate_states, validate_indices
from decodekit.problem.spec import SpecError, resolve_scale

SOURCE = "gdn_decode_family.cu"
ENTRY = "gdn_decode_family"
ROW_COPY = ("family_row_copy.cu", "family_row_copy")  # the floor: same grid, no math
MEMBER_DEFINES = ("QK_HEADS", "V_HEADS", "SEQ_LEN", "POOL", "L2NORM", "STATE_BF16",
                  "INTERMEDIATE", "UPDATE")  # fmt: skip
HEAD_SIZE = 128  # gdn::kDim
ALIGN = 16  # bytes: q, k and the states are read or written with vector accesses
ALIGNED = ("q", "k", "state", "new_state", "intermediate_states")


def member_defines(member: Member) -> dict[str, int]:
    """The defines that make the kernel ``member``'s (a verify call's: ``INTERMEDIATE`` 1
    stores every token's state, ``UPDATE`` 0 skips the final store)."""
    return dict(QK_HEADS=member.qk_heads, V_HEADS=member.v_heads, SEQ_LEN=member.seq_len,
                POOL=int(member.layout == "pool"), L2NORM=int(member.l2norm),
                STATE_BF16=int(member.bf16), INTERMEDIATE=int(member.intermediate),
                UPDATE=int(member.update))  # fmt: skip


def _ptr(t) -> np.uint64:
    return np.uint64(0 if t is None else t.data_ptr())


def _got(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)}, dtype {x.dtype}, device {x.device}"
    return f"{type(x).__name__} {x!r}"[:80]


class FamilyLauncher:
    """``member``'s kernel as a destination-passing callable on CUDA tensors:
    ``run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices,
    intermediate_states)``. A pool is updated in place (``new_state`` is ``state``); a dense
    ``state`` may be None (zeros). ``scale`` None or 0 means ``1/sqrt(128)``.
    ``intermediate_states`` ``[B, T, HV, 128, 128]`` of the state's dtype is an intermediate
    member's buffer and None for every other. The kernel's arguments are these, in this
    order, with ``batch_size`` last (a None pointer is 0)."""

    def __init__(self, member: Member, defines: dict | None = None, arch: str | None = None,
                 *, source: str = SOURCE, entry: str = ENTRY):  # fmt: skip
        if member.head_size != HEAD_SIZE:
            raise SpecError(f"argument 'member': expected head_size 128, got {member.head_size}")
        tuning = dict(defines or {})
        if clash := [n for n in tuning if n in MEMBER_DEFINES]:
            raise ValueError(
                f"argument 'defines': {', '.join(clash)} come from the member ({member.name}); "
                "pass tuning defines only"
            )
        self.member, self.source, self.entry = member, source, entry  # source: what records digest
        self.defines = {**member_defines(member), **tuning}
        self.build: Build = compile_kernel(source, arch, self.defines)
        knobs = {**declared_defines(source), **self.defines}
        self.threads = knobs["WARPS"] * 32
        self.split = HEAD_SIZE // (knobs["WARPS"] * knobs["ROWS_PER_WARP"])
        self.items = knobs["ITEMS"]  # work items a block takes in turn (gdn_family.cuh)
        self._functions: dict[int, object] = {}  # device index -> cupy RawKernel
        self._indices_ok: tuple = ()  # (tensor, its _version, pool size) that passed
        self._streams: dict[tuple[int, int], object] = {}  # (device, cudaStream_t) -> cupy

    def __repr__(self) -> str:
        return f"FamilyLauncher({self.member.name!r}, {self.entry}, {self.build.arch})"

    def launch_shape(self, batch_size: int) -> tuple[tuple[int], tuple[int]]:
        """(grid, block): ceil(B * V_HEADS * SPLIT / ITEMS) blocks of WARPS * 32 threads."""
        items = batch_size * self.member.v_heads * self.split
        return (-(-items // self.items),), (self.threads,)

    def __call__(self, q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state,
                 state_indices=None, intermediate_states=None) -> None:  # fmt: skip
        B = self._validate(q, k, v, state, A_log, a, dt_bias, b, output, new_state,
                           state_indices, intermediate_states)  # fmt: skip
        import cupy

        s = np.float32(resolve_scale(scale))
        args = (*map(_ptr, (q, k, v, state, A_log, a, dt_bias, b)), s, _ptr(output),
                _ptr(new_state), _ptr(state_indices), _ptr(intermediate_states),
                np.int32(B))  # fmt: skip
        dev = q.get_device()
        fn = self._function(dev)
        grid, block = self.launch_shape(B)
        with cupy.cuda.Device(dev), self._stream(dev):
            fn(grid, block, args)

    def _validate(self, q, k, v, state, A_log, a, dt_bias, b, output, new_state, idx,
                  inter) -> int:  # fmt: skip
        m = self.member
        T, H, HV, D = m.seq_len, m.qk_heads, m.v_heads, HEAD_SIZE
        bf, f32 = torch.bfloat16, torch.float32
        if not isinstance(q, torch.Tensor) or q.dim() != 4 or q.shape[0] < 1:
            raise SpecError(f"argument 'q': expected a tensor [B>=1, {T}, {H}, {D}], got {_got(q)}")
        B = int(q.shape[0])
        pool = m.layout == "pool"
        if pool and state is None:
            raise SpecError(f"argument 'state': expected the pool [P, {HV}, {D}, {D}], got None")
        P = state.shape[0] if pool and isinstance(state, torch.Tensor) and state.dim() == 4 else B
        want = dict(q=((B, T, H, D), bf), k=((B, T, H, D), bf), v=((B, T, HV, D), bf),
                    state=((P, HV, D, D), m.dtype), A_log=((HV,), f32), a=((B, T, HV), bf),
                    dt_bias=((HV,), f32), b=((B, T, HV), bf), output=((B, T, HV, D), bf),
                    new_state=((P, HV, D, D), m.dtype))  # fmt: skip
        given = dict(q=q, k=k, v=v, state=state, A_log=A_log, a=a, dt_bias=dt_bias, b=b,
                     output=output, new_state=new_state)  # fmt: skip
        if pool:
            want["state_indices"], given["state_indices"] = ((B,), torch.int32), idx
        elif idx is not None:
            raise SpecError(f"argument 'state_indices': expected None (dense), got {_got(idx)}")
        check_intermediate_states(m, inter, B)  # None unless the member writes them
        if m.intermediate:
            want["intermediate_states"] = ((B, T, HV, D, D), m.dtype)
            given["intermediate_states"] = inter
        for name, x in given.items():
            if x is None and name == "state":
                continue  # dense: zeros
            shape, dtype = want[name]
            if not isinstance(x, torch.Tensor):
                raise SpecError(f"argument {name!r}: expected a torch.Tensor, got {_got(x)}")
            if x.dtype != dtype:
                raise SpecError(f"argument {name!r}: expected dtype {dtype}, got {_got(x)}")
            if tuple(x.shape) != shape:
                raise SpecError(f"argument {name!r}: expected shape {shape}, got {_got(x)}")
            if not x.is_contiguous():
                raise SpecError(
                    f"argument {name!r}: expected a contiguous tensor, got strides {x.stride()}"
                )
        if pool and new_state.data_ptr() != state.data_ptr():
            raise SpecError(
                "argument 'new_state': expected the pool itself (state, updated in place), "
                f"got a tensor at {new_state.data_ptr():#x}, not {state.data_ptr():#x}"
            )
        for name, x in given.items():
            if x is None:
                continue
            if x.device.type != "cuda":
                raise SpecError(f"argument {name!r}: expected a CUDA tensor, got {_got(x)}")
            if x.device != q.device:
                raise SpecError(
                    f"argument {name!r}: expected device {q.device} (q's), got {_got(x)}"
                )
            if name in ALIGNED and x.data_ptr() % ALIGN:
                raise SpecError(
                    f"argument {name!r}: expected a {ALIGN}-byte aligned data_ptr, got "
                    f"{x.data_ptr():#x}"
                )
        if B * HV * self.split > 2**31 - 1:
            raise SpecError(f"argument 'q': batch size {B} needs more blocks than CUDA's grid")
        if pool:
            self._check_indices(idx, P)
        return B

    def _check_indices(self, idx: torch.Tensor, pool_size: int) -> None:
        # validate_indices copies to the host: once per tensor object and version only
        ok = self._indices_ok
        if ok and ok[0] is idx and ok[1] == idx._version and ok[2] == pool_size:
            return
        validate_indices(idx, pool_size)
        self._indices_ok = (idx, idx._version, pool_size)

    def _stream(self, dev: int):
        """Torch's current stream on ``dev`` as a cupy stream, made once per stream."""
        import cupy

        key = (dev, torch.cuda.current_stream(dev).cuda_stream)
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) > 64:  # streams come and go: keep few
                self._streams.clear()
            with warnings.catch_warnings():  # cupy 14 deprecates ExternalStream
                warnings.simplefilter("ignore", DeprecationWarning)
                stream = self._streams[key] = cupy.cuda.ExternalStream(key[1], dev)
        return stream

    def _function(self, dev: int):
        fn = self._functions.get(dev)
        if fn is None:
            import cupy

            b = self.build
            with cupy.cuda.Device(dev):
                module = cupy.RawModule(code=b.code, options=b.rawmodule_options)
                fn = module.get_function(self.entry)
                regs = int(fn.num_regs)  # loads the module on dev
            if regs != b.usage(self.entry).registers:
                raise RuntimeError(
                    f"{self!r}: cupy.RawModule built {regs} registers, the compile-only build "
                    f"{b.usage(self.entry).registers}: not the same cubin (is the GPU {b.arch}?)"
                )
            self._functions[dev] = fn
        return fn
