"""Static code-generation check: compile every Triton kernel config for sm_80 / sm_90 with no GPU.

Every op module of ``kernels/`` that defines ``@triton.jit`` kernels provides generic
``codegen_specs(...) -> list[KernelSpec]``; :mod:`.specs` hands each the AlexNet launches of its
op and :mod:`.compile` compiles every spec for every requested arch with ``triton.compile`` (no
GPU or driver needed), reading registers, stack and static shared memory (cuobjdump), spills,
MMA instructions, asynchronous copies, load widths and the main loop (SASS, :mod:`.sass`), the
dot operands' shared-memory buffers and wgmma pendings (TTGIR), dynamic shared memory, PTX size
and compile time. :mod:`.gates` derives the issue ceiling and occupancy and checks each row and
each launch-faithful tensor-core row against Triton's tutorial GEMM at the same tile
(``profiling/reference_gemm.py``); :mod:`.report` writes ``codegen.csv`` / ``codegen.md``;
:mod:`.cli` is ``alexnet-fast codegen``. The per-arch constants are data in :mod:`.arch`.

Two kinds of spec (``kernels._common.KernelSpec``). Generic: ``signature`` + ``constexprs``,
pointers 16-byte aligned as Triton's JIT marks torch tensors, integers divisible by 16 only where
named in ``extra["divisible_by_16"]``. Launch-faithful: ``spec.args`` holds the argument values
of a real launch, specialized with Triton's own launcher code as ``JITFunction.run`` would.
``extra["in_use"] = False`` marks a config only the exhaustive CLI sweep compiles;
``extra["archs"]`` restricts a per-arch autotune table's config to its archs."""

from alexnet_fast.profiling.codegen.cli import add_arguments, run

__all__ = ["add_arguments", "run"]
