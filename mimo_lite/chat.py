"""The chat format: ChatML turns, a `<think>` block before the answer, and the special tokens.

Exactly (this is what `render_chat` and the tokenizer's `apply_chat_template` render):

    <|im_start|>system\\n{content}<|im_end|>\\n                      (only if given)
    <|im_start|>user\\n{content}<|im_end|>\\n
    <|im_start|>assistant\\n<think>\\n{reasoning_content}\\n</think>\\n{content}<|im_end|>\\n

The `<think>` block appears when the assistant message has a `reasoning_content`. With
`add_generation_prompt=True` the rendering ends with `<|im_start|>assistant\\n`, where the model
starts writing (its `<think>` included). Documents in the pretraining stream are separated by
`<|endoftext|>`; a reply ends with `<|im_end|>`, the end-of-sequence token for generation.
"""

from __future__ import annotations

import jinja2.sandbox

ENDOFTEXT, IM_START, IM_END, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"
THINK, END_THINK = "<think>", "</think>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END, PAD]   # control tokens: dropped by skip_special_tokens
THINK_TOKENS = [THINK, END_THINK]                      # single ids, but kept when decoding
ROLES = ("system", "user", "assistant")

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' and message.reasoning_content is defined"
    " and message.reasoning_content is not none -%}"
    "{{ '<think>\\n' + message['reasoning_content'] + '\\n</think>\\n' }}"
    "{%- endif -%}"
    "{{ message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# Jinja settings of transformers' chat-template renderer, so both render the same string.
_TEMPLATE = jinja2.sandbox.ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True).from_string(CHAT_TEMPLATE)


def render_chat(messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The chat template applied without a tokenizer (the corpus is written before one exists).

    messages: [{"role": "user", "content": "..."}, {"role": "assistant", "content": "...",
    "reasoning_content": "..."}]. Equals `tokenizer.apply_chat_template(messages, tokenize=False)`.
    """
    for i, message in enumerate(messages):
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError(f"Chat message {i} must be a dict with a role among {ROLES} and a "
                             f"string content, got {message!r}.")
    return _TEMPLATE.render(messages=messages, add_generation_prompt=add_generation_prompt)
