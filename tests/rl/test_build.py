import torch

from srft.config import load_config
from srft.rl.build import hold_frozen


def test_frozen_models_are_held_in_the_mixed_precision():
    assert hold_frozen(torch.nn.Linear(2, 2), load_config(None, [])).weight.dtype == torch.float32
    held = hold_frozen(torch.nn.Linear(2, 2), load_config(None, ["compute.bf16=true"]))
    assert held.weight.dtype == torch.bfloat16
