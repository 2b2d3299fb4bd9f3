"""Which autocast precision fits this machine, and what the machine is (for every benchmark's record).

bf16 autocast only pays where the hardware multiplies bf16 natively: CPUs with AVX-512 BF16 or AMX
(Intel Sapphire Rapids+, AMD Zen 4+), Arm cores with the BF16 extension, and CUDA GPUs of compute
capability >= 8.0 (Ampere+). Elsewhere torch emulates it: on the project's AVX2-only EPYC host one
G+D training step at batch 128 took 50 s under bf16 autocast against 1.9 s in FP32 (~25x; ~8-10x at
batch 32 under load, BENCHMARKS.md "Precision"). So:

* `--amp bf16` where bf16 is not native is refused (exit 2) with that figure and the alternatives;
* `--amp auto` picks bf16 where it is native and FP32 elsewhere, and says which and why;
* `--amp fp16` needs CUDA (its GradScaler is CUDA-only).

The choice is a pure function of (requested mode, device type, CPU flags, CUDA capability), so the
tests can fake any machine.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass

AMP_CHOICES = ("off", "bf16", "fp16", "auto")
# x86: AVX-512 BF16 (vdpbf16ps) or AMX tiles; aarch64 /proc/cpuinfo lists the BF16 extension as "bf16".
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
MIN_BF16_CUDA_CAPABILITY = (8, 0)
EMULATED_BF16_SLOWDOWN = "~25x (one G+D step at batch 128: 50 s bf16 vs 1.9 s FP32 on an AVX2 EPYC)"


class PrecisionError(ValueError):
    """A precision this device cannot run well (or at all); the message names the alternative."""


@dataclass(frozen=True)
class AmpChoice:
    amp: str  # "off", "bf16" or "fp16": what training runs with
    reason: str  # one line for the user: what was chosen and why


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 "flags", Arm "Features"); empty where the OS does not say."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def host_kind(flags: frozenset[str]) -> str:
    """A short name for the CPU's widest matrix instructions: what a throughput figure depends on."""
    if "amx_bf16" in flags:
        return "AMX bf16"
    if "avx512_bf16" in flags:
        return "AVX-512 bf16"
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    return "bf16 (Arm)" if "bf16" in flags else (platform.machine() or "unknown")


def cpu_has_native_bf16(flags: frozenset[str]) -> bool:
    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def cuda_capability() -> tuple[int, int] | None:
    import torch

    return tuple(torch.cuda.get_device_capability()) if torch.cuda.is_available() else None


def resolve_amp(
    requested: str, device_type: str, flags: frozenset[str] | None = None, capability: tuple[int, int] | None = None
) -> AmpChoice:
    """The precision to train with on this device, or PrecisionError for one that would not work well.

    flags: the CPU's flags (default: this machine's); capability: the CUDA device's compute
    capability (default: this machine's, when device_type is "cuda").
    """
    if requested not in AMP_CHOICES:
        raise PrecisionError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {requested!r}")
    if requested == "off":
        return AmpChoice("off", "FP32 (--amp off)")
    if device_type == "cuda":
        capability = capability if capability is not None else cuda_capability()
        native = capability is not None and tuple(capability) >= MIN_BF16_CUDA_CAPABILITY
        where = f"this GPU (compute capability {'.'.join(map(str, capability or ()))})"
        if requested == "fp16":
            return AmpChoice("fp16", "fp16 autocast with loss scaling (--amp fp16)")
        if native:
            return AmpChoice("bf16", f"bf16 autocast: {where} has native bf16" + (" (--amp auto)" if requested == "auto" else ""))
        if requested == "auto":
            return AmpChoice("off", f"FP32: {where} has no native bf16 (needs 8.0+); --amp fp16 uses its fp16 units")
        raise PrecisionError(
            f"--amp bf16: {where} has no native bf16 (needs compute capability 8.0+, Ampere or newer), so it would be "
            "emulated and slower than FP32; use --amp fp16 (native on this GPU), --amp off or --amp auto"
        )
    if requested == "fp16":
        raise PrecisionError("--amp fp16 needs a CUDA device (its loss scaling is CUDA-only); on CPU use --amp auto or off")
    flags = cpu_flags() if flags is None else flags
    what = f"this CPU ({host_kind(flags)})"
    if cpu_has_native_bf16(flags):
        return AmpChoice("bf16", f"bf16 autocast: {what} has native bf16 instructions" + (" (--amp auto)" if requested == "auto" else ""))
    if requested == "auto":
        return AmpChoice("off", f"FP32: {what} has no native bf16 instructions (avx512_bf16 / amx_bf16), where bf16 would be slower")
    raise PrecisionError(
        f"--amp bf16: {what} has no native bf16 instructions (avx512_bf16 / amx_bf16), so torch emulates bf16 and "
        f"training runs far slower than in FP32: measured {EMULATED_BF16_SLOWDOWN}. Use --amp off or --amp auto "
        "(bf16 only where it is native)"
    )


def host_info() -> dict:
    """What a benchmark's figures depend on: CPU model and flags, cores, memory, torch and the GPU."""
    import torch

    flags = cpu_flags()
    simd = sorted(f for f in flags if f.startswith(("sse", "ssse", "avx", "amx", "fma", "f16c", "bf16", "asimd", "sve")))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    info = {
        "cpu_model": cpu_model(), "host_kind": host_kind(flags), "native_bf16": cpu_has_native_bf16(flags),
        "cpu_simd_flags": simd, "cores": cores, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1) if hasattr(os, "sysconf") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
        info["cuda_capability"] = list(torch.cuda.get_device_capability())
    return info
