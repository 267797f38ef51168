// A BERT WordPiece tokenizer (uncased), as used by paraphrase-MiniLM-L3-v2, written from the
// published algorithm: clean the text, split CJK characters, lowercase, strip accents, split on
// whitespace and punctuation, then greedy longest-match-first WordPiece with '##' continuations.

const isControl = (ch) => /[\p{Cc}\p{Cf}]/u.test(ch) && !/[\t\n\r]/.test(ch);
const isWhitespace = (ch) => /\s/u.test(ch);
const isPunctuation = (ch) => {
  const c = ch.codePointAt(0);
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  return /\p{P}/u.test(ch);
};
const isCjk = (c) =>
  (c >= 0x4e00 && c <= 0x9fff) ||
  (c >= 0x3400 && c <= 0x4dbf) ||
  (c >= 0x20000 && c <= 0x2a6df) ||
  (c >= 0x2a700 && c <= 0x2b73f) ||
  (c >= 0x2b740 && c <= 0x2b81f) ||
  (c >= 0x2b820 && c <= 0x2ceaf) ||
  (c >= 0xf900 && c <= 0xfaff) ||
  (c >= 0x2f800 && c <= 0x2fa1f);

export class WordPieceTokenizer {
  /** @param {string} vocabText vocab.txt: one token per line, the line number is the id. */
  constructor(vocabText, { maxLength = 128, maxWordChars = 100 } = {}) {
    this.vocab = new Map();
    vocabText.split('\n').forEach((line, i) => {
      const tok = line.replace(/\r$/, '');
      if (tok !== '' && !this.vocab.has(tok)) this.vocab.set(tok, i);
    });
    for (const t of ['[CLS]', '[SEP]', '[UNK]', '[PAD]']) {
      if (!this.vocab.has(t)) throw new Error(`vocab has no ${t} token; is it a BERT vocab.txt?`);
    }
    this.maxLength = maxLength;
    this.maxWordChars = maxWordChars;
  }

  /** Words after BERT's basic tokenization (lowercased, accents stripped, punctuation split). */
  basicTokens(text) {
    let cleaned = '';
    for (const ch of text) {
      const c = ch.codePointAt(0);
      if (c === 0 || c === 0xfffd || isControl(ch)) continue;
      if (isWhitespace(ch)) cleaned += ' ';
      else if (isCjk(c)) cleaned += ` ${ch} `;
      else cleaned += ch;
    }
    const out = [];
    for (const word of cleaned.trim().split(/ +/)) {
      if (!word) continue;
      const w = word.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '');
      let cur = '';
      for (const ch of w) {
        if (isPunctuation(ch)) {
          if (cur) out.push(cur);
          out.push(ch);
          cur = '';
        } else cur += ch;
      }
      if (cur) out.push(cur);
    }
    return out;
  }

  /** WordPiece ids of one word. */
  wordPieces(word) {
    const chars = Array.from(word);
    if (chars.length > this.maxWordChars) return [this.vocab.get('[UNK]')];
    const ids = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let id;
      while (start < end) {
        const piece = (start > 0 ? '##' : '') + chars.slice(start, end).join('');
        id = this.vocab.get(piece);
        if (id !== undefined) break;
        end -= 1;
      }
      if (id === undefined) return [this.vocab.get('[UNK]')];
      ids.push(id);
      start = end;
    }
    return ids;
  }

  /** [CLS] pieces [SEP], truncated to maxLength. */
  encode(text) {
    const ids = [this.vocab.get('[CLS]')];
    for (const w of this.basicTokens(text)) ids.push(...this.wordPieces(w));
    ids.length = Math.min(ids.length, this.maxLength - 1);
    ids.push(this.vocab.get('[SEP]'));
    return ids;
  }

  /** A padded batch: {inputIds, attentionMask} as BigInt64Array [batch, seq], and seq. */
  encodeBatch(texts) {
    const rows = texts.map((t) => this.encode(t));
    const seq = Math.max(...rows.map((r) => r.length));
    const inputIds = new BigInt64Array(rows.length * seq);
    const attentionMask = new BigInt64Array(rows.length * seq);
    const pad = BigInt(this.vocab.get('[PAD]'));
    rows.forEach((r, b) => {
      for (let j = 0; j < seq; j++) {
        inputIds[b * seq + j] = j < r.length ? BigInt(r[j]) : pad;
        attentionMask[b * seq + j] = j < r.length ? 1n : 0n;
      }
    });
    return { inputIds, attentionMask, batch: rows.length, seq };
  }
}
