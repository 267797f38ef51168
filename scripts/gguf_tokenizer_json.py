#!/usr/bin/env python3
"""Writes the tokenizer metadata of a GGUF file as the JSON that Kiln's `TokenizerSpec` reads.

    python3 scripts/gguf_tokenizer_json.py MODEL.gguf OUT.json

Needs the `gguf` package (pip install gguf). The JSON keys are the GGUF keys without their
`tokenizer.ggml.` / `tokenizer.` prefix (`model`, `pre`, `tokens`, `scores`, `token_type`,
`merges`, `bos_token_id`, `eos_token_id`, `unknown_token_id`, `padding_token_id`,
`add_bos_token`, `add_space_prefix`, `chat_template`); a key the file lacks is left out. The
output is written to a temporary file and renamed, so a failed run leaves nothing half-written.
"""
import json
import os
import sys

from gguf import GGUFReader, GGUFValueType

KEYS = {
    "tokenizer.ggml.model": "model",
    "tokenizer.ggml.pre": "pre",
    "tokenizer.ggml.tokens": "tokens",
    "tokenizer.ggml.scores": "scores",
    "tokenizer.ggml.token_type": "token_type",
    "tokenizer.ggml.merges": "merges",
    "tokenizer.ggml.bos_token_id": "bos_token_id",
    "tokenizer.ggml.eos_token_id": "eos_token_id",
    "tokenizer.ggml.unknown_token_id": "unknown_token_id",
    "tokenizer.ggml.padding_token_id": "padding_token_id",
    "tokenizer.ggml.add_bos_token": "add_bos_token",
    "tokenizer.ggml.add_space_prefix": "add_space_prefix",
    "tokenizer.chat_template": "chat_template",
}


def scalar(field, kind):
    value = field.parts[field.data[0]]
    if kind == GGUFValueType.STRING:
        return bytes(value).decode("utf-8")
    if kind == GGUFValueType.BOOL:
        return bool(value[0])
    return value[0].item()


def value_of(field):
    kind = field.types[0]
    if kind != GGUFValueType.ARRAY:
        return scalar(field, kind)
    element = field.types[1]
    if element == GGUFValueType.STRING:
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    return [field.parts[i][0].item() for i in field.data]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gguf_tokenizer_json.py MODEL.gguf OUT.json")
    source, target = sys.argv[1], sys.argv[2]
    reader = GGUFReader(source)
    spec = {}
    for key, name in KEYS.items():
        field = reader.fields.get(key)
        if field is not None:
            spec[name] = value_of(field)
    for required in ("model", "tokens"):
        if required not in spec:
            sys.exit(f"{source}: no tokenizer.ggml.{required} in the GGUF metadata")
    tmp = target + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(spec, out, ensure_ascii=False)
    os.replace(tmp, target)
    print(f"{target}: {spec['model']} tokenizer, {len(spec['tokens'])} tokens, "
          f"{len(spec.get('merges', []))} merges, pre={spec.get('pre')}")


if __name__ == "__main__":
    main()
