#!/usr/bin/env python3
"""Writes reference ids for Kiln's SentencePiece-style tokenizer test from Google's
`sentencepiece` (pip install sentencepiece protobuf), an independent implementation.

    python3 scripts/sentencepiece_reference_ids.py OUT.json

It builds, in memory, a BPE model with byte fallback over the same hand-made vocabulary as
`sentencepiece_spec()` in runtime/tests/text_tokenizer.rs (keep the two in step) and encodes
strings without control tokens (sentencepiece does not match `<s>` in text, and it adds the
space prefix only at the start, not after a user-defined token as GGML does), with and without
the space prefix (`add_dummy_prefix`).
"""
import json
import sys

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

PIECES = [("▁", -10.0), ("h", -10.0), ("e", -10.0), ("l", -10.0), ("o", -10.0), ("w", -10.0),
          ("r", -10.0), ("d", -10.0), ("ll", -1.0), ("▁h", -2.0), ("he", -1.5), ("llo", -3.0),
          ("▁he", -2.5), ("▁hello", -4.0), ("or", -1.2), ("▁w", -2.2), ("ld", -2.0),
          ("▁wor", -3.5)]
STRINGS = ["hello world", " hello", "lll", "é!", "<s>", "hello  wörld lll", "hi <|user|>", "héllo\tworld"]


def build(add_dummy_prefix):
    m = model_pb2.ModelProto()
    t = model_pb2.ModelProto.SentencePiece.Type
    vocab = [("<unk>", 0.0, t.UNKNOWN), ("<s>", 0.0, t.CONTROL), ("</s>", 0.0, t.CONTROL)]
    vocab += [(f"<0x{b:02X}>", 0.0, t.BYTE) for b in range(256)]
    vocab += [(p, s, t.NORMAL) for p, s in PIECES]
    vocab += [("<|user|>", 0.0, t.USER_DEFINED)]
    for piece, score, kind in vocab:
        m.pieces.add(piece=piece, score=score, type=kind)
    m.trainer_spec.model_type = model_pb2.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 0, 1, 2, -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = add_dummy_prefix
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


def main():
    out = {}
    for prefix in (True, False):
        sp = build(prefix)
        out["space_prefix" if prefix else "no_space_prefix"] = [
            {"text": s, "ids": sp.encode(s)} for s in STRINGS]
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(
            f' {json.dumps(k)}: [\n' + ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in v) + "\n ]"
            for k, v in out.items()) + "\n}\n")


if __name__ == "__main__":
    main()
