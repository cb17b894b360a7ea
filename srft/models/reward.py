"""Reward-model math and scoring: the Bradley-Terry loss, pair accuracy, batched rewards."""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.data.sft import encode_completion, encode_prompt


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on r(chosen) - r(rejected) with label 1: mean of
    -log sigmoid(r_chosen - r_rejected)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def pair_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """**reward accuracy**: fraction of pairs with `r(chosen) > r(rejected)`, ties counted half."""
    if r_chosen.numel() == 0:
        return float("nan")
    wins = (r_chosen > r_rejected).float() + 0.5 * (r_chosen == r_rejected).float()
    return wins.mean().item()


def strict_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Fraction of pairs with `r(chosen) > r(rejected)`, ties counted as misses."""
    if r_chosen.numel() == 0:
        return float("nan")
    return (r_chosen > r_rejected).float().mean().item()


def tie_rate(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Fraction of pairs the rewards do not order: `r(chosen) == r(rejected)`."""
    if r_chosen.numel() == 0:
        return float("nan")
    return (r_chosen == r_rejected).float().mean().item()


def encode_pair_text(
    tokenizer,
    prompt: str,
    response: str,
    max_prompt: int,
    max_response: int,
    max_length: int | None = None,
) -> list[int]:
    """Token ids of the sequence a reward model scores: prompt + response + EOS for a causal
    LM's tokenizer; for an encoder's (no EOS, a separator: BERT, MiniLM) the sequence pair
    `[CLS] prompt [SEP] response [SEP]`. Prompts are cut from the left, responses from the
    right; with `max_length` (the model's positions), the prompt is cut further from the left
    until the whole fits, and the response only when it alone does not."""
    if tokenizer.eos_token_id is None and tokenizer.sep_token_id is not None:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_prompt:]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"][:max_response]
        cls = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
        sep = [tokenizer.sep_token_id]
        if max_length is not None:
            room = max_length - len(cls) - 2 * len(sep)
            prompt_ids, response_ids = fit_pair(prompt_ids, response_ids, room)
        return cls + prompt_ids + sep + response_ids + sep
    prompt_ids = encode_prompt(tokenizer, prompt, max_prompt)
    completion = encode_completion(tokenizer, response, max_response)
    if max_length is not None:
        # the completion's EOS stays last: it is where a causal RM reads its reward
        prompt_ids, reply = fit_pair(prompt_ids, completion[:-1], max_length - 1)
        completion = reply + completion[-1:]
    return prompt_ids + completion


def pair_text_truncated(tokenizer, prompt: str, response: str, encoded: list[int]) -> bool:
    """Whether `encoded`, `encode_pair_text` of `prompt` and `response` under some limits, lost
    tokens to them."""
    whole = encode_pair_text(tokenizer, prompt, response, sys.maxsize, sys.maxsize)
    return len(encoded) < len(whole)


def fit_pair(prompt: list[int], response: list[int], room: int) -> tuple[list[int], list[int]]:
    """`prompt` and `response` cut to `room` tokens together: the prompt from the left first
    (the reply is what is scored), then the response from the right."""
    response = response[: max(room, 0)]
    keep = max(room - len(response), 0)
    return prompt[len(prompt) - keep :] if keep else [], response


def positions_of(model: PreTrainedModel) -> int | None:
    """The longest sequence the model takes (its position embeddings), or None when its config
    sets no limit."""
    config = model.config
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def pad_batch(sequences: list[list[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token id lists into input_ids and attention_mask."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def score_sequences(
    model: PreTrainedModel, sequences: list[list[int]], pad_token_id: int, batch_size: int = 256
) -> torch.Tensor:
    """Scalar rewards of token sequences, in the given order, returned on the CPU. Batches group
    sequences of similar length so that little compute goes to padding."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    rewards = torch.empty(len(sequences))
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = pad_batch([sequences[i] for i in chosen], pad_token_id)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        rewards[chosen] = logits[:, 0].float().cpu()
    return rewards


class RewardScorer:
    """A frozen reward model scoring (prompt, response) texts the way stage 3 trained it: the
    one wrapper behind RM validation, RL rewards, annotation by a reward model and
    `srft evaluate-rm`. Rewards come back on the CPU, in the order asked.

    Given the policy's tokenizer and it has the RM's vocabulary, the RM scores the policy's
    token sequences as they are (no decoding and re-encoding)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_prompt: int,
        max_response: int,
        batch_size: int = 256,
        policy_tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_prompt = max_prompt
        self.max_response = max_response
        self.batch_size = batch_size
        self.same_tokens = (
            policy_tokenizer is not None and tokenizer.get_vocab() == policy_tokenizer.get_vocab()
        )
        self.max_length = positions_of(model)

    def encode(self, prompt: str, response: str) -> list[int]:
        return encode_pair_text(
            self.tokenizer, prompt, response, self.max_prompt, self.max_response, self.max_length
        )

    def __call__(
        self,
        prompts: list[str],
        responses: list[str],
        sequences: list[list[int]] | None = None,
    ) -> torch.Tensor:
        """Rewards (batch,) of `responses` to `prompts`; `sequences`, the policy's token ids of
        prompt + response + EOS, are scored directly when the RM shares the policy's tokens."""
        if sequences is None or not self.same_tokens:
            sequences = [self.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
        elif self.max_length is not None:  # the prompt's start gives way, as in `encode`
            sequences = [s[-self.max_length :] for s in sequences]
        return score_sequences(self.model, sequences, self.tokenizer.pad_token_id, self.batch_size)

    def truncated(self, pairs: list) -> int:
        """How many preference pairs lose tokens (of the chosen or the rejected sequence) to the
        length limits or the model's positions when scored."""
        return sum(
            any(
                pair_text_truncated(self.tokenizer, p.prompt, reply, self.encode(p.prompt, reply))
                for reply in (p.chosen, p.rejected)
            )
            for p in pairs
        )

    def pairs(self, pairs: list) -> tuple[torch.Tensor, torch.Tensor]:
        """r(chosen) and r(rejected) of preference pairs (objects with prompt, chosen,
        rejected)."""
        prompts = [p.prompt for p in pairs]
        return self(prompts, [p.chosen for p in pairs]), self(prompts, [p.rejected for p in pairs])

    def accuracy(self, pairs: list) -> float:
        """**reward accuracy** on preference pairs."""
        return pair_accuracy(*self.pairs(pairs))
