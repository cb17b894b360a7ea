"""The policy as sampling and training see it: a causal LM stepping with the KV cache, and the
policy with its value function (a value head on the policy's own trunk, shared, or a separate
critic model with a token-level scalar head)."""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import PreTrainedModel

from srft.models.lora import base_of


class CausalPolicy(nn.Module):
    """A causal LM that steps with the KV cache: all that sampling needs (no value function)."""

    def __init__(self, policy: PreTrainedModel) -> None:
        super().__init__()
        self.policy = policy
        base = base_of(policy)  # under a LoRA wrapper, the transformers model
        params = inspect.signature(base.forward).parameters
        self._cache_argument = "cache" if "cache" in params else "past_key_values"
        self._keeps_logits = "logits_to_keep" in params
        # FSDP makes each of these layers a unit of its own
        self._no_split_modules = list(getattr(base, "_no_split_modules", None) or [])

    def _run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        keep: int,
        cache=None,
    ):
        """The policy's forward, computing logits at the last `keep` positions only where the
        model can."""
        extra = {"logits_to_keep": keep} if self._keeps_logits else {}
        if cache is not None:
            extra.update({"use_cache": True, self._cache_argument: cache})
        else:
            extra["use_cache"] = False
        return self.policy(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **extra
        )

    def step(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One generation step with the KV cache: logits at the last position (and, where the
        policy carries one, the value head's estimate there)."""
        logits = self._run(input_ids, attention_mask, position_ids, 1, cache).logits
        return logits, self._step_values()

    def _step_values(self) -> torch.Tensor | None:
        return None


class PolicyWithValue(CausalPolicy):
    """A causal LM and V(s) at every position.

    With no `critic`, V is a linear head on the hidden state that feeds the LM head (captured by
    a hook, so one forward gives both); with a critic, V is the critic's per-token output.
    Without `value` (the critic-free algorithms), there is no V: the values come back None.
    """

    def __init__(
        self, policy: PreTrainedModel, critic: PreTrainedModel | None = None, value: bool = True
    ) -> None:
        super().__init__(policy)
        self.critic = critic
        self.value_head: nn.Linear | None = None
        self._hidden: torch.Tensor | None = None
        if not value:
            assert critic is None, "a critic is a value function"
        elif critic is None:
            lm_head = base_of(policy).get_output_embeddings()
            self.value_head = nn.Linear(lm_head.in_features, 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
            self.value_head.to(device=lm_head.weight.device, dtype=lm_head.weight.dtype)
            lm_head.register_forward_pre_hook(self._capture)
        else:
            layers = getattr(critic, "_no_split_modules", None) or []
            self._no_split_modules = sorted({*self._no_split_modules, *layers})

    @property
    def has_value(self) -> bool:
        return self.value_head is not None or self.critic is not None

    @property
    def shared(self) -> bool:
        """Whether V is a head on the policy's own trunk."""
        return self.value_head is not None

    def _capture(self, module: nn.Module, args: tuple) -> None:
        self._hidden = args[0]

    def _values_from_hidden(self) -> torch.Tensor:
        assert self.value_head is not None and self._hidden is not None
        values = self.value_head(self._hidden).squeeze(-1)
        self._hidden = None
        return values.float()

    def _step_values(self) -> torch.Tensor | None:
        # With a separate critic, values come from one pass of the critic after sampling.
        return self._values_from_hidden() if self.shared else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        keep: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (batch, keep, vocab) and values (batch, keep) at the last `keep` positions;
        values None without a value function."""
        out = self._run(input_ids, attention_mask, position_ids, keep)
        if not self.has_value:
            return out.logits[:, -keep:], None
        values = (
            self._values_from_hidden()
            if self.shared
            else self._critic_values(input_ids, attention_mask, position_ids)
        )
        return out.logits[:, -keep:], values[:, -keep:]

    def critic_values(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """The separate critic's V at every position (a method of its own, which a sharded model
        runs as a forward)."""
        return self._critic_values(input_ids, attention_mask, position_ids)

    def _critic_values(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        assert self.critic is not None
        out = self.critic(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
        )
        return out.logits[..., 0].float()
