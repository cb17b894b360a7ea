"""The RL engine: rollouts scored by a frozen reward, KL-shaped rewards, GAE, and PPO or A2C
updates of a policy with its value function, or GRPO or RLOO updates of a policy alone, or DPO
updates from preference pairs, on accelerate.

One `step` is: sample a response per prompt (KV cache), score it, penalise each token by its
log-ratio to the frozen reference (and measure the exact per-token KL), estimate advantages, and
update the policy and value function (`ppo_epochs` passes of clipped PPO, or one A2C pass).
GRPO and RLOO sample a group of `group_size` responses per prompt instead, a response's
advantage its score against its group's, and update the policy alone (`ppo_epochs` clipped
passes), the KL in the reward or, as k3 estimates, in the loss. DPO's step samples nothing: it
scores a batch of preference pairs under the policy and the frozen reference and takes DPO's
loss, its beta the KL coefficient.

With several processes, each rolls out its share of the batch with its own sampler; advantages
are whitened and the step's statistics reduced over all shares, and accelerate averages the
gradients, so the update is the global batch's.
"""

from __future__ import annotations

import json
import statistics
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch.distributed.fsdp import register_fsdp_forward_method
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from srft.config import ComputeConfig, DataConfig, RLTrainingConfig
from srft.data.pairs import PreferencePair
from srft.data.sft import SFTCollator, SFTExample, encode_sft
from srft.distributed import all_gather, all_sum, barrier, is_main, rank, share, world_size
from srft.errors import SrftError
from srft.models.lora import is_lora, load_adapter_weights, save_merged
from srft.models.sharding import (
    full_state_dict,
    is_fsdp_sharded,
    is_sharded,
    load_module_state,
    load_optimizer_state,
    optimizer_state,
    part,
)
from srft.models.zero import deepspeed_enabled, prepare_deepspeed_for, rl_deepspeed_settings
from srft.rl.advantages import gae, masked_mean
from srft.rl.groups import grpo_advantages, rloo_advantages
from srft.rl.kl import (
    AdaptiveKLController,
    FixedKLController,
    entropy,
    shaped_rewards,
    token_logprobs,
)
from srft.rl.losses import (
    a2c_policy_loss,
    clipped_value_loss,
    dpo_loss,
    grpo_policy_loss,
    ppo_policy_loss,
)
from srft.rl.measure import PolicySampler
from srft.rl.policy import PolicyWithValue
from srft.rl.reductions import mean_over_processes, rollout_metrics, whiten_over_processes
from srft.rl.rewards import NonFiniteReward
from srft.rl.rollout import (
    ReferenceLogits,
    RewardFunction,
    ScoredSample,
    position_ids,
    reference_forward,
    sample_and_score,
)


@dataclass
class Batch(ScoredSample):
    """A scored rollout with its value estimates (`values`, from the shared head or the critic)
    and the advantages and returns of GAE; tensors (batch, response_tokens)."""

    advantages: torch.Tensor
    returns: torch.Tensor


class RLEngine:
    """Trains a policy (and its value function) against a frozen reward, under the
    `rl_training` settings; `data` gives the prompt and response lengths, `compute` the
    gradient checkpointing. The adaptive KL controller moves the penalty toward `kl_aim_nats`
    (a share of the KL bound the guard and the gates enforce)."""

    def __init__(
        self,
        model: PolicyWithValue,
        tokenizer: PreTrainedTokenizerBase,
        reward_fn: RewardFunction,
        rl: RLTrainingConfig,
        data: DataConfig,
        compute: ComputeConfig,
        *,
        kl_aim_nats: float,
        seed: int,
        reference: PreTrainedModel | None = None,
        accelerator: Accelerator | None = None,
        demonstrations: Sequence[SFTExample] = (),
    ) -> None:
        self.rl = rl
        self.demonstrations = list(demonstrations)
        if rl.ptx_coef and not self.demonstrations:
            raise SrftError("rl_training.ptx_coef: the SFT loss needs demonstrations")
        self.kl_aim_nats = kl_aim_nats
        self.max_prompt_length = data.max_prompt_length
        self.max_new_tokens = data.max_response_length
        self.gradient_checkpointing = compute.gradient_checkpointing
        self.seed = seed
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.accelerator = accelerator or Accelerator()
        device = self.accelerator.device
        model.to(device)
        for module in (model.policy, model.critic):
            if module is not None:
                module.eval()  # no dropout: the old and new log-probabilities must agree
                if self.gradient_checkpointing:
                    # transformers checkpoints layers in train mode only: train mode for the
                    # update, with dropout off so it computes what eval mode would.
                    disable_dropout(module)
                    module.activation_checkpointing_enable({"use_reentrant": False})
        self.reference = reference
        if reference is not None:
            reference.to(device).eval().requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=rl.learning_rate, eps=1e-5)
        self.deepspeed = deepspeed_enabled()
        if self.deepspeed:
            prepare_deepspeed_for(
                **rl_deepspeed_settings(
                    rl.mini_batch_size,
                    rl.gradient_accumulation_steps,
                    rl.max_grad_norm,
                    world_size(),
                )
            )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.sharded = is_sharded(self.unwrapped)
        if is_fsdp_sharded(self.unwrapped):
            # The update's losses take the forward's outputs out of place only, which FSDP's
            # warning about returning views (slices of the logits and values) is about.
            warnings.filterwarnings(
                "ignore", message=r"FSDP2-wrapped module \(FSDPPolicyWithValue\) returned a view"
            )
            # sampling steps and the critic's pass gather the shards as a forward does
            for method in ("step", "critic_values"):
                register_fsdp_forward_method(self.unwrapped, method)
        self.kl_controller = kl_controller(rl, kl_aim_nats)
        self.generator = torch.Generator(device=device).manual_seed(sampler_seed(seed, rank()))
        self.steps_done = 0

    @property
    def unwrapped(self) -> PolicyWithValue:
        return self.accelerator.unwrap_model(self.model)

    @property
    def lockstep(self) -> bool:
        """Whether the processes sample only all at once (a sharded policy)."""
        return self.sharded

    @property
    def batch_size(self) -> int:
        """Responses per rollout of this process; as many prompts per batch when it samples one
        response each for measuring."""
        return self.rl.batch_size // world_size()

    @property
    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value

    # ---- rollout ------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, prompts: list[str], group_size: int = 1) -> ScoredSample:
        """`group_size` responses per prompt from the current policy (a prompt's side by side,
        from one prefill), scored (KL, entropy, reward)."""
        return sample_and_score(
            self.unwrapped,
            self.reference_logits,
            self.tokenizer,
            self.reward_fn,
            prompts,
            self.max_prompt_length,
            self.max_new_tokens,
            self.generator,
            lockstep=self.lockstep,
            group_size=group_size,
        )

    def measuring_sampler(self, seed: int) -> PolicySampler:
        """The current policy and reference as a sampler with a generator of its own, seeded
        as `srft.rl.build.build_sampler` seeds one: measuring leaves the training samples as
        they were, and it measures what a sampler of the exported policy would."""
        return PolicySampler(
            self.unwrapped,
            self.reference_logits,
            self.tokenizer,
            self.reward_fn,
            self.max_prompt_length,
            self.max_new_tokens,
            torch.Generator(device=self.generator.device).manual_seed(sampler_seed(seed, rank())),
            self.batch_size,
            lockstep=self.lockstep,
        )

    @torch.no_grad()
    def rollout(self, prompts: list[str]) -> Batch:
        """Sample, score and shape this process's `prompts`; advantages and returns by GAE,
        whitened over every process's share (GRPO, RLOO: `group_rollout`)."""
        rl = self.rl
        if rl.grouped:
            return self.group_rollout(prompts)
        scored = self.sample(prompts)
        mask = scored.mask
        values = scored.values
        if values is None:
            positions = position_ids(scored.attention_mask)
            values = self.unwrapped.critic_values(
                scored.input_ids, scored.attention_mask, positions
            )[:, -(scored.response_tokens + 1) : -1]
        log_ratio = scored.logprobs - scored.reference_logprobs
        rewards = shaped_rewards(
            scored.scores * rl.reward_scale, log_ratio, mask, self.kl_controller.coef
        )
        advantages, returns = gae(rewards, values * mask, mask, rl.gamma, rl.lam)
        if rl.whiten_advantages:
            advantages = whiten_over_processes(advantages, mask)
        return Batch(
            **{**vars(scored), "values": values * mask}, advantages=advantages, returns=returns
        )

    @torch.no_grad()
    def group_rollout(self, prompts: list[str]) -> Batch:
        """`group_size` responses to each of this process's `prompts` (a prompt's group side
        by side), scored; with the KL in the reward, a response's score loses the KL
        coefficient times its summed log-ratio to the reference. Every token of a response
        carries its advantage against its group (a group never spans processes)."""
        rl = self.rl
        scored = self.sample(prompts, rl.group_size)
        mask = scored.mask
        scores = scored.scores * rl.reward_scale
        if not rl.kl_in_loss:
            log_ratio = (scored.logprobs - scored.reference_logprobs) * mask
            scores = scores - self.kl_controller.coef * log_ratio.sum(1)
        if rl.algorithm == "GRPO":
            per_response = grpo_advantages(scores, rl.group_size, rl.scale_advantages)
        else:
            per_response = rloo_advantages(scores, rl.group_size)
        advantages = per_response[:, None] * mask
        return Batch(**vars(scored), advantages=advantages, returns=torch.zeros_like(advantages))

    @property
    def reference_logits(self) -> ReferenceLogits:
        """The frozen reference's logits: a separate copy, or the policy with its LoRA adapter
        disabled."""
        if self.reference is not None:
            return reference_forward(self.reference)
        policy = self.unwrapped.policy

        def logits(input_ids, attention_mask, positions) -> torch.Tensor:
            with policy.disable_adapter():
                return reference_forward(policy)(input_ids, attention_mask, positions)

        return logits

    # ---- update -------------------------------------------------------------------------

    def update(self, batch: Batch) -> dict[str, float]:
        """PPO, GRPO, RLOO: `ppo_epochs` passes over the batch in shuffled mini-batches. A2C:
        one pass."""
        return self._training(self._update, batch)

    def _training(self, update, *args) -> dict[str, float]:
        """`update(*args)`, in train mode when layers are checkpointed (see `__init__`)."""
        if not self.gradient_checkpointing:
            return update(*args)
        self.unwrapped.train()
        try:
            return update(*args)
        finally:
            self.unwrapped.eval()

    def _update(self, batch: Batch) -> dict[str, float]:
        rl = self.rl
        epochs = 1 if rl.algorithm == "A2C" else rl.ppo_epochs
        size = batch.input_ids.shape[0]
        mini_batch_size = rl.mini_batch_size // world_size()
        keep = batch.response_tokens + 1
        positions = position_ids(batch.attention_mask)
        found = []
        micro = 0
        for epoch in range(epochs):
            order = torch.randperm(size, generator=self.generator, device=self.generator.device)
            for start in range(0, size, mini_batch_size):
                idx = order[start : start + mini_batch_size].to(batch.input_ids.device)
                micro += 1
                last = epoch == epochs - 1 and start + mini_batch_size >= size
                sync = micro % rl.gradient_accumulation_steps == 0 or last
                found.append(self._minibatch_step(batch, idx, positions, keep, sync))
        return mean_over_minibatches(found)

    def _minibatch_step(self, batch: Batch, idx, positions, keep, sync: bool) -> dict[str, float]:
        rl = self.rl
        mask = batch.mask[idx]
        stats: dict[str, float] = {}
        with self._accumulating(sync):
            logits, values = self.model(
                batch.input_ids[idx], batch.attention_mask[idx], positions[idx], keep
            )
            logits = logits[:, :-1]
            tokens = batch.input_ids[idx][:, -batch.response_tokens :]
            logprobs = token_logprobs(logits, tokens)
            advantages = batch.advantages[idx]
            if rl.grouped:
                policy = grpo_policy_loss(
                    logprobs,
                    batch.logprobs[idx],
                    batch.reference_logprobs[idx] if rl.kl_in_loss else None,
                    advantages,
                    mask,
                    rl.clip_range,
                    self.kl_controller.coef,
                    rl.loss_aggregation,
                    self.max_new_tokens,
                )
                loss = policy.loss
                if rl.kl_in_loss:
                    stats["kl_k3_per_token_nats"] = policy.kl_to_reference
            else:
                if rl.algorithm == "PPO":
                    policy = ppo_policy_loss(
                        logprobs, batch.logprobs[idx], advantages, mask, rl.clip_range
                    )
                else:
                    policy = a2c_policy_loss(logprobs, advantages, mask)
                value_loss, stats["value_clip_fraction"] = clipped_value_loss(
                    values[:, :-1],
                    batch.values[idx],
                    batch.returns[idx],
                    mask,
                    rl.value_clip_range if rl.algorithm == "PPO" else None,
                )
                stats["value_loss"] = value_loss.item()
                loss = policy.loss + rl.vf_coef * value_loss
            if rl.entropy_bonus:
                loss = loss - rl.entropy_bonus * masked_mean(entropy(logits), mask)
            ptx = self._sft_loss(len(idx)) if rl.ptx_coef else None
            if ptx is not None:
                loss = loss + rl.ptx_coef * ptx
            self._backward(loss, sync)
        stats.update(
            policy_loss=policy.loss.item(),
            clip_fraction=policy.clip_fraction,
            approx_kl=policy.approx_kl,
        )
        if ptx is not None:
            stats["ptx_loss"] = ptx.item()
        return stats

    def _accumulating(self, sync: bool):
        """The context of a mini-batch's forward and backward: gradients kept on this process
        until the accumulation's last one (DeepSpeed accumulates as its config says,
        `rl_deepspeed_settings`)."""
        if sync or self.deepspeed:
            return nullcontext()
        return self.accelerator.no_sync(self.model)

    def _backward(self, loss: torch.Tensor, sync: bool) -> None:
        """The loss's gradients, added to the accumulation's; at its end, clipped and applied."""
        rl = self.rl
        if self.deepspeed:
            self._deepspeed_backward(loss, sync)
            return
        self.accelerator.backward(loss / rl.gradient_accumulation_steps)
        if sync:
            if rl.max_grad_norm is not None:
                self.accelerator.clip_grad_norm_(self.model.parameters(), rl.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    # ---- DPO ----------------------------------------------------------------------------

    def preference_update(self, pairs: Sequence[PreferencePair]) -> dict[str, float]:
        """DPO: one pass over this process's `pairs` in mini-batches of pairs, each pair's
        chosen and rejected response scored under the policy and the frozen reference. The
        statistics (over all processes) are TRL's: the loss, the implicit rewards
        beta x log(policy / reference) of chosen and rejected, their margin, and the share of
        pairs whose chosen reward is the larger."""
        return self._training(self._preference_update, list(pairs))

    def _preference_update(self, pairs: list[PreferencePair]) -> dict[str, float]:
        mini_batch_size = self.rl.mini_batch_size // world_size()
        found = []
        for micro, start in enumerate(range(0, len(pairs), mini_batch_size), start=1):
            sync = (
                micro % self.rl.gradient_accumulation_steps == 0
                or start + mini_batch_size >= len(pairs)
            )
            found.append(self._preference_minibatch(pairs[start : start + mini_batch_size], sync))
        return mean_over_minibatches(found)

    def _preference_minibatch(self, pairs: list[PreferencePair], sync: bool) -> dict[str, float]:
        rl = self.rl
        rows = [{"prompt": p.prompt, "completion": p.chosen} for p in pairs]
        rows += [{"prompt": p.prompt, "completion": p.rejected} for p in pairs]
        ids, attention, labels = self._collated(
            encode_sft(rows, self.tokenizer, self.max_prompt_length, self.max_new_tokens)
        )
        targets = labels[:, 1:]
        mask = (targets != -100).float()
        tokens = targets.clamp(min=0)
        positions = position_ids(attention)
        with torch.no_grad():
            reference = self.reference_logits(ids, attention, positions)[:, :-1].float()
            reference_logprobs = (token_logprobs(reference, tokens) * mask).sum(1)
        with self._accumulating(sync):
            logits, _ = self.model(ids, attention, positions, ids.shape[1])
            logits = logits[:, :-1]
            logprobs = (token_logprobs(logits, tokens) * mask).sum(1)
            n = len(pairs)
            preference = dpo_loss(
                logprobs[:n],
                logprobs[n:],
                reference_logprobs[:n],
                reference_logprobs[n:],
                self.kl_controller.coef,
            )
            loss = preference.loss
            if rl.entropy_bonus:
                loss = loss - rl.entropy_bonus * masked_mean(entropy(logits), mask)
            ptx = self._sft_loss(n) if rl.ptx_coef else None
            if ptx is not None:
                loss = loss + rl.ptx_coef * ptx
            self._backward(loss, sync)
        stats = {
            "policy_loss": preference.loss.item(),
            "rewards_chosen": preference.chosen,
            "rewards_rejected": preference.rejected,
            "rewards_margin": preference.margin,
            "rewards_accuracy": preference.accuracy,
        }
        if ptx is not None:
            stats["ptx_loss"] = ptx.item()
        return stats

    def _sft_loss(self, size: int) -> torch.Tensor:
        """The policy's mean next-token loss on the completions of `size` demonstrations drawn
        at random (this process's sampler), right-padded."""
        device = self.generator.device
        drawn = torch.randint(
            len(self.demonstrations), (size,), generator=self.generator, device=device
        )
        ids, mask, labels = self._collated([self.demonstrations[i] for i in drawn.tolist()])
        logits, _ = self.model(ids, mask, position_ids(mask), ids.shape[1])
        return torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100
        )

    def _collated(
        self, examples: list[SFTExample]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Input ids, attention mask and labels of `examples`, right-padded, on the device."""
        batch = SFTCollator(self.tokenizer.pad_token_id)(examples)
        device = self.accelerator.device
        return tuple(batch[k].to(device) for k in ("input_ids", "attention_mask", "labels"))

    def _deepspeed_backward(self, loss: torch.Tensor, sync: bool) -> None:
        """DeepSpeed's backward (the loss divided by the accumulation steps) and, at the end of
        an accumulation, its step (gradients averaged over the processes, clipped, applied)."""
        engine = self.model
        engine.set_gradient_accumulation_boundary(sync)
        engine.backward(loss)
        if sync:
            engine.step()

    def export_policy(self, directory: Path) -> None:
        """The trained policy as a plain checkpoint with its tokenizer (a LoRA adapter is merged
        in, after which the engine no longer has a reference: call this last)."""
        if self.sharded:
            state = part(full_state_dict(self.unwrapped), "policy.")
            if is_main():
                self.unwrapped.policy.save_pretrained(directory, state_dict=state)
        else:
            save_merged(self.unwrapped.policy, directory)
        if is_main():
            self.tokenizer.save_pretrained(directory)
        barrier()

    # ---- one step -----------------------------------------------------------------------

    def step(self, examples: Sequence) -> tuple[Batch | None, dict[str, float]]:
        """One rollout of the global batch's prompts (`rl_training.prompts_per_batch`; this
        process's share in the returned batch) and its update; the metrics of both, over all
        processes (with reward functions, each part's mean reward). A batch whose rewards are
        not all finite raises `NonFiniteReward` before any update. DPO: one update on the global
        batch's preference pairs, and no rollout."""
        if self.rl.offline:
            stats = {"kl_coef": self.kl_controller.coef, **self.preference_update(share(examples))}
            self.steps_done += 1
            return None, stats
        batch = self.rollout(share(examples))
        not_finite = all_sum([float((~torch.isfinite(batch.scores)).sum())])[0]
        if not_finite:
            raise NonFiniteReward(
                f"{int(not_finite)} of the batch's {self.rl.batch_size} rewards are not finite"
            )
        stats = rollout_metrics(batch.mask, batch.kl, batch.entropy, batch.scores)
        stats.update(mean_over_processes(getattr(self.reward_fn, "last_means", {})))
        stats["kl_coef"] = self.kl_controller.coef
        stats.update(self.update(batch))
        self.kl_controller.update(stats["kl_per_token_nats"], self.rl.batch_size)
        self.steps_done += 1
        return batch, stats

    # ---- state --------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """A checkpoint: the policy with `save_pretrained` (loads with plain transformers; with
        LoRA, the adapter), the value head or critic, the optimizer, the engine's counters and
        every process's sampler state. Every process calls it (a sharded model gathers its
        shards); the main one writes."""
        model = self.unwrapped
        weights = full_state_dict(model) if self.sharded else None
        if self.deepspeed:
            # each process writes its partition of the optimizer state, as DeepSpeed does, once
            # the main one has cleared the folder of an attempt that did not finish
            barrier()
            self.model.save_checkpoint(
                str(directory / DEEPSPEED_STATE),
                tag=DEEPSPEED_TAG,
                save_latest=False,
                exclude_frozen_parameters=True,
            )
            barrier()
            optimizer = None
        else:
            optimizer = optimizer_state(model, self.optimizer.optimizer)
        generators = all_gather(self.generator.get_state())
        if not is_main():
            return
        directory.mkdir(parents=True, exist_ok=True)

        # a sharded model's submodules are saved from the gathered weights
        gathered = {} if weights is None else {n: part(weights, f"{n}.") for n in SUBMODULES}
        model.policy.save_pretrained(directory / "model", state_dict=gathered.get("policy"))
        self.tokenizer.save_pretrained(directory / "model")
        if model.value_head is not None:
            head = gathered.get("value_head") or model.value_head.state_dict()
            save_file(
                {k: v.contiguous() for k, v in head.items()}, directory / "value_head.safetensors"
            )
        if model.critic is not None:
            model.critic.save_pretrained(directory / "critic", state_dict=gathered.get("critic"))
        if optimizer is not None:
            torch.save(optimizer, directory / "optimizer.pt")
        state = {
            "steps_done": self.steps_done,
            "kl_coef": self.kl_controller.coef,
            "learning_rate": self.learning_rate,
            "rl_training": self.rl.model_dump(mode="json"),
            "kl_aim_nats": self.kl_aim_nats,
            "processes": len(generators),
            "deepspeed": self.deepspeed,
        }
        (directory / "engine.json").write_text(json.dumps(state, indent=2))
        save_file(
            {_generator_key(r): state for r, state in enumerate(generators)},
            directory / "rng.safetensors",
        )

    def load_weights(self, directory: Path) -> None:
        """Put the policy (and critic) weights of a checkpoint back, in place (under DeepSpeed,
        `load_state` puts them back with the rest)."""
        if self.deepspeed:
            return
        model = self.unwrapped
        if is_lora(model.policy):
            load_adapter_weights(model.policy, directory / "model")
        else:
            _load_safetensors_dir(model.policy, directory / "model")
        if model.critic is not None:
            _load_safetensors_dir(model.critic, directory / "critic")

    def load_state(self, directory: Path) -> dict[str, Any]:
        """Restore what `save` wrote besides the policy and critic weights (loaded by the
        caller when it built the model): value head, optimizer, counters, sampler state."""
        state = json.loads((directory / "engine.json").read_text())
        if self.deepspeed:
            self._load_deepspeed_state(directory, state)
        else:
            self._load_optimizer_state(directory)
        self.steps_done = state["steps_done"]
        self.kl_controller.coef = state["kl_coef"]
        self.learning_rate = state["learning_rate"]
        generators = load_file(directory / "rng.safetensors")
        key = _generator_key(rank())
        if key in generators:
            self.generator.set_state(generators[key])
        else:  # a process the checkpoint's run did not have: a sampler of its own
            self.generator.manual_seed(sampler_seed(self.seed, rank()) + self.steps_done)
        return state

    def _load_optimizer_state(self, directory: Path) -> None:
        model = self.unwrapped
        if not (directory / "optimizer.pt").exists():
            raise SrftError(
                f"{directory} was written under compute.strategy: deepspeed, whose optimizer "
                "state resumes under deepspeed only; resume with that strategy, or remove the "
                "stage's folder to train it anew"
            )
        if model.value_head is not None:
            head = load_file(directory / "value_head.safetensors")
            load_module_state(model, {f"value_head.{k}": v for k, v in head.items()})
        # on the CPU first: every process would otherwise put its copy where the main one saved
        # it; loading moves the state to the parameters' device
        saved = torch.load(directory / "optimizer.pt", map_location="cpu", weights_only=True)
        load_optimizer_state(model, self.optimizer.optimizer, saved)

    def _load_deepspeed_state(self, directory: Path, state: dict[str, Any]) -> None:
        """DeepSpeed's own checkpoint: the trained weights, each process's partition of the
        optimizer state and its full-precision weights; it loads over the processes that
        wrote it."""
        wrote = "deepspeed" if state.get("deepspeed") else "ddp or fsdp"
        if wrote != "deepspeed" or state["processes"] != world_size():
            raise SrftError(
                f"{directory} was written under {wrote} on {state['processes']} processes, and "
                f"this run trains under deepspeed on {world_size()}: a DeepSpeed checkpoint "
                "resumes on the number of processes that wrote it; resume with those, or "
                "remove the stage's folder to train it anew"
            )
        self.model.load_checkpoint(
            str(directory / DEEPSPEED_STATE),
            tag=DEEPSPEED_TAG,
            load_module_strict=False,  # frozen weights (under LoRA) are the policy's own
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
        )


#: DeepSpeed's checkpoint inside an RL checkpoint: its folder and tag
DEEPSPEED_STATE, DEEPSPEED_TAG = "deepspeed", "state"

#: the parts of `PolicyWithValue` a checkpoint saves
SUBMODULES = ("policy", "value_head", "critic")


def kl_controller(
    rl: RLTrainingConfig, kl_aim_nats: float
) -> FixedKLController | AdaptiveKLController:
    """The KL coefficient's controller: DPO's beta, fixed; the online algorithms' kl_penalty,
    adapted toward `kl_aim_nats` with `adaptive_kl`."""
    if rl.offline:
        return FixedKLController(rl.beta)
    if rl.adaptive_kl:
        return AdaptiveKLController(rl.kl_penalty, kl_aim_nats, rl.kl_horizon)
    return FixedKLController(rl.kl_penalty)


def mean_over_minibatches(stats: list[dict[str, float]]) -> dict[str, float]:
    """Each statistic's mean over an update's mini-batches, then over the processes."""
    return mean_over_processes({key: statistics.fmean(s[key] for s in stats) for key in stats[0]})


def sampler_seed(seed: int, process: int) -> int:
    """The seed of a process's sampler: `seed` itself for the main process, so that one
    process samples as it always has, and apart for each other process."""
    return seed + 7919 * process


def _generator_key(process: int) -> str:
    return "generator" if process == 0 else f"generator-{process}"


def _load_safetensors_dir(model: torch.nn.Module, directory: Path) -> None:
    state: dict[str, torch.Tensor] = {}
    for file in sorted(directory.glob("*.safetensors")):
        state.update(load_file(file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # save_pretrained leaves out weights tied to another (the LM head to the embeddings).
    pointers: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        pointers[param.data_ptr()] = pointers.get(param.data_ptr(), 0) + 1
    params = dict(model.named_parameters(remove_duplicate=False))
    untied = [name for name in missing if name in params and pointers[params[name].data_ptr()] < 2]
    if unexpected or untied:
        raise RuntimeError(f"checkpoint {directory} does not match the model")


def disable_dropout(model: torch.nn.Module) -> None:
    """Zero every dropout probability: dropout modules and attention dropout attributes."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
