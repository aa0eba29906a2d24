"""ATTEMPT (Asai et al., EMNLP 2022, arXiv 2205.11961): attentional mixtures of soft prompts.

Per example with input embeddings X [n, d] of target task k (Sec. 3.2, Eq. 3-4):

    X̂ = maxpool(X)  (real tokens only)            P̂_j = maxpool(P_j)         [d]
    H  = LayerNorm(W_up SiLU(W_down X̂))                                       [d]
    a_j = softmax_j(P̂_j · H / T),  j ∈ sources ∪ {target k},  T = d·e        (Eq. 3)
    P_instance = P_k + Σ_j a_j P_j          (P_k enters with weight 1 + a_k)  (Eq. 4)

Variants (``AttemptConfig.attention``):
  ``instance``  Eq. 3-4 as above; attention [B, t+1] (sources in order, target last).
  ``token``     Appendix A.5 (Eq. 5): one score per prompt position l,
                a_{j,l} = softmax_j(P_{j,l} · H / T) and token l of P_instance is
                P_{k,l} + Σ_j a_{j,l} P_{j,l}; attention [B, t+1, m].
  ``constant``  the "no attention" ablation (Table 4): no G; a_j = 1/t for every source and
                a_target = 0, so P_instance = P_k + (1/t) Σ_{sources} P_j; attention [B, t+1].
``use_target=False`` is the "no target" ablation: no P_k in Eq. 4, the softmax runs over the
sources only (attention [B, t] / [B, t, m]) and only G trains. One source (t = 1) is the
"single prompt" ablation.

Trainable: the target prompts P_k (one [T, m, d] parameter) and G (W_down, W_up and the
LayerNorm's weight and bias; optionally log T). G is one module shared by every target task
(ATTEMPT-m) or one per task, stored stacked ([n_G, r, d] ...) and gathered per example so a
batch may mix tasks either way: N·m·d + 2d(r + 1) trainable parameters for N tasks and a shared
G (231,936 for one task at m = r = 100, d = 768). Frozen: the source prompts, a persistent buffer
[t, m, d] (saved in the state dict, never given to an optimizer).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput, masked_max_pool

ATTENTION_CHOICES = ("instance", "token", "constant")
G_PARAMS = ("down_proj", "up_proj", "ln_weight", "ln_bias")
TARGET_PROMPT = "target"  # the name attention reports a task's own prompt under


@dataclass
class AttemptConfig(MethodConfig):
    """ATTEMPT: the attention module G and the variant of Eq. 3-4."""

    method: ClassVar[str] = "attempt"
    attn_dim: int = field(default=100, metadata={"help": "r: width of G's bottleneck (W_down: d -> r, W_up: r -> d)"})
    attention: str = field(
        default="instance",
        metadata={
            "help": "'instance' (Eq. 3), 'token' (App. A.5, one weight per prompt position) or 'constant' "
            "(the no-attention ablation: a_j = 1/t, no G)"
        },
    )
    shared_attention: bool = field(
        default=True, metadata={"help": "one G shared by all target tasks (ATTEMPT-m) instead of one G per task"}
    )
    use_target: bool = field(
        default=True,
        metadata={"help": "False: the no-target ablation (no P_target in Eq. 4, softmax over the sources only)"},
    )
    temperature: float | None = field(
        default=None, metadata={"help": "softmax temperature T of Eq. 3; None: d·e (2087.9 at d = 768)"}
    )
    learn_temperature: bool = field(default=False, metadata={"help": "train log T (starting from temperature) with G"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attn_dim < 1:
            raise ValueError(f"attn_dim must be >= 1, got {self.attn_dim}")
        if self.attention not in ATTENTION_CHOICES:
            raise ValueError(f"attention must be one of {ATTENTION_CHOICES}, got {self.attention!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (or None for d·e), got {self.temperature}")
        if self.attention == "constant" and self.learn_temperature:
            raise ValueError("attention='constant' has no softmax, so no temperature to learn")
        if self.attention == "constant" and not self.use_target:
            raise ValueError("attention='constant' with use_target=False leaves nothing to train")

    def parameter_counts(self, hidden_size: int, num_tasks: int) -> dict[str, int]:
        """Target prompts N·m·d; G: W_down and W_up (d·r each, no biases) and the LayerNorm (2d),
        once (shared) or per task; log T when learned. Source prompts are buffers, not counted."""
        d, r = hidden_size, self.attn_dim
        counts = {"target_prompts": num_tasks * self.prompt_length * d} if self.use_target else {}
        if self.attention != "constant":
            copies = 1 if self.shared_attention else num_tasks
            counts.update(
                {
                    "attention.down": copies * d * r,
                    "attention.up": copies * r * d,
                    "attention.layer_norm": copies * 2 * d,
                }
            )
            if self.learn_temperature:
                counts["attention.temperature"] = 1
        return counts


class Attempt(PromptMethod):
    """Instance prompts mixed from frozen source prompts and a trainable target prompt.

    Args:
        config: prompt length m, r, variant, temperature.
        hidden_size: d, the backbone's embedding width.
        tasks: the target tasks, in task-id order.
        source_names: the frozen source prompts P_1..P_t, in the order attention reports them.

    Target prompts and source prompts start at zero: fill them (``set_source_prompts``,
    ``init_target_from`` / ``set_prompt``) or load a state dict. G starts like nn.Linear
    (Kaiming-uniform W_down, W_up) with LayerNorm weight 1, bias 0.

    Shapes: ``source_prompts`` buffer [t, m, d]; ``prompts`` [T, m, d]; ``down_proj``
    [n_G, r, d]; ``up_proj`` [n_G, d, r]; ``ln_weight``, ``ln_bias`` [n_G, d] with n_G = 1
    (shared) or T. ``forward`` returns prompts [B, m, d] and attention [B, k] ('token':
    [B, k, m]), k = t + 1 (t without target), sources in order then the target.

    Example::

        method = Attempt.from_prompts({"mnli": p_mnli, "sst2": p_sst2}, tasks=["rte", "cb"],
                                      init_from="mnli", attn_dim=100)
        out = method(embeds, mask, method.task_ids_for(["rte", "cb"]))
        out.attention  # [2, 3]: a_mnli, a_sst2, a_target per example
    """

    config_class = AttemptConfig
    config: AttemptConfig
    # Registered by name in __init__ (register_buffer / register_parameter):
    source_prompts: Tensor
    prompts: nn.Parameter | None  # None without target prompts (use_target=False)
    log_temperature: nn.Parameter | None  # None unless the temperature is learned

    def __init__(
        self, config: AttemptConfig, hidden_size: int, tasks: Sequence[str] = (), source_names: Sequence[str] = ()
    ) -> None:
        super().__init__(config, hidden_size, tasks)
        self._source_names = _checked_source_names(source_names)
        t, n_tasks, m, d = len(self._source_names), len(self.task_names), config.prompt_length, hidden_size
        self.register_buffer("source_prompts", torch.zeros(t, m, d))
        self.register_parameter("prompts", nn.Parameter(torch.zeros(n_tasks, m, d)) if config.use_target else None)
        if config.attention == "constant":
            for name in G_PARAMS:
                self.register_parameter(name, None)
        else:
            down, up, ln_weight, ln_bias = self._fresh_g(1 if config.shared_attention else n_tasks)
            self.down_proj, self.up_proj = nn.Parameter(down), nn.Parameter(up)
            self.ln_weight, self.ln_bias = nn.Parameter(ln_weight), nn.Parameter(ln_bias)
        log_t = torch.tensor(math.log(config.temperature or d * math.e))
        self.register_parameter("log_temperature", nn.Parameter(log_t) if config.learn_temperature else None)

    def _fresh_g(self, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """n new Gs: W_down [n, r, d], W_up [n, d, r] as nn.Linear inits them, LN weight 1, bias 0."""
        r, d = self.config.attn_dim, self.hidden_size
        down, up = torch.empty(n, r, d), torch.empty(n, d, r)
        for i in range(n):
            nn.init.kaiming_uniform_(down[i], a=math.sqrt(5))  # nn.Linear.reset_parameters
            nn.init.kaiming_uniform_(up[i], a=math.sqrt(5))
        return down, up, torch.ones(n, d), torch.zeros(n, d)

    # -- the interface -------------------------------------------------------------------------
    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor, task_ids: Tensor) -> PromptOutput:
        self.check_task_ids(task_ids)
        dtype = self.source_prompts.dtype
        target = self.prompts[task_ids] if self.prompts is not None else None  # [B, m, d]
        if self.config.attention == "constant":
            attention = self._constant_attention(task_ids.shape[0])
        else:
            h = self._query(inputs_embeds.to(dtype), attention_mask, task_ids)  # [B, d]
            attention = self._attention(h, target)
        prompts = self._interpolate(attention, target)
        return PromptOutput(prompts=prompts.to(inputs_embeds.dtype), attention=attention)

    def attention_names(self, task: str) -> list[str]:
        """The source prompts in order, then ``"target"`` (the task's own prompt; absent in the
        no-target ablation), for every task."""
        return [*self._source_names, TARGET_PROMPT] if self.config.use_target else list(self._source_names)

    def to_config(self) -> dict[str, Any]:
        return {**super().to_config(), "source_names": self.source_names}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {}
        if self.prompts is not None:
            groups["prompts"] = [self.prompts]
        if self.config.attention != "constant":
            extra = [self.log_temperature] if self.log_temperature is not None else []
            groups["attention"] = [self.down_proj, self.up_proj, self.ln_weight, self.ln_bias, *extra]
        return groups

    # -- Eq. 3-4 -------------------------------------------------------------------------------
    @property
    def temperature(self) -> Tensor | float:
        """T of Eq. 3 (a tensor when learned)."""
        if self.log_temperature is not None:
            return self.log_temperature.exp()
        return self.config.temperature or self.hidden_size * math.e

    def _query(self, embeds: Tensor, mask: Tensor, task_ids: Tensor) -> Tensor:
        """H = LayerNorm(W_up SiLU(W_down X̂)) [B, d], each example through its task's G."""
        x = masked_max_pool(embeds, mask)  # [B, d]; padding never wins the max
        if self.config.shared_attention:
            h = F.linear(F.silu(F.linear(x, self.down_proj[0])), self.up_proj[0])
            weight, bias = self.ln_weight[0], self.ln_bias[0]
        else:
            h = torch.einsum("brd,bd->br", self.down_proj[task_ids], x)
            h = torch.einsum("bdr,br->bd", self.up_proj[task_ids], F.silu(h))
            weight, bias = self.ln_weight[task_ids], self.ln_bias[task_ids]
        return F.layer_norm(h, (self.hidden_size,)) * weight + bias

    def _attention(self, h: Tensor, target: Tensor | None) -> Tensor:
        """Eq. 3 (or Eq. 5 for 'token'): softmax over [sources..., target] -> [B, k] / [B, k, m]."""
        sources = self.source_prompts  # [t, m, d]
        if self.config.attention == "token":
            logits = torch.einsum("bd,tmd->btm", h, sources)  # P_{j,l} · H
            if target is not None:
                logits = torch.cat([logits, torch.einsum("bd,bmd->bm", h, target).unsqueeze(1)], dim=1)
        else:
            logits = h @ sources.amax(dim=1).T  # [B, t]: P̂_j · H
            if target is not None:
                logits = torch.cat([logits, (h * target.amax(dim=1)).sum(-1, keepdim=True)], dim=1)
        return torch.softmax(logits / self.temperature, dim=1)

    def _constant_attention(self, batch: int) -> Tensor:
        """The no-attention ablation: 1/t for each source, 0 for the target -> [B, t+1]."""
        t = self.source_prompts.shape[0]
        row = torch.cat([torch.full((t,), 1.0 / t), torch.zeros(1)]).to(self.source_prompts)
        return row.repeat(batch, 1)

    def _interpolate(self, attention: Tensor, target: Tensor | None) -> Tensor:
        """Eq. 4: P_target + Σ_{j ∈ sources ∪ {target}} a_j P_j (per token for 'token') -> [B, m, d]."""
        t, m = self.source_prompts.shape[:2]
        weights = attention if attention.dim() == 3 else attention.unsqueeze(-1).expand(-1, -1, m)  # [B, k, m]
        mixed = torch.einsum("btm,tmd->bmd", weights[:, :t], self.source_prompts)
        if target is not None:
            mixed = mixed + (1 + weights[:, t]).unsqueeze(-1) * target
        return mixed

    # -- prompts -------------------------------------------------------------------------------
    @property
    def source_names(self) -> list[str]:
        return list(self._source_names)

    def source_id(self, name: str) -> int:
        names = self._source_names
        if name not in names:
            near = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {near}?" if near else ""
            raise KeyError(f"no source prompt {name!r}; this ATTEMPT model holds {names}{hint}")
        return names.index(name)

    def set_source_prompts(self, names: Sequence[str], prompts: Tensor) -> None:
        """Replace the frozen source prompts: ``prompts`` [t, m, d], row j named ``names[j]``.

        G's shapes do not depend on t, so sources may be added or removed (Sec. 3.3's
        modularity) and a trained G keeps working.
        """
        names = _checked_source_names(names)
        if prompts.dim() != 3 or prompts.shape[0] != len(names):
            raise ValueError(
                f"need one [m, d] prompt per source name: {len(names)} names, prompts of shape {tuple(prompts.shape)}"
            )
        for name, value in zip(names, prompts):
            self.check_prompt(f"source prompt {name!r}", value)
        self.source_prompts = prompts.detach().to(self.source_prompts).clone()
        self._source_names = names

    def _require_targets(self) -> nn.Parameter:
        if self.prompts is None:
            raise ValueError("this ATTEMPT model has no target prompts (use_target=False)")
        return self.prompts

    def set_prompt(self, task: str, value: Tensor) -> None:
        """Overwrite task ``task``'s target prompt with ``value`` [m, d]."""
        prompts = self._require_targets()
        self.check_prompt(f"target prompt for {task!r}", value)
        with torch.no_grad():
            prompts[self.task_id(task)] = value.to(prompts)

    def init_target_from(self, task: str, source_name: str) -> None:
        """P_target(task) := a copy of source prompt ``source_name`` (Sec. 4: MNLI, or SQuAD for QA)."""
        self.set_prompt(task, self.source_prompts[self.source_id(source_name)])

    def task_prompt(self, task: str) -> Tensor:
        """Task ``task``'s target prompt P_k as a plain [m, d] tensor (detached)."""
        return self._require_targets()[self.task_id(task)].detach().clone()

    def add_task(self, task: str, value: Tensor | str | None = None) -> None:
        """Append a target task. ``value``: its initial prompt [m, d] or the name of a source
        prompt to copy (required with target prompts, refused without). With per-task G the
        task also gets a fresh G (nn.Linear init; ``load_attention_prior(state, task)``)."""
        if task in self.task_names:
            raise ValueError(f"task {task!r} already has a prompt")
        if (value is None) == self.config.use_target:
            raise ValueError(f"add_task({task!r}): give an initial prompt or source name exactly when use_target=True")
        if isinstance(value, str):
            value = self.source_prompts[self.source_id(value)]
        if value is not None:
            self.check_prompt(f"target prompt for {task!r}", value)
            self.prompts = _grown(self._require_targets(), value.detach().unsqueeze(0))
        if self.config.attention != "constant" and not self.config.shared_attention:
            for name, fresh in zip(G_PARAMS, self._fresh_g(1)):
                setattr(self, name, _grown(getattr(self, name), fresh))
        self._new_task(task)

    # -- G: attention prior --------------------------------------------------------------------
    def attention_state(self) -> dict[str, Tensor]:
        """G's tensors (detached copies): down_proj [n_G, r, d], up_proj [n_G, d, r], ln_weight,
        ln_bias [n_G, d] (and log_temperature when learned)."""
        if self.config.attention == "constant":
            raise ValueError("attention='constant' has no attention module G")
        names = G_PARAMS + (("log_temperature",) if self.log_temperature is not None else ())
        return {name: getattr(self, name).detach().clone() for name in names}

    def load_attention_prior(self, state: Mapping[str, Tensor], task: str | None = None) -> None:
        """Initialise G from a G trained elsewhere (the attention prior, App. A.1-A.2).

        ``state`` as :meth:`attention_state` returns it; unstacked tensors ([r, d], ...) are
        accepted. One G is copied into every G of this model (or only ``task``'s, per-task G);
        a stack of n_G Gs must match this model's n_G. log_temperature is loaded when both
        sides learn it.
        """
        if self.config.attention == "constant":
            raise ValueError("attention='constant' has no attention module G to initialise")
        missing = [name for name in G_PARAMS if name not in state]
        if missing:
            raise KeyError(f"attention prior lacks {missing}; it has {sorted(state)}")
        if task is not None and self.config.shared_attention:
            raise ValueError("this model's G is shared by all tasks; load the prior without task=")
        rows = slice(None) if task is None else slice(self.task_id(task), self.task_id(task) + 1)
        with torch.no_grad():
            for name in G_PARAMS:
                param, value = getattr(self, name), state[name]
                value = value.unsqueeze(0) if value.dim() == param.dim() - 1 else value
                n_rows = param[rows].shape[0]
                if value.shape[1:] != param.shape[1:] or value.shape[0] not in (1, n_rows):
                    raise ValueError(
                        f"attention prior {name!r} has shape {tuple(value.shape)}, "
                        f"this model's is {tuple(param[rows].shape)} "
                        f"(attn_dim {self.config.attn_dim}, d {self.hidden_size})"
                    )
                param[rows] = value.to(param).expand_as(param[rows])
            if self.log_temperature is not None and "log_temperature" in state:
                self.log_temperature.copy_(state["log_temperature"])

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_prompts(
        cls,
        source_prompts: Mapping[str, Tensor],
        tasks: Sequence[str],
        init_from: str | Mapping[str, str] | None = None,
        config: AttemptConfig | None = None,
        **fields: Any,
    ) -> Attempt:
        """A ready ATTEMPT model: frozen ``source_prompts`` ({name: [m, d]}), one target prompt
        per task in ``tasks``, each a copy of source ``init_from`` (one name for all, or
        {task: source name}). ``config`` (default ``AttemptConfig()``) with ``fields`` replaced;
        m and d come from the first source prompt."""
        names = list(source_prompts)
        if not names:
            raise ValueError("from_prompts needs at least one source prompt")
        first = source_prompts[names[0]]
        config = dataclasses.replace(config or AttemptConfig(), **{"prompt_length": int(first.shape[0]), **fields})
        method = cls(config, int(first.shape[-1]), tasks, names)
        for name in names:
            method.check_prompt(f"source prompt {name!r}", source_prompts[name])
        method.set_source_prompts(names, torch.stack([source_prompts[n].detach().float() for n in names]))
        if not config.use_target:
            if init_from is not None:
                raise ValueError("use_target=False: there is no target prompt to initialise (init_from)")
            return method
        chosen = dict(init_from) if isinstance(init_from, Mapping) else {task: init_from for task in tasks}
        missing = [task for task in tasks if chosen.get(task) is None]
        if missing:
            raise ValueError(f"no init_from source for target task(s) {missing}; sources: {names}")
        for task in tasks:
            source = chosen[task]
            assert source is not None  # none is missing (above)
            method.init_target_from(task, source)
        return method


def _checked_source_names(names: Sequence[str]) -> list[str]:
    names = list(names)
    if not names:
        raise ValueError("ATTEMPT needs at least one source prompt; source_names is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    return names


def _grown(param: nn.Parameter, rows: Tensor) -> nn.Parameter:
    """``param`` with ``rows`` appended along dim 0, as a new parameter (rebuild optimizers)."""
    return nn.Parameter(torch.cat([param.detach(), rows.to(param)]), requires_grad=param.requires_grad)
