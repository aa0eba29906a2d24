"""Training step time and peak memory: promptmix methods against PEFT and the frozen-model limit.

    python benchmarks/train_speed.py --smoke                       # seconds: tiny T5 and memory
    python benchmarks/train_speed.py --backbone t5-small --batch 8  # random weights, real tokenizer
    python benchmarks/train_speed.py --backbone t5-base --batch 4
    python benchmarks/train_speed.py --backbone smollm2-135m --batch 4
    python benchmarks/train_speed.py --backbone t5-small --batch 32 --input-length 256   # the papers' shape
    python benchmarks/train_speed.py --backbone t5-base --batch 32 --input-length 256 --device cuda --precision bf16
    bash benchmarks/gpu.sh                       # the GPU matrix (T5-base/large, fp32/bf16, SDPA/eager, compile)

On a GPU (``--device cuda``) add ``--precision bf16`` (autocast around the forward; weights stay
fp32, as Accelerate's mixed precision does), ``--attn eager|sdpa|flex_attention`` and
``--compile`` (``torch.compile`` of the frozen backbone). The FLOPs of one ``limit`` step are
counted with ``torch.utils.flop_counter`` (frozen weights: the backward computes gradients of
activations only, about as many FLOPs as the forward); each variant's ``TFLOP/s`` is that work
over its step time, ``% peak`` its share of the device's dense bf16 peak (``--peak-tflops``,
looked up for H100/H200/A100).

A step is forward + backward + Adam step on the trainable parameters, the frozen backbone in
eval mode (dropout off) for every variant alike. Every row of the batch is a full-length
input (no padding) of ``--input-length`` tokens behind ``--prompt-length`` prompt slots;
encoder-decoder targets are ``--target-length`` tokens, decoder-only inputs end in that many
label tokens. Variants:

  limit            bare frozen forward + backward over (prompt + input) input embeddings, no
                   prompt module and no optimizer: the floor any prompt method sits on.
                   Decoder-only: LM head at label positions only, as promptmix does.
  limit-all-logits decoder-only only: the bare model with HF ``labels=`` (LM head at every
                   position), the floor for PEFT.
  pm-pt / peft-pt  prompt tuning, one task (PEFT: ``num_transformer_submodules=1``).
  pm-attempt       ATTEMPT, one target task, 6 frozen source prompts, r = 100.
  pm-attempt-m     ATTEMPT-m, 8 target tasks mixed in each batch, one shared G.
  pm-mpt-m / peft-mpt-m  MPT over 8 tasks mixed in each batch, rank 1 (PEFT MultitaskPromptTuning).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import interleaved_times, load_backbone, machine_line, peak_rss_growth_mib, ratio  # noqa: E402

from promptmix.backbone import IGNORE_INDEX, Backbone, PromptedModel  # noqa: E402
from promptmix.prompts import SoftPrompt, SoftPromptConfig  # noqa: E402
from promptmix.prompts.attempt import Attempt  # noqa: E402
from promptmix.prompts.mpt import MPT  # noqa: E402

NUM_SOURCES, NUM_TASKS = 6, 8
VARIANTS = ("limit", "limit-all-logits", "pm-pt", "peft-pt", "pm-attempt", "pm-attempt-m", "pm-mpt-m", "peft-mpt-m")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny T5, tiny shapes: seconds")
    p.add_argument("--backbone", default=None, help="tiny, t5-small, t5-base (random weights) or smollm2-135m")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--prompt-length", type=int, default=None)
    p.add_argument("--input-length", type=int, default=None)
    p.add_argument("--target-length", type=int, default=3)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (median reported)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--no-memory", action="store_true", help="skip the per-variant memory subprocesses")
    p.add_argument("--memory-steps", type=int, default=2)
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast around the forward")
    p.add_argument("--attn", default=None, help="attention implementation: eager, sdpa (the default), flex_attention")
    p.add_argument("--compile", action="store_true", help="torch.compile the frozen backbone")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the device (default: looked up)")
    args = p.parse_args(argv)
    smoke = args.smoke
    args.backbone = args.backbone or ("tiny" if smoke else "t5-small")
    args.batch = args.batch or (2 if smoke else 8)
    args.prompt_length = args.prompt_length or (4 if smoke else 100)
    args.input_length = args.input_length or (8 if smoke else 128)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 2)
    args.repeats = args.repeats or (2 if smoke else 5)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {VARIANTS}")
    return args


def make_batch(backbone: Backbone, args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Full-length random token rows; task ids cycle over NUM_TASKS for the multi-task variants."""
    gen = torch.Generator().manual_seed(0)
    B, n, t = args.batch, args.input_length, args.target_length
    vocab = backbone.model.config.vocab_size
    ids = torch.randint(100, min(vocab, 30000), (B, n), generator=gen)
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones(B, n, dtype=torch.long),
        "task_ids": torch.arange(B) % NUM_TASKS,
    }
    if backbone.is_encoder_decoder:
        batch["labels"] = torch.randint(100, min(vocab, 30000), (B, t), generator=gen)
    else:
        labels = torch.full((B, n), IGNORE_INDEX)
        labels[:, -t:] = ids[:, -t:]
        batch["labels"] = labels
    return {k: v.to(args.device) for k, v in batch.items()}


def autocast(args: argparse.Namespace):
    """bf16 autocast around a forward (a no-op context in fp32)."""
    return torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=args.precision == "bf16")


def adam_step(
    params: list[torch.nn.Parameter], loss_fn: Callable[[], torch.Tensor], args: argparse.Namespace
) -> Callable[[], None]:
    opt = torch.optim.Adam(params, lr=0.3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(args):
            loss = loss_fn()
        loss.backward()
        opt.step()

    return step


def promptmix_step(
    backbone: Backbone, method, batch: dict, multi: bool, args: argparse.Namespace
) -> Callable[[], None]:
    model = PromptedModel(backbone, method.to(args.device))
    kwargs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    task_ids = batch["task_ids"] if multi else torch.zeros_like(batch["task_ids"])
    params = [p for group in method.param_groups().values() for p in group if p.requires_grad]
    return adam_step(params, lambda: model(**kwargs, task_ids=task_ids).loss, args)


def promptmix_methods(d: int, m: int, std: float) -> dict[str, Callable[[], object]]:
    gen = torch.Generator().manual_seed(1)
    sources = {f"source{i}": torch.randn(m, d, generator=gen) * std for i in range(NUM_SOURCES)}
    tasks = [f"task{i}" for i in range(NUM_TASKS)]
    return {
        "pm-pt": lambda: SoftPrompt(SoftPromptConfig(prompt_length=m), d, tasks[:1]),
        "pm-attempt": lambda: Attempt.from_prompts(sources, tasks[:1], init_from="source0", attn_dim=100),
        "pm-attempt-m": lambda: Attempt.from_prompts(sources, tasks, init_from="source0", attn_dim=100),
        "pm-mpt-m": lambda: MPT.from_teachers(
            {t: sources[f"source{i % NUM_SOURCES}"] for i, t in enumerate(tasks)}, sources["source0"]
        ),
    }


def peft_step(backbone: Backbone, batch: dict, args: argparse.Namespace, multitask: bool) -> Callable[[], None]:
    import copy

    from peft import MultitaskPromptTuningConfig, PromptTuningConfig, get_peft_model

    config = backbone.model.config
    common = dict(
        task_type="SEQ_2_SEQ_LM" if backbone.is_encoder_decoder else "CAUSAL_LM",
        num_virtual_tokens=args.prompt_length,
        num_transformer_submodules=1,
        token_dim=backbone.hidden_size,
        num_attention_heads=config.num_attention_heads if hasattr(config, "num_attention_heads") else config.num_heads,
        num_layers=config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.num_layers,
    )
    peft_config = (
        MultitaskPromptTuningConfig(**common, num_tasks=NUM_TASKS, num_ranks=1)
        if multitask
        else PromptTuningConfig(**common)
    )
    # PEFT wraps (and marks) the model it is given: give it its own shallow copy of the module
    # tree; the weight tensors stay shared with the other variants.
    model = get_peft_model(copy.copy(backbone.model), peft_config).to(args.device)
    model.eval()
    kwargs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    if multitask:
        kwargs["task_ids"] = batch["task_ids"]
    params = [p for p in model.parameters() if p.requires_grad]
    return adam_step(params, lambda: model(**kwargs).loss, args)


def limit_step(backbone: Backbone, batch: dict, args: argparse.Namespace, all_logits: bool) -> Callable[[], None]:
    """Bare frozen forward + backward over prompt + input embeddings (a leaf tensor)."""
    model, m = backbone.model, args.prompt_length
    B = batch["input_ids"].shape[0]
    with torch.no_grad():
        embeds = model.get_input_embeddings()(batch["input_ids"])
    embeds = torch.cat([embeds.new_zeros(B, m, embeds.shape[-1]).normal_(), embeds], 1).requires_grad_(True)
    mask = torch.ones(B, embeds.shape[1], dtype=torch.long, device=embeds.device)
    labels = batch["labels"]
    if backbone.is_encoder_decoder:
        loss_fn = lambda: model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss  # noqa: E731
    else:
        labels = torch.cat([labels.new_full((B, m), IGNORE_INDEX), labels], 1)
        if all_logits:
            loss_fn = lambda: model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss  # noqa: E731
        else:

            def loss_fn() -> torch.Tensor:
                hidden = model.base_model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state
                keep = labels[:, 1:] != IGNORE_INDEX
                return F.cross_entropy(model.get_output_embeddings()(hidden[:, :-1][keep]), labels[:, 1:][keep])

    def step() -> None:
        embeds.grad = None
        with autocast(args):
            loss = loss_fn()
        loss.backward()

    return step


def build_steps(backbone: Backbone, args: argparse.Namespace, names: list[str]) -> dict[str, Callable[[], None]]:
    batch = make_batch(backbone, args)
    std = float(backbone.embeddings.std())
    methods = promptmix_methods(backbone.hidden_size, args.prompt_length, std)
    steps = {}
    for name in names:
        if name in ("limit", "limit-all-logits"):
            steps[name] = limit_step(backbone, batch, args, all_logits=name == "limit-all-logits")
        elif name in methods:
            steps[name] = promptmix_step(backbone, methods[name](), batch, name.endswith("-m"), args)
        else:
            steps[name] = peft_step(backbone, batch, args, multitask=name == "peft-mpt-m")
    return steps


PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}  # dense, SXM parts


def prepare_backbone(args: argparse.Namespace) -> Backbone:
    """The backbone on ``--device`` with the requested attention implementation."""
    backbone = load_backbone(args.backbone)
    backbone.model.to(args.device)
    if args.attn:
        backbone.model.set_attn_implementation(args.attn)
    return backbone


def limit_flops(backbone: Backbone, args: argparse.Namespace) -> float:
    """FLOPs of one bare frozen forward + backward (the ``limit`` step), counted op by op."""
    from torch.utils.flop_counter import FlopCounterMode

    step = limit_step(backbone, make_batch(backbone, args), args, all_logits=False)
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def peak_tflops(args: argparse.Namespace) -> float | None:
    if args.peak_tflops or not torch.cuda.is_available() or torch.device(args.device).type != "cuda":
        return args.peak_tflops
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def memory_child(args: argparse.Namespace) -> None:
    backbone = prepare_backbone(args)
    step = build_steps(backbone, args, [args.memory_child])[args.memory_child]
    print(json.dumps({"mib": peak_rss_growth_mib(step, args.memory_steps)}))


def measure_memory(args: argparse.Namespace, argv: list[str]) -> dict[str, float]:
    out = {}
    for name in args.variants:
        cmd = [sys.executable, __file__, *argv, "--memory-child", name]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])["mib"]
    return out


def report(
    median: dict[str, float],
    best: dict[str, float],
    memory: dict[str, float],
    causal: bool,
    flops: float,
    peak: float | None,
) -> None:
    """Ratios from the median step time, then from the fastest step (the least disturbed by
    other work on the shared cores); the backbone's TFLOP/s at the median step time."""
    print(
        f"\n{'variant':<18}{'med s':>7}{'min s':>7}{'vs limit':>9}{'vs PEFT':>8}{'vs pm-pt':>9}"
        f"{'| min: vs limit':>15}{'vs PEFT':>8}{'vs pm-pt':>9}{'peak MiB':>9}{'vs pm-pt':>9}{'TFLOP/s':>9}{'% peak':>8}"
    )
    for name in median:
        row = ""
        for sec in (median, best):
            peft = sec.get("peft-mpt-m" if "mpt" in name else "peft-pt")
            limit = sec.get("limit-all-logits") if causal and name.startswith("peft") else sec.get("limit")
            row += f"{ratio(sec[name], limit):>9}{ratio(sec[name], peft):>8}{ratio(sec[name], sec.get('pm-pt')):>9}"
            row += "  |   " if sec is median else ""
        mem = memory.get(name)
        mem_s = f"{mem:9.0f}{ratio(mem, memory.get('pm-pt')):>9}" if mem is not None else f"{'-':>9}{'-':>9}"
        tflops = flops / median[name] / 1e12
        share = f"{100 * tflops / peak:7.1f}%" if peak else f"{'-':>8}"
        print(f"{name:<18}{median[name]:7.3f}{best[name]:7.3f}{row}{mem_s}{tflops:9.3g}{share}")
    if causal:
        print("(decoder-only: 'vs limit' of peft-* is against limit-all-logits, PEFT's own floor)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return 0
    started = time.perf_counter()
    backbone = prepare_backbone(args)
    causal = not backbone.is_encoder_decoder
    names = [v for v in args.variants if causal or v != "limit-all-logits"]
    args.variants = names
    print(f"machine: {machine_line()}")
    print(
        f"backbone {backbone.name} (d={backbone.hidden_size}), batch {args.batch} x ({args.prompt_length} prompt + "
        f"{args.input_length} input) tokens, target {args.target_length}; eval mode (dropout off); "
        f"{args.warmup} warm-up + {args.repeats} timed rounds, variants interleaved"
    )
    flops = limit_flops(backbone, args)  # eager, before any compilation
    peak = peak_tflops(args)
    print(
        f"device {args.device}, {args.precision}, attention {backbone.model.config._attn_implementation}, "
        f"compile {args.compile}; one limit step = {flops / 1e12:.4g} TFLOP; bf16 peak {peak or '-'} TFLOP/s"
    )
    if args.compile:
        backbone.model.compile()  # in place: every variant calls the compiled forward
    steps = build_steps(backbone, args, names)
    times = interleaved_times(steps, args.warmup, args.repeats)
    del steps
    memory = (
        {}
        if args.no_memory
        else measure_memory(args, [a for a in argv if a != "--no-memory"] + ["--variants", ",".join(names)])
    )
    print(f"load average after timing: {', '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    report(
        {k: statistics.median(v) for k, v in times.items()},
        {k: min(v) for k, v in times.items()},
        memory,
        causal,
        flops,
        peak,
    )
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
