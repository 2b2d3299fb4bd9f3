"""bench.gpu_check's logic on CPU (--quick): every part runs and records what a GPU run would."""
from __future__ import annotations

import json

import pytest

from training.precision import cpu_flags, cpu_has_native_bf16


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~30 s on an idle 2-core host (three short training processes); far more on a loaded one
def test_gpu_check_quick_on_cpu(tmp_path):
    from bench import gpu_check

    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--device", "cpu", "--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    parts = report["parts"]
    assert report["failed"] == [] and parts["host"]["amp_auto"]
    eager = parts["throughput"]
    assert eager["eager-fp32"]["img_per_s"] > 0 and eager["eager-fp32"]["finite"] is True
    assert "needs a CUDA device" in eager["eager-fp16"]["skipped"]
    assert ("img_per_s" in eager["eager-bf16"]) == cpu_has_native_bf16(cpu_flags())
    assert parts["reference"]["img_per_s"] > 0
    assert report["summary"]["eager-fp32"]["x_reference"] == pytest.approx(eager["eager-fp32"]["img_per_s"] / parts["reference"]["img_per_s"])
    assert parts["resume"]["deterministic"] is True and parts["resume"]["resume_bit_exact"] is True
    assert parts["torchrun"]["returncode"] == 0 and parts["torchrun"]["checkpoint_step"] == 4
    folder = parts["cached_folder"]
    assert folder["images"] == 32 and set(folder["starts"]) == {"first", "second"}
    assert folder["img_per_s"]["streamed"] > 0 and folder["img_per_s"]["preloaded"] > 0
    assert "quick" in parts["compiled"]["skipped"]
