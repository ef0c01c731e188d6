"""Build the final chat completion from the chunks of a stream, without I/O.

`ChatCompletionAccumulator.add` is fed the raw chunk dicts (the `json.loads` of each
`data:` payload) once per token, so it only appends pieces to lists; the text is joined
when asked for. It also keeps whatever arrived before a stream failed, so it never
raises on odd input: a part it cannot use (a non-object choice, a non-string content,
an index that is not an int...) is skipped.

What is merged, per choice `index`:

- `role` (first seen; "assistant" when none came), `content`, `refusal`, `reasoning` and
  the legacy `reasoning_content` (each kept in the field it came in);
- `tool_calls`, merged by their `index`: `id`, `type` and `function.name` come in the
  first delta of a call and are set when absent; an identical repeat (some servers send
  them in every delta) is ignored; `function.arguments` pieces are concatenated. A
  *different* `id` at an index already in use starts a new call (a server reusing index 0
  for parallel calls); a delta without an `index` joins the call with its `id`, or the
  last call;
- the legacy `function_call` (name and argument pieces);
- `finish_reason` (the last non-null one); `logprobs` are not kept.

Per stream: `id`, `model`, `created`, `system_fingerprint` (first seen) and `usage` (the
last non-null one: the final usage-only chunk, with `choices: []` or, from LiteLLM, one
choice with an empty delta; servers with continuous usage send a running total; a
missing `completion_tokens` is `total_tokens - prompt_tokens`, as in a plain reply).

Fields the API document does not name are kept, so they survive into the completion's
`additional_properties`: on the chunk, the first non-null value; on a choice, the last
non-null value; in a delta, strings are concatenated (deltas are pieces), lists extended,
and other values replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast, final

from wandb_inference._types._base import usage_fields

from ._choice import _CHOICE_KEYS, _Choice, _join, _merge_delta, _take_choice_extra

if TYPE_CHECKING:
    from wandb_inference_generated.models.chat_completion import ChatCompletion

__all__ = ["ChatCompletionAccumulator"]

_CHUNK_KEYS: Final = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint"})
# The keys of nearly every chunk: those of the rest are handled by `_take_chunk_rest`.
_TOKEN_CHUNK_KEYS: Final = frozenset({"id", "object", "created", "model", "choices", "system_fingerprint"})
# A delta with only these keys is handled inline by `add` (the per-token common case).
_CONTENT_ONLY: Final = frozenset({"content"})
_SCALARS: Final = (str, int, float, bool, type(None))
# The delta fields whose pieces `text_adder` appends (each a list of pieces on `_Choice`).
_TEXT_FIELDS: Final = frozenset({"content", "reasoning", "reasoning_content"})


@final
class ChatCompletionAccumulator:
    """Merge the chunks of a chat stream into one completion.

    ```python
    acc = ChatCompletionAccumulator()
    for payload in payloads:  # dicts: json.loads of each `data:` event
        acc.add(payload)
    acc.text            # the first choice's content so far
    acc.completion()    # a ChatCompletion, as if the call had not streamed
    ```
    """

    __slots__ = (
        "_choices",
        "_chunks",
        "_created",
        "_extra",
        "_fingerprint",
        "_id",
        "_model",
        "_need_meta",
        "_usage",
    )

    def __init__(self) -> None:
        """Create an empty accumulator."""
        self._chunks = 0
        self._choices: dict[int, _Choice] = {}
        self._id: str | None = None
        self._model: str | None = None
        self._created: int | None = None
        self._need_meta = True  # until id, model and created have all been seen
        self._fingerprint: str | None = None
        self._usage: dict[str, Any] | None = None
        self._extra: dict[str, Any] | None = None

    # ------------------------------------------------------------------ reading

    @property
    def chunks(self) -> int:
        """How many chunks (objects) were added."""
        return self._chunks

    @property
    def has_data(self) -> bool:
        """True once a chunk was added."""
        return self._chunks > 0

    @property
    def text(self) -> str:
        """The content of choice 0 received so far ("" if none)."""
        state = self._choices.get(0)
        if state is None or state.content is None:
            return ""
        return _join(state.content)

    @property
    def reasoning(self) -> str:
        """The reasoning of choice 0 so far, from `reasoning` or `reasoning_content`.

        When a server sends both fields (some did while renaming it), `reasoning` wins.
        """
        state = self._choices.get(0)
        return "" if state is None else state.reasoning_text()

    def to_dict(self) -> dict[str, Any]:
        """The completion so far as a JSON-ready dict (the shape of a non-streamed reply).

        Returns:
            A new dict: `object` is "chat.completion"; `id`, `model` are "" and `created`
            is 0 when no chunk carried them; choices are ordered by index.
        """
        out: dict[str, Any] = dict(self._extra) if self._extra else {}
        out.update(
            id=self._id or "",
            object="chat.completion",
            created=self._created or 0,
            model=self._model or "",
            choices=[self._choices[i].to_dict() for i in sorted(self._choices)],
        )
        if self._usage is not None:
            out["usage"] = dict(usage_fields(self._usage))
        if self._fingerprint is not None:
            out["system_fingerprint"] = self._fingerprint
        return out

    def completion(self) -> ChatCompletion:
        """The completion so far, as the generated model.

        Returns:
            A new `ChatCompletion` (see `to_dict` for the defaults). Fields the API
            document does not name are in the `additional_properties` of the completion,
            its choices and messages.
        """
        from wandb_inference_generated.models.chat_completion import ChatCompletion

        return ChatCompletion.from_dict(self.to_dict())

    # ------------------------------------------------------------------ writing

    def text_adder(self, chunk: Mapping[str, Any]) -> Callable[[str], None] | None:
        """What `add` does for a chunk that is `chunk` with another text, as a function of
        that text (None when `chunk` is not such a chunk). Call it once `chunk` itself has
        been added.

        For the per-token shape (`text_chunk_maker` in `_types/_chunk.py`: one choice, a
        delta of one text field, `content`, `reasoning` or `reasoning_content`, no finish
        reason or usage, every other value a JSON scalar), once `chunk` itself has been
        added, adding it again with another text only counts it and appends the text:
        the first-seen values (id, model, created, fingerprint, unknown chunk keys) are
        all taken, and the choice's unknown keys are set again (the last non-null value
        wins: a chunk of another shape may have changed them meanwhile).
        """
        if self._need_meta or chunk.__class__ is not dict:
            return None
        choices = chunk.get("choices")
        if choices.__class__ is not list or len(choices) != 1 or choices[0].__class__ is not dict:
            return None
        choice = choices[0]
        index, delta = choice.get("index", 0), choice.get("delta")
        if index is None:
            index = 0
        state = self._choices.get(index) if index.__class__ is int else None
        if (
            state is None
            or delta.__class__ is not dict
            or len(delta) != 1
            or choice.get("finish_reason") is not None
            or chunk.get("usage") is not None
        ):
            return None
        ((field, text),) = delta.items()
        pieces = getattr(state, field) if field in _TEXT_FIELDS else None
        if pieces is None or text.__class__ is not str:
            return None
        if not all(value.__class__ in _SCALARS for key, value in chunk.items() if key != "choices"):
            return None
        if not all(value.__class__ in _SCALARS for key, value in choice.items() if key != "delta"):
            return None
        again = {k: v for k, v in choice.items() if v is not None and k not in _CHOICE_KEYS}
        # The same lists for the rest of the stream (`add` sets one only when it was None;
        # `_join` replaces its items in place); the extras' dict likewise, set by `add`.
        texts: list[str] = pieces
        extra = state.choice_extra
        if extra is None:
            if again:  # pragma: no cover - `add` set it for these keys
                return None
            extra = {}

        def add_text(text: str) -> None:
            self._chunks += 1
            texts.append(text)
            if again:
                extra.update(again)

        return add_text

    def add(self, chunk: Mapping[str, Any]) -> None:
        """Merge one chunk.

        Args:
            chunk: one decoded `data:` payload of the stream. Anything that is not an
                object, and any part of it that cannot be used, is ignored.
        """
        if chunk.__class__ is not dict and not isinstance(cast(object, chunk), Mapping):
            return
        self._chunks += 1
        if self._need_meta:
            self._take_meta(chunk)
        if self._fingerprint is None:
            fingerprint = chunk.get("system_fingerprint")
            if isinstance(fingerprint, str):
                self._fingerprint = fingerprint
        if not chunk.keys() <= _TOKEN_CHUNK_KEYS:  # usage, unknown keys
            self._take_chunk_rest(chunk)
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return
        states = self._choices
        for choice in choices:
            if choice.__class__ is not dict and not isinstance(choice, Mapping):
                continue
            index = choice.get("index", 0)
            if index.__class__ is not int:
                if index is not None:
                    continue  # "1", 1.0, True...: not an index we can trust
                index = 0
            delta = choice.get("delta")
            finish = choice.get("finish_reason")
            state = states.get(index)
            if state is None:
                if not delta and finish is None:
                    continue  # nothing to keep (LiteLLM's usage chunk has such a choice)
                state = states[index] = _Choice(index)
            if finish is not None and isinstance(finish, str):
                state.finish_reason = finish
            if not choice.keys() <= _CHOICE_KEYS:
                _take_choice_extra(state, choice)
            if not delta or (delta.__class__ is not dict and not isinstance(delta, Mapping)):
                continue
            content = delta.get("content")
            if content.__class__ is str:
                pieces = state.content
                if pieces is None:
                    state.content = [content]
                else:
                    pieces.append(content)
            if not delta.keys() <= _CONTENT_ONLY:
                _merge_delta(state, delta)

    def _take_meta(self, chunk: Mapping[str, Any]) -> None:
        if self._id is None:
            value = chunk.get("id")
            if isinstance(value, str):
                self._id = value
        if self._model is None:
            value = chunk.get("model")
            if isinstance(value, str):
                self._model = value
        if self._created is None:
            value = chunk.get("created")
            if value.__class__ is int:
                self._created = value
        self._need_meta = self._id is None or self._model is None or self._created is None

    def _take_chunk_rest(self, chunk: Mapping[str, Any]) -> None:
        usage = chunk.get("usage")
        if (
            usage is not None
            and isinstance(usage, Mapping)
            and usage.get("prompt_tokens").__class__ is int
            and usage.get("total_tokens").__class__ is int
        ):  # the counts the API requires: a usage without them is a part it cannot use
            self._usage = dict(usage)
        if not chunk.keys() <= _CHUNK_KEYS:
            self._take_chunk_extra(chunk)

    def _take_chunk_extra(self, chunk: Mapping[str, Any]) -> None:
        """Keep the first non-null value of each key the API document does not name."""
        extra = self._extra
        if extra is None:
            extra = self._extra = {}
        for key, value in chunk.items():
            if value is not None and key not in _CHUNK_KEYS and key not in extra:
                extra[key] = value
