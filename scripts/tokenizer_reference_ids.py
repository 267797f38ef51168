#!/usr/bin/env python3
"""Writes reference token ids for Kiln's byte-level BPE tokenizer tests.

    python3 scripts/tokenizer_reference_ids.py SPEC.json OUT.json

SPEC.json is a GGUF tokenizer exported by scripts/gguf_tokenizer_json.py (SmolLM2-135M-Instruct
in the tests). The oracle is Hugging Face's `tokenizers` package (pip install tokenizers), an
independent implementation, built in memory from the same vocab and merges: byte-level BPE,
the GGUF's CONTROL tokens as special added tokens, and for each pre-tokenizer name Kiln knows the
pre-tokenizer Hugging Face's own tokenizer.json files use for those models. The output lists,
per pre-tokenizer name, each test string with its ids; it also checks that Hugging Face decodes
the ids back to the string.
"""
import json
import sys

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from tokenizers import AddedToken

# The regexes of Llama 3 and Qwen2 (their tokenizer.json Split pre-tokenizers).
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

STRINGS = [
    "Hello, world!",
    "  leading spaces and trailing   ",
    "line one\nline two\n\n\nthree\r\nfour\n",
    "tabs\tand\t\tmixed \t whitespace",
    "a  b   c    d     e",
    "12345 3.14159 1,000,000 007 2024-12-01",
    "I'm sure they'll say we've done it, didn't we? THEY'LL DON'T",
    "naïve café résumé Ünïcödé Ångström",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji 🎉🚀👍🏽 flags 🇫🇷 family 👨‍👩‍👧 end",
    "fn main() {\n    let x: Vec<u32> = vec![1, 2, 3];\n    println!(\"{x:?}\");\n}\n",
    "def f(a, b=2):\n\tif a >= b:  # compare\n\t\treturn a ** b\n\treturn None\n",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more<|im_end|><|im_end|> <file_sep>",
    "<|im_start not special <|im_end",
    "https://example.com/path?q=1&x=2#frag",
    "∑_{i=1}^{n} x_i² ≤ ∞ ± √2",
    "non\u00a0breaking\u2003em space\u3000ideographic",
    "ctrl\x00\x01\x7f bytes",
    "",
    " ",
    "\n",
    "   \n\n  ",
    "x",
    # SmolLM2's chat template rendered for a question (tests/data/chat_template_cases.json).
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
]


def build(spec, pre):
    tokens = spec["tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in spec["merges"]]
    bpe = models.BPE(vocab, merges, ignore_merges=(pre == "llama-bpe"))
    tok = Tokenizer(bpe)
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    elif pre == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        regex = {"llama-bpe": LLAMA3, "qwen2": QWEN2}[pre]
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    types = spec.get("token_type", [1] * len(tokens))
    special = [AddedToken(t, special=True, normalized=False)
               for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens(special)
    return tok


def main():
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    out = {}
    for pre in ("smollm", "gpt2", "llama-bpe", "qwen2"):
        tok = build(spec, pre)
        cases = []
        for text in STRINGS:
            ids = tok.encode(text, add_special_tokens=False).ids
            back = tok.decode(ids, skip_special_tokens=False)
            assert back == text, (pre, text, back)
            cases.append({"text": text, "ids": ids})
        out[pre] = cases
    # One case per line, so a change shows as a readable diff.
    blocks = []
    for pre, cases in out.items():
        lines = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases)
        blocks.append(f" {json.dumps(pre)}: [\n{lines}\n ]")
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(blocks) + "\n}\n")


if __name__ == "__main__":
    main()
