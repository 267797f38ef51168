#!/usr/bin/env python3
"""Writes the expected renderings of chat templates for Kiln's chat-template tests.

    python3 scripts/chat_template_reference.py SMOLLM2_TOKENIZER.json OUT.json

The oracle is Python's jinja2 set up exactly as Hugging Face transformers' apply_chat_template
sets it up (a sandboxed environment with trim_blocks, lstrip_blocks and the loop-controls
extension; raise_exception as a global). The cases are SmolLM2-135M-Instruct's own template
(from its GGUF tokenizer JSON, written by scripts/gguf_tokenizer_json.py) and two hand-written
templates that exercise whitespace control, Python string methods, namespaces, loop controls and
raise_exception. A case that raises records the error message instead of a text.
"""
import json
import sys

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def render(template, messages, add_generation_prompt, bos_token, eos_token):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt,
        bos_token=bos_token, eos_token=eos_token)


# Mistral-style: alternation enforced with raise_exception, .strip(), indented blocks.
ALTERNATING = """{{ bos_token }}
{% for message in messages %}
    {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {% endif %}
    {% if message['role'] == 'user' %}
        {{ '[INST] ' + message['content'].strip() + ' [/INST]' }}
    {% else %}
        {{ ' ' + message['content'].strip() + eos_token }}
    {% endif %}
{% endfor %}
"""

# Llama-3-style: a namespace carries the system prompt out of the loop, `continue` skips it,
# `-` whitespace control and the trim filter.
HEADERS = """{%- set ns = namespace(system='You are helpful.') -%}
{%- for m in messages -%}
    {%- if m['role'] == 'system' -%}
        {%- set ns.system = m['content'] | trim -%}
        {%- continue -%}
    {%- endif -%}
    {%- if loop.first or (loop.index0 == 1 and messages[0]['role'] == 'system') -%}
        {{- bos_token + '<|start_header_id|>system<|end_header_id|>\\n\\n' + ns.system + '<|eot_id|>' -}}
    {%- endif -%}
    {{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}
{% endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
{%- endif -%}
"""


def main():
    smollm2 = json.load(open(sys.argv[1], encoding="utf-8"))
    tokens = smollm2["tokens"]
    two = [{"role": "user", "content": "What is the capital of France?"},
           {"role": "assistant", "content": "Paris."}]
    specs = [
        ("smollm2 two messages", smollm2["chat_template"], two, False,
         tokens[smollm2["bos_token_id"]], tokens[smollm2["eos_token_id"]]),
        ("smollm2 with system and generation prompt", smollm2["chat_template"],
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\nthere"}], True,
         tokens[smollm2["bos_token_id"]], tokens[smollm2["eos_token_id"]]),
        ("alternating", ALTERNATING,
         [{"role": "user", "content": "  Hello "}, {"role": "assistant", "content": "Hi! "},
          {"role": "user", "content": "Bye"}], True, "<s>", "</s>"),
        ("alternating raises", ALTERNATING,
         [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], False, "<s>", "</s>"),
        ("headers with system", HEADERS,
         [{"role": "system", "content": " Short answers. "}, {"role": "user", "content": "2+2?\n"},
          {"role": "assistant", "content": "4"}], True, "<|begin_of_text|>", "<|eot_id|>"),
        ("headers without system", HEADERS,
         [{"role": "user", "content": "Hi"}], False, "<|begin_of_text|>", "<|eot_id|>"),
    ]
    cases = []
    for name, template, messages, add_generation_prompt, bos, eos in specs:
        case = {"name": name, "template": template, "messages": messages,
                "add_generation_prompt": add_generation_prompt, "bos_token": bos, "eos_token": eos}
        try:
            case["expected"] = render(template, messages, add_generation_prompt, bos, eos)
        except TemplateError as e:
            case["error"] = str(e)
        cases.append(case)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
