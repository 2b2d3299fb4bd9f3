"""training.precision: bf16 only where the hardware has it, on faked CPUs and GPUs."""
from __future__ import annotations

import pytest

from training.precision import PrecisionError, cpu_flags, host_info, host_kind, resolve_amp

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})  # the project's EPYC host
SAPPHIRE_RAPIDS = AVX2 | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
ZEN4 = AVX2 | {"avx512f", "avx512_bf16"}
GRAVITON3 = frozenset({"fp", "asimd", "sve", "bf16"})


def test_auto_picks_bf16_only_where_native():
    for flags in (SAPPHIRE_RAPIDS, ZEN4, GRAVITON3):
        choice = resolve_amp("auto", "cpu", flags)
        assert choice.amp == "bf16" and "native bf16" in choice.reason
    choice = resolve_amp("auto", "cpu", AVX2)
    assert choice.amp == "off" and choice.reason.startswith("FP32: this CPU (AVX2) has no native bf16")
    assert resolve_amp("auto", "cuda", capability=(9, 0)).amp == "bf16"  # H100
    a100 = resolve_amp("auto", "cuda", capability=(8, 0))
    assert a100.amp == "bf16" and "compute capability 8.0" in a100.reason
    t4 = resolve_amp("auto", "cuda", capability=(7, 5))
    assert t4.amp == "off" and "--amp fp16" in t4.reason


def test_bf16_where_it_is_emulated_is_refused_with_the_slowdown():
    with pytest.raises(PrecisionError, match=r"this CPU \(AVX2\) has no native bf16 .* ~25x .* --amp off or --amp auto"):
        resolve_amp("bf16", "cpu", AVX2)
    with pytest.raises(PrecisionError, match=r"compute capability 7.0\).* use --amp fp16"):
        resolve_amp("bf16", "cuda", capability=(7, 0))
    assert resolve_amp("bf16", "cpu", ZEN4).amp == "bf16"
    assert resolve_amp("bf16", "cuda", capability=(8, 6)).amp == "bf16"


def test_fp16_needs_cuda_and_off_is_always_fp32():
    assert resolve_amp("fp16", "cuda", capability=(7, 5)).amp == "fp16"
    with pytest.raises(PrecisionError, match="needs a CUDA device"):
        resolve_amp("fp16", "cpu", ZEN4)
    assert resolve_amp("off", "cpu", AVX2).amp == resolve_amp("off", "cuda", capability=(9, 0)).amp == "off"
    with pytest.raises(PrecisionError, match="must be one of"):
        resolve_amp("int8", "cpu", AVX2)


def test_host_kinds_and_this_hosts_record():
    assert [host_kind(f) for f in (SAPPHIRE_RAPIDS, ZEN4, AVX2 | {"avx512f"}, AVX2, GRAVITON3)] == [
        "AMX bf16", "AVX-512 bf16", "AVX-512", "AVX2", "bf16 (Arm)",
    ]  # fmt: skip
    info = host_info()
    assert info["host_kind"] == host_kind(cpu_flags()) and info["cores"] >= 1 and info["cpu_model"]
    assert set(info["cpu_simd_flags"]) <= cpu_flags()


def test_training_cli_refuses_emulated_bf16_and_says_what_auto_chose(tmp_path, monkeypatch, capsys):
    from training import precision
    from training.run import main

    args = ["--dataset", "synthetic-faces:64", "--image-size", "32", "--out", str(tmp_path / "run"), "--device", "cpu", "--dry-run"]
    monkeypatch.setattr(precision, "cpu_flags", lambda: AVX2)
    assert main([*args, "--amp", "bf16"]) == 2
    assert "~25x" in capsys.readouterr().err and not (tmp_path / "run").exists()
    assert main([*args, "--amp", "auto"]) == 0
    assert "FP32: this CPU (AVX2) has no native bf16" in capsys.readouterr().out
    monkeypatch.setattr(precision, "cpu_flags", lambda: ZEN4)
    assert main([*args, "--amp", "bf16"]) == 0
    assert main([*args, "--amp", "auto"]) == 0
    assert "bf16 autocast: this CPU (AVX-512 bf16) has native bf16" in capsys.readouterr().out
