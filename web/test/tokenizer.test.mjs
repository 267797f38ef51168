// The demo's WordPiece tokenizer against ids produced by Hugging Face `tokenizers` 0.23.3 from
// all-MiniLM-L6-v2's tokenizer.json (same uncased BERT vocab as paraphrase-MiniLM-L3-v2), on
// sentences that exercise accents, punctuation, CJK, emoji, control whitespace and long words.
// Usage: node web/test/tokenizer.test.mjs path/to/minilm-vocab.txt
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { WordPieceTokenizer } from '../../examples/web/tokenizer.js';

const vocab = process.argv[2] ?? '.cache/models/minilm-vocab.txt';
const tok = new WordPieceTokenizer(fs.readFileSync(vocab, 'utf8'));
const cases = [
  ['A man is playing a guitar.', [101, 1037, 2158, 2003, 2652, 1037, 2858, 1012, 102]],
  [
    "Héllo, WORLD!! It's 3.14 o'clock—naïve café résumé",
    [101, 7592, 1010, 2088, 999, 999, 2009, 1005, 1055, 1017, 1012, 2403, 1051, 1005, 5119, 1517, 15743, 7668, 13746, 102],
  ],
  [
    'Unbelievably antidisestablishmentarianism',
    [101, 4895, 8671, 2666, 3567, 6321, 3424, 10521, 4355, 7875, 13602, 3672, 12199, 2964, 102],
  ],
  ['中文字符 and emoji 🙂 test', [101, 1746, 1861, 100, 100, 1998, 7861, 29147, 2072, 100, 3231, 102]],
  ['tabs\tand\nnewlines  spaces', [101, 21628, 2015, 1998, 2047, 12735, 7258, 102]],
  ["co-operate; don't (stop) [now]", [101, 2522, 1011, 5452, 1025, 2123, 1005, 1056, 1006, 2644, 1007, 1031, 2085, 1033, 102]],
];
for (const [text, want] of cases) assert.deepEqual(tok.encode(text), want, `tokens of ${JSON.stringify(text)}`);

// Truncation keeps [CLS] ... [SEP] within maxLength; a batch is padded with [PAD] and masked.
assert.equal(tok.encode('word '.repeat(300)).length, 128);
assert.equal(tok.encode('word '.repeat(300)).at(-1), 102);
const b = tok.encodeBatch(['a b c', 'a']);
assert.equal(b.seq, 5);
assert.deepEqual(Array.from(b.attentionMask, Number), [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
assert.deepEqual(Array.from(b.inputIds.slice(5), Number), [101, 1037, 102, 0, 0]);
console.log(`tokenizer: ${cases.length + 3} checks passed`);
