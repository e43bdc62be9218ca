"""bench/gpu_check.py on the CPU (--device cpu --quick): one JSON report with every section,
no section failed, and figures that make sense (the device-only figures are absent here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow  # ~90 s on 2 cores: every section with tiny random models
def test_gpu_check_quick_on_cpu_reports_every_section(tmp_path):
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--quick",
         "--out", str(out)],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(done.stdout) == report  # the JSON is what it prints
    assert report["errors"] == {}
    assert {
        "device", "quick", "environment", "parity", "speed", "stall", "semantics", "agreement",
        "memory", "onnx_encoder", "seconds", "elapsed_s",
    } <= set(report)  # fmt: skip
    assert report["device"] == "cpu" and report["quick"] is True

    env = report["environment"]
    assert env["auto_dtype"]["tracker"]["dtype"] == "float32"
    assert env["auto_dtype"]["semantics"]["dtype"] == "float32"

    parity = report["parity"]
    assert parity["float32_vs_cpu"] == {"min_iou": 1.0, "mean_iou": 1.0, "max_logit_diff": 0.0}
    assert parity["low_precision"] == "bfloat16"
    assert 0.0 <= parity["low_precision_vs_float32"]["min_iou"] <= 1.0

    assert report["speed"] and all(row["fps"] > 0 for row in report["speed"])
    assert {(r["model_size"], r["objects"]) for r in report["speed"]} == {("tiny", 1), ("tiny", 2)}

    stall = report["stall"]
    assert stall["idle_fps"] > 0 and stall["busy_fps"] > 0 and stall["stall_ratio"] > 0
    assert stall["describe_calls_during"] >= 1

    semantics = report["semantics"]
    assert semantics["category_ttft_ms"] > 0 and semantics["decode_tokens_per_s"] > 0

    agreement = report["agreement"]
    assert 0.0 <= agreement["identical_fraction"] <= 1.0
    # the equality promises hold in float32 on the CPU
    assert agreement["promises"]["float32"] == {
        "batched_equals_one_by_one": 1.0,
        "prefix_cache_equals_recompute": 1.0,
        "same_input_same_output": 1.0,
    }

    memory = report["memory"]
    for phase in ("before_configure", "active", "after_cleanup"):
        assert memory[phase]["rss_mb"] > 0
    assert "allocated_mb" not in memory["active"]  # device figures only on CUDA

    # the ONNX encoder served by the CPU provider tracks like the PyTorch encoder
    (row,) = report["onnx_encoder"]["rows"]
    assert row["provider"] == row["served_by"] == "CPUExecutionProvider"
    assert row["export_max_diff"] < 1e-4
    assert row["onnxruntime"]["vs_torch"]["min_iou"] >= 0.999  # a pixel at a logit of ~0 may flip
    assert row["onnxruntime"]["vs_torch"]["max_logit_diff"] < 1e-4
    assert row["encoder_ratio"] > 0 and row["frame_ratio"] > 0
