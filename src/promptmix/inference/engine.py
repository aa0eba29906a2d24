"""One inference engine: prepared inputs -> batches under one token budget -> ranked or generated answers.

Everything that answers with a prompted model runs through :class:`Engine`: the
:class:`~promptmix.inference.predictor.Predictor` (``promptmix predict`` and the server),
dev/test evaluation (:mod:`promptmix.inference.evaluate`, during training and ``promptmix
eval``), ATTEMPT's attention map and the demo. Training batches its own way
(:mod:`promptmix.training.data`): one batching loop per purpose.

An :class:`EngineInput` holds an input's source ids once and, when its answer is ranked, each
candidate's answer ids (:func:`prepare_input`; which answers are ranked is
:meth:`Task.answer_candidates`'s decision, in one place). :meth:`Engine.run` sorts inputs by width, cuts batches
of at most ``max_batch_size`` inputs and ``token_budget`` rows × padded tokens (prompt included,
so one long input does not make a batch of short ones expensive), scores ranked inputs with
:func:`promptmix.scoring.rank_candidates` and generates the rest with
:func:`promptmix.scoring.generate_scored`; an out-of-memory error halves the budget and retries.
Each answer comes back as a :class:`Prediction` (what the server sends, field for field),
parsed by the input's task where the engine was given it.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from promptmix.backbone import Backbone, PromptedModel
from promptmix.scoring import attention_rows, generate_scored, rank_candidates
from promptmix.tasks import Task

DEFAULT_TOKEN_BUDGET = 16384
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_NEW_TOKENS = 32


@dataclass
class EngineInput:
    """One input, tokenised: ``input_ids`` its source (``backbone.encode(source)``, once);
    ``answers`` the candidates ranked and ``answer_ids`` their tokens
    (:meth:`Backbone.encode_answer`), or None for a generated answer; ``max_new_tokens`` its
    generation length (None: the engine's); ``task`` its task's name, which parses the answer
    and names the attention weights (see :class:`Engine`)."""

    task_id: int
    input_ids: list[int]
    answers: list[str] | None = None
    answer_ids: list[list[int]] | None = None
    max_new_tokens: int | None = None
    task: str = ""

    @property
    def rows(self) -> int:
        """Rows this input puts in a forward: one per candidate (the source is shared, but the
        candidates' answer tokens are rows of their own), or one generated row."""
        return len(self.answer_ids) if self.answer_ids else 1


def _candidates(p: EngineInput) -> tuple[list[str], list[list[int]]]:
    """A ranked input's answers and their token ids (:func:`prepare_input` sets both)."""
    assert p.answers is not None and p.answer_ids is not None
    return p.answers, p.answer_ids


def prepare_input(
    backbone: Backbone,
    task_id: int,
    input_ids: list[int],
    answers: Sequence[str] | None = None,
    max_new_tokens: int | None = None,
    task: str = "",
) -> EngineInput:
    """An :class:`EngineInput` for source ``input_ids`` and the candidate ``answers`` (from
    :meth:`Task.answer_candidates`; None: generate), each answer tokenised once."""
    if not answers:
        return EngineInput(task_id, input_ids, max_new_tokens=max_new_tokens, task=task)
    return EngineInput(
        task_id, input_ids, list(answers), [backbone.encode_answer(a) for a in answers], max_new_tokens, task
    )


@dataclass
class Prediction:
    """One answer.

    ``prediction``: the parsed answer (label word, number, span or text; None when generated
    text is no valid answer). ``text``: the label word or raw generated text. ``score``:
    probability of the chosen label among the label words (classification) or the answer's
    geometric-mean token probability (generation). ``attention``: ATTEMPT's weights over
    its source prompts and the task's own prompt, by prompt name (None for other methods).
    ``label_scores``: every candidate's probability (the label words, or a multiple-choice
    input's own choices; None for generation). Choices that are the same text once trimmed
    are one candidate, scored once, so the probabilities sum to 1.
    """

    task: str
    prediction: Any
    score: float
    text: str
    attention: dict[str, float | list[float]] | None = None
    label_scores: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Engine:
    """Answers :class:`EngineInput` s of any mix of tasks with one prompted model.

    Args:
        model: the backbone with its prompt method (a router, for several tasks).
        tasks: ``{task name: Task}``: an input whose ``task`` is one of them has its answer
            parsed (``Task.parse_prediction``); others keep the text as their prediction.
        token_budget: most rows × padded tokens (prompt included) per forward (halved on
            out-of-memory); None: no budget, only ``max_batch_size``.
        max_batch_size: most inputs per forward.
        max_new_tokens: generation length of inputs that name none.
    """

    def __init__(
        self,
        model: PromptedModel,
        tasks: Mapping[str, Task] | None = None,
        *,
        token_budget: int | None = DEFAULT_TOKEN_BUDGET,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> None:
        self.model = model
        self.tasks = dict(tasks or {})
        self.token_budget = token_budget if token_budget is not None else 10**18
        self.max_batch_size, self.max_new_tokens = max_batch_size, max_new_tokens

    @property
    def device(self) -> torch.device:
        return next(self.model.model.parameters()).device  # the backbone's (a baseline's NoPrompt has no parameters)

    def run(self, inputs: Sequence[EngineInput], progress: Callable[[int], None] | None = None) -> list:
        """Answer ``inputs`` (:class:`Prediction` s), in order, in as few forward passes as the
        budget allows. ``progress`` is called with the number of inputs each finished batch answered."""
        return self._each_batch(inputs, self._run_batch, progress)

    def attention(
        self, inputs: Sequence[EngineInput], progress: Callable[[int], None] | None = None
    ) -> list[Tensor | None]:
        """Each input's prompt attention ([k] or [k, m]; None for a method without any), from
        the prompt method alone (ATTEMPT's attention needs the input embeddings, not the
        language model), batched as :meth:`run` batches."""
        return self._each_batch(inputs, self._attention_batch, progress)

    def _each_batch(
        self,
        inputs: Sequence[EngineInput],
        step: Callable[[list[EngineInput]], list],
        progress: Callable[[int], None] | None,
    ) -> list:
        """``step`` over the batches of ``inputs``; results in input order. The one batching loop
        of inference: ranked inputs, then generated ones, each cut by :meth:`_batches`; an
        out-of-memory error halves the token budget and re-cuts the batch that raised."""
        results: list = [None] * len(inputs)
        ranked = [i for i, p in enumerate(inputs) if p.answer_ids]
        generated = [i for i, p in enumerate(inputs) if not p.answer_ids]
        for indices in (ranked, generated):
            queue = deque(self._batches(indices, inputs))
            while queue:
                batch = queue.popleft()
                try:
                    answers = step([inputs[i] for i in batch])
                except torch.OutOfMemoryError:
                    if len(batch) == 1:
                        raise
                    self.token_budget = max(1, self.token_budget // 2)
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    queue.extendleft(reversed(self._batches(batch, inputs)))
                    continue
                for i, answer in zip(batch, answers):
                    results[i] = answer
                if progress is not None:
                    progress(len(batch))
        return results

    def width(self, p: EngineInput) -> int:
        """Padded tokens of one of ``p``'s rows: the prompt, the source, and the longest answer
        on a decoder-only model (answers extend the source there; an encoder-decoder scores them
        in the decoder) or the generation length."""
        width = self.model.method.prompt_length + len(p.input_ids)
        if not p.answer_ids:
            return width + self.new_tokens(p)
        return width + (0 if self.model.backbone.is_encoder_decoder else max(len(a) for a in p.answer_ids))

    def new_tokens(self, p: EngineInput) -> int:
        return p.max_new_tokens or self.max_new_tokens

    def _batches(self, indices: Sequence[int], inputs: Sequence[EngineInput]) -> list[list[int]]:
        """Indices grouped into batches of similar width within the token budget."""
        width = {i: self.width(inputs[i]) for i in indices}
        batches: list[list[int]] = []
        current: list[int] = []
        rows = 0

        # One generation length per batch (one generate call): inputs asking for different lengths never share one.
        def key(i: int) -> tuple[int, int]:
            return (0 if inputs[i].answer_ids else self.new_tokens(inputs[i]), width[i])

        for i in sorted(indices, key=key):  # ascending: the newest item is the widest
            if current and (
                len(current) >= self.max_batch_size
                or (rows + inputs[i].rows) * width[i] > self.token_budget
                or (not inputs[i].answer_ids and self.new_tokens(inputs[i]) != self.new_tokens(inputs[current[0]]))
            ):
                batches.append(current)
                current, rows = [], 0
            current.append(i)
            rows += inputs[i].rows
        return batches + [current] if current else batches

    def _run_batch(self, batch: list[EngineInput]) -> list:
        task_ids = torch.tensor([p.task_id for p in batch], dtype=torch.long, device=self.device)
        if batch[0].answer_ids:
            candidates = [_candidates(p) for p in batch]
            ranked = rank_candidates(self.model, [p.input_ids for p in batch], [ids for _, ids in candidates], task_ids)
            return [
                self._prediction(
                    p, answers[r.index], r.probabilities[r.index], r.attention, dict(zip(answers, r.probabilities))
                )
                for p, (answers, _), r in zip(batch, candidates, ranked)
            ]
        generated = generate_scored(
            self.model, [p.input_ids for p in batch], task_ids, max_new_tokens=self.new_tokens(batch[0])
        )
        return [self._prediction(p, g.text, g.score, g.attention) for p, g in zip(batch, generated)]

    def _prediction(
        self,
        p: EngineInput,
        text: str,
        score: float,
        attention: Tensor | None,
        label_scores: dict[str, float] | None = None,
    ) -> Prediction:
        task = self.tasks.get(p.task)
        return Prediction(
            p.task,
            task.parse_prediction(text) if task is not None else text,
            score,
            text,
            self._attention(p.task, attention),
            label_scores,
        )

    def _attention(self, task: str, row: Tensor | None) -> dict[str, Any] | None:
        """A row's attention weights by prompt name (``prompt_<j>`` where the method names none)."""
        if row is None:
            return None
        names = (self.model.method.attention_names(task) if task else None) or []
        if len(names) != row.shape[0]:
            names = [f"prompt_{j}" for j in range(row.shape[0])]
        return dict(zip(names, row.float().cpu().tolist()))

    @torch.no_grad()
    def _attention_batch(self, batch: list[EngineInput]) -> list[Tensor | None]:
        padded = {
            k: v.to(self.device)
            for k, v in self.model.backbone.pad([{"input_ids": p.input_ids} for p in batch]).items()
        }
        task_ids = torch.tensor([p.task_id for p in batch], dtype=torch.long, device=self.device)
        embed = self.model.backbone.model.get_input_embeddings()
        out = self.model.method(embed(padded["input_ids"]), padded["attention_mask"], task_ids)
        return attention_rows(out, range(len(batch)))
