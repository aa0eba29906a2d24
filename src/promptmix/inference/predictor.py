"""Multi-task prediction: one frozen backbone, every loaded prompt, mixed-task batches.

    predictor = load_predictor(["runs/glue-attempt-m", "runs/boolq-mpt"])  # promptmix.inference.loader
    predictor.predict([
        {"task": "rte", "record": {"sentence1": "A cat sat.", "sentence2": "A cat sits."}},
        {"task": "boolq", "text": "boolq question: is it dry passage: it rains"},
    ])
    # [Prediction(task='rte', prediction='entailment', score=0.91, text='entailment',
    #             attention={'mnli': 0.31, ..., 'target': 0.22}, label_scores={...}), ...]

An item is a task name plus either a raw ``record`` (the dataset's own fields, formatted by
``Task.format``) or preformatted ``text`` (with its ``choices`` for a multiple-choice task).
Classification tasks (label words) and multiple-choice tasks (each input's own candidate
answers) are answered by rank classification over those candidates, the rest by greedy
generation and ``Task.parse_prediction``
(see :mod:`promptmix.scoring` for both scores). Examples of every task share
forward passes: all classification items of a batch are scored together (their inputs once,
then every label word on top of them), all others go through one ``generate``; a batch mixing
the two kinds needs both.

Batching, scoring and generation are :class:`~promptmix.inference.engine.Engine`'s, which
the predictor is: batches are sorted by length and sized by a token budget (rows × padded
width, so one long input does not make a batch of short ones expensive); an out-of-memory
error halves the budget and retries. The predictor adds what items need around it:
validation, formatting, tokenising each source once (and each candidate answer once), and
:class:`Prediction` s.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptmix.backbone import Backbone, PromptedModel
from promptmix.inference.engine import DEFAULT_MAX_BATCH_SIZE, DEFAULT_TOKEN_BUDGET, Engine, EngineInput, Prediction
from promptmix.prompts.base import PromptMethod
from promptmix.prompts.router import PromptRouter
from promptmix.rundirs.data import source_lengths
from promptmix.tasks import Example, Task, UnknownTaskError, get_task, resolve_name

UNLIMITED = 10**9  # max_source_length meaning "do not truncate"
MAX_NEW_TOKENS = 1024  # most tokens a generated answer may be given: every answer here is a label, span or sentence
DEFAULT_MAX_CHOICES = 256  # candidates of one multiple-choice input (ReCoRD passages list up to a few dozen entities)
DEFAULT_MAX_CHOICE_TOKENS = 64  # tokens of one candidate answer
SHOWN_CHARS = 60  # most characters of a client's value an error message repeats


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN_CHARS` characters: an error names what was sent
    without echoing a 100 KB string back to the client or into the logs."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text)} characters)"


def longest_token_chars(tokenizer: Any) -> int:
    """Most characters of text one token can stand for: the longest vocabulary entry (an
    upper bound; byte tokens such as ``<0xFF>`` are spelled longer than the byte they mean).
    So a text longer than ``limit × this`` cannot fit in ``limit`` tokens, unless the
    tokenizer's normaliser drops characters (runs of spaces, for instance)."""
    return max((len(token) for token in tokenizer.get_vocab()), default=1)


def answer_candidates(task: Task, choices: Sequence[str] | None = None) -> list[str] | None:
    """What rank classification scores for an input of ``task`` with its own ``choices`` (None
    for tasks without per-input candidates): :meth:`Task.answer_candidates`, the one place that
    decides; None when the answer is generated."""
    return task.answer_candidates(
        Example(source="", target="", task=task.name, choices=tuple(choices) if choices else None)
    )


class InputError(ValueError):
    """An item the predictor cannot answer. ``kind`` is ``"unknown_task"``, ``"invalid"``
    (malformed item, missing record field, text the tokenizer cannot take), ``"too_long"``,
    ``"too_many_choices"`` or ``"choice_too_long"``; ``index`` is its position."""

    def __init__(self, index: int, reason: str, kind: str = "invalid") -> None:
        super().__init__(f"input {index}: {reason}")
        self.index, self.reason, self.kind = index, reason, kind


def as_items(inputs: Sequence[Any], task: str | None = None) -> list[dict[str, Any]]:
    """Inputs as given to the CLI and the HTTP API -> predictor items.

    With ``task``, each input is a raw record (a mapping of the dataset's fields) or
    formatted text (a string). Without, each input must be ``{"task", "record" | "text"}``
    (and ``"choices"``, the candidate answers, with the text of a multiple-choice task).
    """
    if task is not None:
        return [{"task": task, "text": x} if isinstance(x, str) else {"task": task, "record": x} for x in inputs]
    items = []
    for i, x in enumerate(inputs):
        if not isinstance(x, Mapping) or "task" not in x:
            raise InputError(
                i,
                "no task: give the task for all inputs, or make each input "
                '{"task": ..., "record": {...}} or {"task": ..., "text": ...}',
            )
        extra = set(x) - {"task", "record", "text", "choices"}
        if extra:
            raise InputError(
                i,
                f"unknown key(s) {', '.join(map(repr, sorted(extra)))} in this input; accepted: task, "
                "record or text, and choices (with the text of a multiple-choice task)",
            )
        items.append(dict(x))
    return items


@dataclass
class PreparedInput(EngineInput):
    """An item validated and tokenised (the engine's input, plus its formatted ``source`` and
    the token limit it was cut to)."""

    source: str = ""
    max_source_length: int = 0


class Predictor(Engine):
    """A backbone with every loaded prompt, answering items of any loaded task: an
    :class:`Engine` over the loaded prompts that takes items and gives :class:`Prediction` s.

    Args:
        backbone: the frozen model (loaded once).
        method: a :class:`PromptRouter` over the loaded methods, or a single method.
        tasks: ``{task name: Task}`` for every task of ``method``; by default looked up with
            :func:`promptmix.tasks.get_task` under the method's task names.
        token_budget: most rows × padded tokens (prompt included) per forward (halved on
            out-of-memory).
        max_batch_size: most items per forward.
        max_new_tokens: generation length for non-classification tasks (at most
            :data:`MAX_NEW_TOKENS`); a prepared input may ask for fewer.
        max_choices: most candidate answers of one multiple-choice input (refused beyond,
            InputError kind ``"too_many_choices"``): each is a row of the forward pass, so an
            unbounded list is unbounded memory.
        max_choice_tokens: most tokens of one candidate answer (InputError ``"choice_too_long"``).
        max_source_lengths: ``{task: input token limit}`` the prompts were trained with (a run
            records it, see :mod:`promptmix.inference.loader`); a task not named gets its own
            ``Task.max_source_length``.
    """

    def __init__(
        self,
        backbone: Backbone,
        method: PromptMethod,
        tasks: Mapping[str, Task] | None = None,
        *,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_new_tokens: int = 32,
        max_source_lengths: Mapping[str, int] | None = None,
        max_choices: int = DEFAULT_MAX_CHOICES,
        max_choice_tokens: int = DEFAULT_MAX_CHOICE_TOKENS,
    ) -> None:
        self.backbone = backbone
        self.method = method if isinstance(method, PromptRouter) else PromptRouter({"method": method})
        self.tasks = (
            dict(tasks) if tasks is not None else {name: self._registered(name) for name in self.method.task_names}
        )
        missing = set(self.method.task_names) - set(self.tasks)
        if missing:
            raise ValueError(f"no Task given for loaded prompt task(s) {sorted(missing)}")
        for option, value in (
            ("token_budget", token_budget),
            ("max_batch_size", max_batch_size),
            ("max_new_tokens", max_new_tokens),
            ("max_choices", max_choices),
            ("max_choice_tokens", max_choice_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be an integer >= 1, got {value!r}")
        if max_new_tokens > MAX_NEW_TOKENS:
            raise ValueError(f"max_new_tokens must be at most {MAX_NEW_TOKENS}, got {max_new_tokens}")
        self.max_choices, self.max_choice_tokens = max_choices, max_choice_tokens
        self.max_source_lengths = source_lengths(self.tasks, per_task=max_source_lengths)
        self.max_token_chars = longest_token_chars(backbone.tokenizer)
        device = next(backbone.model.parameters()).device
        super().__init__(
            PromptedModel(backbone, self.method.to(device)).eval(),
            self.tasks,
            token_budget=token_budget,
            max_batch_size=max_batch_size,
            max_new_tokens=max_new_tokens,
        )

    def with_own_tokenizer(self) -> Predictor:
        """A view sharing this predictor's model, prompts and tasks with its own copy of the
        tokenizer, for :meth:`prepare` on another thread while this one runs the model (a
        HuggingFace fast tokenizer must not be used by two threads at once). Only prepare with it."""
        twin = copy.copy(self)
        twin.backbone = dataclasses.replace(self.backbone, tokenizer=copy.deepcopy(self.backbone.tokenizer))
        return twin

    def _registered(self, name: str) -> Task:
        try:
            return get_task(name)
        except UnknownTaskError as err:
            raise ValueError(
                f"{self.method.member_of(name)[0]} holds a prompt for {name!r}, which is no registered "
                f"task, so its inputs cannot be formatted or its answers parsed ({err})"
            ) from None

    @property
    def task_names(self) -> list[str]:
        return self.method.task_names

    # -- items -> tokens -----------------------------------------------------------------------
    def resolve_task(self, name: Any, index: int = 0) -> str:
        """The loaded task a name or alias refers to; InputError(kind="unknown_task") if none."""
        if not isinstance(name, str) or not name:
            raise InputError(index, f"'task' must be a task name, got {shown(name)}")
        if name in self.tasks:
            return name
        try:
            canonical = resolve_name(name)
        except UnknownTaskError:
            canonical = name
        if canonical in self.tasks:
            return canonical
        near = difflib.get_close_matches(name[:SHOWN_CHARS].lower(), self.task_names, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, near))}?" if near else ""
        raise InputError(
            index,
            f"no prompt is loaded for task {shown(name)}.{hint} Loaded: {', '.join(self.task_names)}",
            "unknown_task",
        )

    def prepare(
        self, items: Sequence[Mapping[str, Any]], *, truncate: bool = True, max_new_tokens: int | None = None
    ) -> list[PreparedInput]:
        """Validate and tokenise items ``{"task": name, "record": {...}}`` or ``{"task": name,
        "text": "..."}``. Inputs longer than the task's limit (:attr:`max_source_lengths`) are
        truncated, or refused (InputError kind "too_long") when ``truncate`` is False; then a
        text over ``max_source_length × max_token_chars`` characters is refused before it is
        tokenised, since it cannot fit (see :func:`longest_token_chars`). ``max_new_tokens``:
        the generation length each input asks for (None: the predictor's ``max_new_tokens``)."""
        return [self._prepare_one(i, item, truncate, max_new_tokens) for i, item in enumerate(items)]

    def _prepare_one(
        self, index: int, item: Mapping[str, Any], truncate: bool, max_new_tokens: int | None = None
    ) -> PreparedInput:
        if not isinstance(item, Mapping):
            raise InputError(index, f"expected an object with 'task' and 'record' or 'text', got {type(item).__name__}")
        name = self.resolve_task(item.get("task"), index)
        task = self.tasks[name]
        source, choices = self._source_text(index, task, item)
        if choices:  # first: the cheapest refusal of the costliest inputs
            choices = self._bounded_choices(index, choices)
        limit = self.max_source_lengths[name]
        if not truncate and len(source) > limit * self.max_token_chars:  # tokenising it would only waste time
            raise InputError(
                index,
                f"input is {len(source)} characters, more than the limit of {limit} tokens for task "
                f"{name!r} can hold (at most {limit} × {self.max_token_chars})",
                "too_long",
            )
        ids = self._tokens(index, source)
        if len(ids) > limit:
            if not truncate:
                raise InputError(
                    index, f"input is {len(ids)} tokens, over the limit of {limit} for task {name!r}", "too_long"
                )
            ids = self.backbone.encode(source, max_source_length=limit)["input_ids"]
        answers = answer_candidates(task, choices)
        return PreparedInput(
            self.method.task_id(name),
            ids,
            answers,
            [self.backbone.encode_answer(a) for a in answers] if answers else None,
            max_new_tokens,
            task=name,
            source=source,
            max_source_length=limit,
        )

    def _bounded_choices(self, index: int, choices: list[str]) -> list[str]:
        """An input's own candidates, each once (trimmed choices that are the same text would
        share one ``label_scores`` key, and the probabilities would no longer sum to 1),
        refused beyond ``max_choices`` or ``max_choice_tokens``: checked before anything is
        encoded, so a request with 20,000 candidates costs no memory and fails no batch."""
        if len(choices) > self.max_choices:
            raise InputError(
                index,
                f"{len(choices)} choices; at most {self.max_choices} per input (max_choices, --max-choices)",
                "too_many_choices",
            )
        limit = self.max_choice_tokens
        for j, choice in enumerate(choices):
            if len(choice) > limit * self.max_token_chars:  # cannot fit: no need to tokenise it
                raise InputError(
                    index,
                    f"choice {j} is {len(choice)} characters, more than {limit} tokens can hold "
                    f"(max_choice_tokens, --max-choice-tokens)",
                    "choice_too_long",
                )
        for j, choice in enumerate(choices):
            count = len(self._tokens(index, choice))
            if count > limit:
                raise InputError(
                    index,
                    f"choice {j} is {count} tokens, over the limit of {limit} (max_choice_tokens, --max-choice-tokens)",
                    "choice_too_long",
                )
        return list(dict.fromkeys(choices))

    def _tokens(self, index: int, source: str) -> list[int]:
        """``source``'s token ids, untruncated; text the tokenizer cannot take is an InputError."""
        try:
            source.encode("utf-8")
        except UnicodeEncodeError as err:  # JSON's "\ud800" decodes to a lone surrogate, no Unicode character
            raise InputError(
                index,
                f"the input holds {source[err.start]!r} at character {err.start}, a lone "
                "surrogate that is no Unicode character; send valid Unicode text",
            ) from None
        try:
            return self.backbone.encode(source, max_source_length=UNLIMITED)["input_ids"]
        except (TypeError, ValueError) as err:  # whatever else the tokenizer refuses is the input's fault
            raise InputError(index, f"the tokenizer cannot take this input: {shown(str(err))}") from None

    def _source_text(self, index: int, task: Any, item: Mapping[str, Any]) -> tuple[str, list[str] | None]:
        """The formatted input and, for a multiple-choice task, its candidate answers."""
        has_record, has_text = item.get("record") is not None, item.get("text") is not None
        if has_record == has_text:
            raise InputError(index, "give exactly one of 'record' (the dataset's fields) or 'text' (formatted input)")
        if has_text:
            if not isinstance(item["text"], str) or not item["text"].strip():
                raise InputError(index, "'text' must be a non-empty string")
            return item["text"], self._choices(index, task, item.get("choices"))
        if not isinstance(item["record"], Mapping):
            raise InputError(
                index, f"'record' must be an object of the dataset's fields, got {type(item['record']).__name__}"
            )
        try:
            example = task.format(item["record"])
        except ValueError as err:  # DataError names the missing or malformed field
            raise InputError(index, f"task {task.name!r}: {err}") from None
        except (TypeError, AttributeError, KeyError) as err:  # a task (a plugin's, say) that checks no types
            raise InputError(
                index,
                f"task {task.name!r}: a record field has the wrong type ({type(err).__name__}: {shown(str(err))})",
            ) from None
        return example.source, list(example.choices) if example.choices else None

    @staticmethod
    def _choices(index: int, task: Any, choices: Any) -> list[str] | None:
        """A text input's candidate answers: required for a multiple-choice task, refused for others."""
        if not task.choices_per_example:
            if choices is not None:
                raise InputError(
                    index,
                    f"task {task.name!r} answers with its own label words or generated text; "
                    "'choices' are for multiple-choice tasks",
                )
            return None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c.strip() for c in choices):
            raise InputError(
                index,
                f"task {task.name!r} answers from each input's own candidates: give 'choices', "
                f"a non-empty list of answer strings, with the text (got {shown(choices)})",
            )
        return [c.strip() for c in choices]

    # -- tokens -> predictions -----------------------------------------------------------------
    def predict(self, items: Sequence[Mapping[str, Any]], *, truncate: bool = True) -> list[Prediction]:
        """Answer items of any loaded tasks; see :meth:`prepare` for the item format."""
        return self.run(self.prepare(items, truncate=truncate))
