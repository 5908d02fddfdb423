"""Pure text functions over what Triton and cuobjdump produce: SASS (MMA and spill counts,
global-load widths, the main loop and its instruction mix), TTGIR (the dot operands'
shared-memory buffers, wgmma pendings) and cuobjdump's resource lines. No Triton, no files:
each takes a string, so the tests feed them recorded listings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

# One SASS instruction line: "/*0a70*/  @!P0 STL.64 [R1+0x8], R4 ;" -> opcode "STL.64"
_SASS_OPCODE = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)",
                          re.MULTILINE)


# Byte width of a local load/store from its suffixes; no width suffix means 32 bits.
_ACCESS_BYTES = {"U8": 1, "S8": 1, "U16": 2, "S16": 2, "32": 4, "64": 8, "128": 16}
# cuobjdump --dump-resource-usage: " Function name:\n  REG:40 STACK:0 SHARED:0 LOCAL:0 ..."
_RESOURCE_LINE = re.compile(r"Function\s+(\S+?):\s*\n\s*(REG:.*)")


class CodegenToolError(RuntimeError):
    """A CUDA binary tool Triton ships (cuobjdump) cannot be found or run."""


def sass_figures(sass: str) -> dict[str, int]:
    """MMA instruction counts and local-memory (spill) bytes from SASS text (cuobjdump -sass)."""
    out = {"hmma": 0, "hgmma": 0, "spill_store_bytes": 0, "spill_load_bytes": 0}
    for opcode in _SASS_OPCODE.findall(sass):
        base, *suffixes = opcode.split(".")
        if base == "HMMA":
            out["hmma"] += 1
        elif base == "HGMMA":
            out["hgmma"] += 1
        elif base in ("STL", "LDL"):
            width = next((_ACCESS_BYTES[s] for s in suffixes if s in _ACCESS_BYTES), 4)
            out["spill_store_bytes" if base == "STL" else "spill_load_bytes"] += width
    return out


# "!ttg.memdesc<3x128x32xf16, #shared1, #smem, mutable>" -> ("3x128x32", "f16", "#shared1")
_MEMDESC = re.compile(r"!ttg\.memdesc<((?:\d+x)*)(\w+),\s*(#[\w.]+)")
_DOT_OP_IDX = re.compile(r"#ttg\.dot_op<\{opIdx = (\d)")
_PENDINGS = re.compile(r"pendings = (\d+)")
# "WARPGROUP.DEPBAR.LE gsb0, 0x1 ;" -> 1: how many wgmma groups may still run after the wait
_DEPBAR = re.compile(r"WARPGROUP\.DEPBAR\.LE\s+gsb\d+,\s*0x([0-9a-f]+)")


def _memdescs(line: str) -> list[tuple[tuple[int, ...], str, str]]:
    return [(tuple(int(d) for d in dims.split("x") if d), elem, enc) for dims, elem, enc in _MEMDESC.findall(line)]


def ttgir_figures(ttgir: str) -> dict[str, Any]:
    """Shared-memory buffering of the dot operands and the wgmma wait depth, from TTGIR.

    ``buffers_a`` / ``buffers_b``: how many copies of the A (opIdx 0) and B (opIdx 1) tile the
    kernel keeps in shared memory -- the leading dimension of an empty ``ttg.local_alloc`` that
    the software pipeliner made (``memdesc<3x128x32xf16>``: 3 stages), 1 for a tile stored from
    registers (``ttg.local_alloc %x``), 0 when the operand never goes through shared memory. An
    allocation feeds an operand when its shared encoding reaches the dot (``ttng.warp_group_dot``
    operand, or a ``ttg.local_load`` into a ``dot_op`` layout) through ``ttg.memdesc_*`` views;
    two operands with the same encoding are told apart by their tile shape (A holds the result's
    M rows, B its N columns). None when the kernel has no dot. ``wgmma_pendings``: the largest
    ``pendings`` of a ``ttng.warp_group_dot_wait`` (0: every wgmma is waited for at once), None
    without wgmma.
    """
    parent: dict[str, str] = {}

    def find(e):
        while parent.setdefault(e, e) != e:
            e = parent[e]
        return e

    allocs, operand_encs, dots = [], {0: set(), 1: set()}, []
    pendings = []
    for line in ttgir.splitlines():
        if "ttg.local_alloc" in line:
            descs = _memdescs(line)
            if descs:
                shape, elem, enc = descs[-1]
                head = line.split("ttg.local_alloc", 1)[1].split(":", 1)[0]
                from_registers = "%" in head
                buffers = shape[0] if (not from_registers and len(shape) >= 3) else 1
                tile = shape[1:] if (not from_registers and len(shape) >= 3) else shape
                allocs.append((enc, buffers, tile, elem))
        elif "memdesc_" in line and ("ttg.memdesc_" in line or "ttng.memdesc_" in line):
            encs = [d[2] for d in _memdescs(line)]
            for other in encs[1:]:
                parent[find(other)] = find(encs[0])
        if "ttg.local_load" in line and "dot_op" in line:
            descs, idx = _memdescs(line), _DOT_OP_IDX.search(line)
            if descs and idx and int(idx.group(1)) in operand_encs:
                operand_encs[int(idx.group(1))].add(descs[0][2])
        if "ttng.warp_group_dot " in line or " tt.dot " in line:
            types = line.rsplit(" : ", 1)[-1]
            operands, _, result = types.partition("->")
            for i, part in enumerate(operands.split(" * ")[:2]):
                descs = _memdescs(part)
                if descs:
                    operand_encs[i].add(descs[0][2])
            dims = re.search(r"tensor<(\d+)x(\d+)x", result)
            if dims:
                dots.append((int(dims.group(1)), int(dims.group(2))))
        if "ttng.warp_group_dot_wait" in line:
            found = _PENDINGS.search(line)
            if found:
                pendings.append(int(found.group(1)))
    out: dict[str, Any] = {"buffers_a": None, "buffers_b": None,
                           "wgmma_pendings": max(pendings) if pendings else None}
    if not dots:
        return out
    rows = {m for m, _ in dots}
    cols = {n for _, n in dots}
    roots = {i: {find(e) for e in encs} for i, encs in operand_encs.items()}
    for i, key in ((0, "buffers_a"), (1, "buffers_b")):
        candidates = [a for a in allocs if find(a[0]) in roots[i] and a[3] != "i64"]
        if roots[0] & roots[1]:  # shared encoding: keep the allocations whose tile has this operand's dim
            dims = rows if i == 0 else cols
            narrowed = [a for a in candidates if any(d in a[2] for d in dims)]
            candidates = narrowed or candidates
        out[key] = max((a[1] for a in candidates), default=0)
    return out


def sass_memory_figures(sass: str) -> dict[str, Any]:
    """Global-memory traffic shape from SASS: asynchronous copies (LDGSTS, cp.async, count and
    widest/narrowest width in bytes; UTMALDG, TMA loads), plain global loads (LDG count, widest
    and narrowest width, and a width histogram "16B:4 2B:12"), and the wgmma wait depth (the
    largest N of WARPGROUP.DEPBAR.LE gsb0, N; None without one). Static instruction counts."""
    ldgsts, ldg, utmaldg = [], [], 0
    for opcode in _SASS_OPCODE.findall(sass):
        base, *suffixes = opcode.split(".")
        if base in ("LDGSTS", "LDG"):
            width = next((_ACCESS_BYTES[x] for x in suffixes if x in _ACCESS_BYTES), 4)
            (ldgsts if base == "LDGSTS" else ldg).append(width)
        elif base == "UTMALDG":
            utmaldg += 1
    depths = [int(d, 16) for d in _DEPBAR.findall(sass)]
    histogram = " ".join(f"{w}B:{ldg.count(w)}" for w in sorted(set(ldg), reverse=True))
    return {"ldgsts": len(ldgsts), "ldgsts_max_bytes": max(ldgsts, default=0),
            "ldgsts_min_bytes": min(ldgsts, default=0), "utmaldg": utmaldg,
            "ldg": len(ldg), "ldg_max_bytes": max(ldg, default=0), "ldg_min_bytes": min(ldg, default=0),
            "ldg_widths": histogram, "wgmma_wait_depth": max(depths) if depths else None}


@dataclass(frozen=True)
class SassInstruction:
    """One SASS instruction: byte address, guard predicate ("" or "@!P0"), opcode, operands."""

    address: int
    predicate: str
    opcode: str
    operands: str

    @property
    def base(self) -> str:
        return self.opcode.split(".", 1)[0]


# "/*1600*/   @P3 BRA 0x1110 ;" -> (0x1600, "@P3", "BRA", "0x1110")
_SASS_INSTRUCTION = re.compile(
    r"^\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Za-z0-9_]+)*)([^;]*);", re.MULTILINE)
_BRANCH_TARGET = re.compile(r"0x([0-9a-f]+)")
# tensor-core MMA opcodes: mma.sync (HMMA, IMMA), wgmma (HGMMA, QGMMA: fp8), tcgen05.mma (UTC*MMA)
_MMA_BASES = frozenset({"HMMA", "IMMA", "HGMMA", "QGMMA", "IGMMA", "UTCHMMA", "UTCQMMA", "UTCIMMA", "UTCOMMA"})
# the instruction classes of the loop mix (a uniform-datapath U-form counts as its base form)
_INTEGER_BASES = frozenset({
    "IMAD", "IMUL", "IADD", "IADD3", "VIADD", "VIADDMNMX", "IMNMX", "VIMNMX", "ISETP", "ISCADD", "SEL", "LEA",
    "SHF", "SHL", "SHR", "LOP", "LOP3", "PLOP3", "IABS", "INEG", "PRMT", "MOV", "MOV32I", "SGXT", "BMSK", "BREV",
    "FLO", "POPC", "P2R", "R2P", "R2UR", "S2R", "S2UR", "CS2R", "I2F", "F2I", "I2FP", "F2IP", "I2I", "IDP",
    "BFE", "BFI", "LEPC"})
_MEMORY_BASES = frozenset({
    "LDG", "STG", "LDGSTS", "LDGDEPBAR", "LDS", "STS", "LDSM", "STSM", "LDL", "STL", "LD", "ST", "LDC", "ULDC",
    "ATOM", "ATOMG", "ATOMS", "RED", "REDG", "UTMALDG", "UTMASTG", "UTMAPF", "UBLKCP", "UTMACCTL", "UTMACMDFLUSH",
    "UTCBAR", "LDTM", "STTM", "UTCCP", "LDSMT", "CCTL"})
_SYNC_BASES = frozenset({
    "BAR", "BSYNC", "BSSY", "DEPBAR", "WARPGROUP", "WARPSYNC", "MEMBAR", "FENCE", "ERRBAR", "SYNCS", "ARRIVES",
    "NANOSLEEP", "YIELD", "ELECT", "VOTE", "VOTEU", "MATCH", "UCGABAR_ARV", "UCGABAR_WAIT", "CGAERRBAR"})
LOOP_CLASSES = ("integer", "memory", "mma", "sync", "other")


def sass_instructions(sass: str) -> list[SassInstruction]:
    """Every instruction of a SASS listing (``cuobjdump --dump-sass``), in address order."""
    return [SassInstruction(int(addr, 16), (pred or "").strip(), opcode, operands.strip())
            for addr, pred, opcode, operands in _SASS_INSTRUCTION.findall(sass)]


def instruction_class(opcode: str) -> str:
    """'mma', 'memory', 'sync', 'integer' or 'other' (branches, floating point, conversions
    of values) for an opcode; a uniform-datapath form (UIADD3, USEL, ...) counts as its base."""
    base = opcode.split(".", 1)[0]
    if base in _MMA_BASES:
        return "mma"
    for name in (base, base[1:] if base.startswith("U") else base):
        if name in _MEMORY_BASES:
            return "memory"
        if name in _SYNC_BASES:
            return "sync"
        if name in _INTEGER_BASES:
            return "integer"
    return "other"


def main_loop(instructions: Sequence[SassInstruction]) -> list[SassInstruction]:
    """The instructions of the MMA main loop: from the target of the backward branch that
    closes the innermost loop holding a tensor-core MMA, to that branch (both included).
    Of several such loops the one with the most MMA instructions (then the longest) wins;
    empty when no loop holds an MMA."""
    best: list[SassInstruction] = []
    best_key = (0, 0)
    index = {ins.address: i for i, ins in enumerate(instructions)}
    for end, ins in enumerate(instructions):
        if ins.base not in ("BRA", "JMP"):
            continue
        target = _BRANCH_TARGET.search(ins.operands)
        if not target or int(target.group(1), 16) >= ins.address or int(target.group(1), 16) not in index:
            continue
        body = list(instructions[index[int(target.group(1), 16)]:end + 1])
        mma = sum(i.base in _MMA_BASES for i in body)
        if not mma:
            continue
        # innermost: a loop nested inside the current best (shorter, same MMAs) replaces it
        key = (mma, -len(body))
        if key > best_key:
            best, best_key = body, key
    return best


# "HGMMA.64x128x16.F32..." -> (64, 128, 16); "HMMA.16816.F32" -> (16, 8, 16); "HMMA.1688..." -> (16, 8, 8)
_HGMMA_SHAPE = re.compile(r"^[A-Z]*GMMA\.(\d+)x(\d+)x(\d+)")
_HMMA_SHAPE = re.compile(r"^[HI]MMA\.(16|8)(8)(\d+)")


def mma_macs(opcode: str) -> int | None:
    """Multiply-adds of one MMA instruction, per warp (HMMA) or per warpgroup (HGMMA); None
    when the opcode does not state its shape (tcgen05's UTC*MMA)."""
    for pattern in (_HGMMA_SHAPE, _HMMA_SHAPE):
        found = pattern.match(opcode)
        if found:
            m, n, k = (int(v) for v in found.groups())
            return m * n * k
    return None


def loop_figures(sass: str, num_warps: int) -> dict[str, Any]:
    """The main loop of a SASS listing (:func:`main_loop`): instruction count, its mix by
    class (:data:`LOOP_CLASSES`) and the multiply-adds its MMAs do for the whole CTA per
    iteration (HMMA per warp x warps, HGMMA per warpgroup x warpgroups; None for tcgen05,
    whose opcode has no shape). All None without an MMA loop."""
    loop = main_loop(sass_instructions(sass))
    out: dict[str, Any] = {"loop_instructions": None, "loop_mma_macs": None,
                           **{f"loop_{c}": None for c in LOOP_CLASSES}}
    if not loop:
        return out
    counts = {c: 0 for c in LOOP_CLASSES}
    macs, shaped = 0, True
    for ins in loop:
        counts[instruction_class(ins.opcode)] += 1
        if ins.base in _MMA_BASES:
            per = mma_macs(ins.opcode)
            if per is None:
                shaped = False
            else:
                macs += per * (num_warps // 4 if "GMMA" in ins.base else num_warps)
    out.update(loop_instructions=len(loop), loop_mma_macs=macs if shaped else None,
               **{f"loop_{c}": n for c, n in counts.items()})
    return out


def resource_usage(dump: str, function: str) -> dict[str, int]:
    """REG/STACK/SHARED/LOCAL of ``function`` from ``cuobjdump --dump-resource-usage`` output."""
    for name, fields in _RESOURCE_LINE.findall(dump):
        if name == function:
            return {k: int(v) for k, v in re.findall(r"(\w+(?:\[\d+\])?):(\d+)", fields)}
    raise CodegenToolError(f"no resource usage for function {function!r} in cuobjdump output:\n{dump[:500]}")
