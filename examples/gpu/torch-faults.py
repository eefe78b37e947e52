#!/usr/bin/env python3
"""A GPU program's page faults, phase by phase, with its own counts to compare.

Each phase prints the VMA it touched (from /proc/self/maps) and the process's
getrusage minor/major fault delta around it, so that huge-fault's per-VMA rows
can be checked against the program's own arithmetic:

  pageable  a 512 MiB CPU tensor written once (anonymous memory, THP if enabled)
  pinned    a 256 MiB pinned (page-locked) CPU tensor, allocated and written
  copies    host-to-device and device-to-host copies and matrix products (GPU busy)
  managed   256 MiB of CUDA managed memory written by the CPU, then by a GPU
            kernel, then by the CPU again (the driver's own fault handler), if
            CuPy is there

Usage: torch-faults.py [--seconds S]
"""

import ctypes
import os
import resource
import sys
import time

MIB = 1 << 20


def faults():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_minflt, r.ru_majflt


def vma_of(addr):
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= addr < end:
                name = fields[5] if len(fields) > 5 else ""
                return f"{start:x}-{end:x} {name}".strip()
    return "?"


def phase(name, addr, size, work):
    before = faults()
    t = time.monotonic()
    work()
    elapsed = time.monotonic() - t
    after = faults()
    pages = size // 4096
    print(
        f"phase {name}: vma {vma_of(addr) if addr else '-'} buffer {addr:#x}+{size // MIB}MiB "
        f"({pages} pages of 4 KiB) minflt {after[0] - before[0]} majflt {after[1] - before[1]} "
        f"in {elapsed * 1000:.1f} ms",
        flush=True,
    )


def main():
    seconds = 5.0
    if len(sys.argv) == 3 and sys.argv[1] == "--seconds":
        seconds = float(sys.argv[2])
    import torch

    print(f"pid {os.getpid()} torch {torch.__version__} cuda {torch.cuda.is_available()}", flush=True)
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    print(f"device {torch.cuda.get_device_name(0)}", flush=True)
    torch.cuda.init()
    torch.zeros(1, device="cuda")  # context creation outside the phases

    size = 512 * MIB
    cpu = torch.empty(size // 4, dtype=torch.float32)
    phase("pageable", cpu.data_ptr(), size, lambda: cpu.fill_(1.0))

    psize = 256 * MIB
    holder = {}

    def pinned():
        holder["t"] = torch.empty(psize // 4, dtype=torch.float32, pin_memory=True)
        holder["t"].fill_(2.0)

    phase("pinned", 0, psize, pinned)
    pin = holder["t"]
    print(f"phase pinned: buffer at {pin.data_ptr():#x} in vma {vma_of(pin.data_ptr())}", flush=True)

    def copies():
        a = torch.randn(4096, 4096, device="cuda")
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            g = pin.to("cuda", non_blocking=True)
            b = a @ a
            pin.copy_(g, non_blocking=True)
            cpu[: b.numel()].copy_(b.flatten().cpu())
            n += 1
        torch.cuda.synchronize()
        print(f"phase copies: {n} rounds", flush=True)

    phase("copies", 0, 0, copies)

    try:
        import cupy
    except Exception as e:  # noqa: BLE001
        print(f"phase managed: skipped ({e})", flush=True)
        return 0
    msize = 256 * MIB
    mem = cupy.cuda.malloc_managed(msize)
    ptr = mem.ptr
    arr = cupy.ndarray((msize,), dtype=cupy.uint8, memptr=mem)
    phase("managed-cpu-write", ptr, msize, lambda: ctypes.memset(ptr, 1, msize))

    def gpu_write():
        cupy.add(arr, 1, out=arr)
        cupy.cuda.Device().synchronize()

    phase("managed-gpu-write", ptr, msize, gpu_write)
    phase("managed-cpu-write-again", ptr, msize, lambda: ctypes.memset(ptr, 3, msize))
    return 0


if __name__ == "__main__":
    sys.exit(main())
