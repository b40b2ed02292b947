"""Device and dtype selection, with availability monkeypatched (tests run on the CPU)."""

from __future__ import annotations

import pytest

from core.runtime import devices
from core.runtime.devices import DeviceChoice, DeviceUnavailable, select_device


@pytest.fixture
def hw(monkeypatch: pytest.MonkeyPatch):
    state = {"cuda": False, "bf16": False, "mps": False, "mps_fp16": False}
    monkeypatch.setattr(devices, "_cuda_available", lambda: state["cuda"])
    monkeypatch.setattr(devices, "_cuda_bf16", lambda: state["bf16"])
    monkeypatch.setattr(devices, "_mps_available", lambda: state["mps"])
    monkeypatch.setattr(devices, "_mps_fp16", lambda: state["mps_fp16"])
    return state


def test_auto_prefers_cuda_then_mps_then_cpu(hw: dict) -> None:
    assert select_device("auto") == DeviceChoice("cpu", "float32")
    hw["mps"] = True
    assert select_device("auto") == DeviceChoice("mps", "float32")
    hw["mps_fp16"] = True
    assert select_device("auto") == DeviceChoice("mps", "float16")
    hw["cuda"] = True
    assert select_device("auto") == DeviceChoice("cuda", "float16")
    hw["bf16"] = True
    assert select_device("auto") == DeviceChoice("cuda", "bfloat16")


def test_explicit_choice_and_missing_device(hw: dict) -> None:
    assert select_device("cpu").describe() == "cpu (float32)"
    with pytest.raises(DeviceUnavailable, match="cuda"):
        select_device("cuda")
    with pytest.raises(DeviceUnavailable, match="mps"):
        select_device("mps")
    hw["cuda"] = hw["bf16"] = True
    assert select_device("cuda:1") == DeviceChoice("cuda:1", "bfloat16")
    assert select_device("CPU", dtype="bfloat16").describe() == "cpu (bfloat16)"


def test_bad_input_is_a_clear_error(hw: dict) -> None:
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        select_device("tpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        select_device("cpu", dtype="int8")


def test_mps_fallback_is_set_when_mps_may_be_chosen(
    hw: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    select_device("cpu")
    import os

    assert "PYTORCH_ENABLE_MPS_FALLBACK" not in os.environ
    select_device("auto")
    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"


def test_real_machine_here_is_cpu() -> None:
    import torch

    choice = select_device("auto")
    if torch.cuda.is_available():
        assert choice.device.startswith("cuda")
    elif torch.backends.mps.is_available():
        assert choice.device == "mps"
    else:  # this machine and CI: CPU in float32 (bf16 matmul is very slow without AVX-512)
        assert choice.device == "cpu" and choice.torch_dtype == torch.float32
    assert devices.describe("cpu") == "cpu (float32)"
