"""A validator for OpenAI chat fine-tuning JSONL, written from the documented rules.

Rules checked (OpenAI fine-tuning guide and its data-preparation cookbook):
- every line is one JSON object; blank lines are not allowed;
- top-level keys: ``messages`` (required, a non-empty list), optionally ``tools``,
  ``parallel_tool_calls``;
- each message is an object with a ``role`` among system / user / assistant / tool and no keys
  beyond role, content, name, weight, tool_calls, tool_call_id;
- ``content`` is a non-empty string (an assistant message carrying ``tool_calls`` may have
  null content); ``name`` is a non-empty string; ``weight`` is 0 or 1 and only on assistant
  messages; ``tool`` messages need a ``tool_call_id``;
- the conversation has at least one assistant message (the thing trained on);
- each example fits the model's context (a token limit; counted with a pluggable counter);
- the file holds at least 10 examples.
Errors are reported per line (1-based), so a bad file can be fixed.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MIN_EXAMPLES = 10
# gpt-4o-mini / gpt-4o fine-tuning: 65,536 tokens per training example.
DEFAULT_TOKEN_LIMIT = 65_536
ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id"})
TOP_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based; 0 for a file-level problem
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ValidationReport:
    examples: int = 0
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def rough_token_count(text: str) -> int:
    """About four characters a token: a conservative stand-in when no tokenizer is given."""
    return len(text) // 4 + 1


def example_errors(
    obj: Any,
    *,
    token_limit: int = DEFAULT_TOKEN_LIMIT,
    count_tokens: Callable[[str], int] = rough_token_count,
) -> list[str]:
    """Problems with one parsed example (an empty list when it is valid)."""
    if not isinstance(obj, dict):
        return ["the line is not a JSON object"]
    problems = [f"unknown top-level key {key!r}" for key in sorted(set(obj) - TOP_KEYS)]
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "'messages' must be a non-empty list"]
    has_assistant = False
    tokens = 0
    for index, message in enumerate(messages, start=1):
        where = f"message {index}"
        if not isinstance(message, dict):
            problems.append(f"{where} is not an object")
            continue
        problems.extend(
            f"{where}: unknown key {key!r}" for key in sorted(set(message) - MESSAGE_KEYS)
        )
        role = message.get("role")
        if role not in ROLES:
            problems.append(f"{where}: role must be one of {', '.join(ROLES)} (got {role!r})")
        content = message.get("content")
        tool_calls = message.get("tool_calls")
        if role == "assistant" and content is None and tool_calls:
            pass
        elif not isinstance(content, str):
            problems.append(f"{where}: content must be a string")
        elif not content.strip():
            problems.append(f"{where}: content is empty")
        else:
            tokens += count_tokens(content)
        if "name" in message and (not isinstance(message["name"], str) or not message["name"]):
            problems.append(f"{where}: name must be a non-empty string")
        if "weight" in message:
            if role != "assistant":
                problems.append(f"{where}: weight is only allowed on assistant messages")
            elif message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
                problems.append(f"{where}: weight must be 0 or 1")
        if tool_calls is not None and (role != "assistant" or not isinstance(tool_calls, list)):
            problems.append(f"{where}: tool_calls must be a list on an assistant message")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            problems.append(f"{where}: a tool message needs a tool_call_id")
        if role == "assistant":
            has_assistant = True
    if not has_assistant:
        problems.append("no assistant message: nothing to train on")
    if tokens > token_limit:
        problems.append(f"about {tokens} tokens, over the limit of {token_limit} per example")
    return problems


def validate_lines(
    lines: Iterable[str],
    *,
    token_limit: int = DEFAULT_TOKEN_LIMIT,
    count_tokens: Callable[[str], int] = rough_token_count,
    min_examples: int = MIN_EXAMPLES,
) -> ValidationReport:
    report = ValidationReport()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            report.errors.append(LineError(number, "blank line"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.errors.append(LineError(number, f"not valid JSON ({exc.msg})"))
            continue
        report.examples += 1
        for problem in example_errors(obj, token_limit=token_limit, count_tokens=count_tokens):
            report.errors.append(LineError(number, problem))
    if report.examples < min_examples:
        report.errors.append(
            LineError(0, f"{report.examples} examples; fine-tuning needs at least {min_examples}")
        )
    return report


def validate_text(text: str, **kwargs: Any) -> ValidationReport:
    # A single trailing newline ends the last line; it is not a blank line.
    body = text[:-1] if text.endswith("\n") else text
    return validate_lines(body.split("\n") if body else [], **kwargs)
