//! The merge loop shared by both BPE flavours: start from one symbol per character, then
//! repeatedly merge the adjacent pair with the best priority (leftmost on ties) until no
//! pair can merge. A heap of candidate pairs with lazy invalidation makes it O(n log n).
//!
//! Byte-level BPE ranks a pair by its merge rank; SentencePiece-style BPE by the score of the
//! token the pair forms. The caller supplies that as `pair`: it gets the two symbols' token ids
//! and the text they would form, and returns `(priority, merged id)`, lower priority first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

/// One symbol of the word being merged: a byte range of the word and its token, if any.
#[derive(Debug, Clone)]
struct Symbol {
    range: Range<usize>,
    id: Option<u32>,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of `left` with its right neighbour, valid while both still have the
/// byte lengths recorded here.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    priority: u64,
    left: usize,
    right: usize,
    len: usize,
    merged: u32,
}

/// Merges the symbols of `word` (initially `initial`: contiguous byte ranges covering it, each
/// with its token id if it has one) and returns the final symbols in order.
pub(crate) fn merge(
    word: &str,
    initial: Vec<(Range<usize>, Option<u32>)>,
    pair: impl Fn(Option<u32>, Option<u32>, &str) -> Option<(u64, u32)>,
) -> Vec<(Range<usize>, Option<u32>)> {
    let count = initial.len();
    let mut symbols: Vec<Symbol> = initial
        .into_iter()
        .enumerate()
        .map(|(i, (range, id))| Symbol {
            range,
            id,
            prev: i.checked_sub(1),
            next: (i + 1 < count).then_some(i + 1),
        })
        .collect();
    let mut heap = BinaryHeap::new();
    let candidate = |symbols: &[Symbol], left: usize, right: usize| {
        let (l, r) = (&symbols[left], &symbols[right]);
        pair(l.id, r.id, &word[l.range.start..r.range.end]).map(|(priority, merged)| {
            Reverse(Candidate {
                priority,
                left,
                right,
                len: r.range.end - l.range.start,
                merged,
            })
        })
    };
    for left in 0..count.saturating_sub(1) {
        heap.extend(candidate(&symbols, left, left + 1));
    }
    while let Some(Reverse(c)) = heap.pop() {
        let (l, r) = (&symbols[c.left], &symbols[c.right]);
        // Stale: one side was merged away or grew since this candidate was made.
        if l.next != Some(c.right) || r.range.end - l.range.start != c.len {
            continue;
        }
        let right_next = r.next;
        let left_prev = l.prev;
        symbols[c.left].range.end = symbols[c.right].range.end;
        symbols[c.left].id = Some(c.merged);
        symbols[c.left].next = right_next;
        symbols[c.right].range = 0..0;
        symbols[c.right].prev = None;
        symbols[c.right].next = None;
        if let Some(n) = right_next {
            symbols[n].prev = Some(c.left);
            heap.extend(candidate(&symbols, c.left, n));
        }
        if let Some(p) = left_prev {
            heap.extend(candidate(&symbols, p, c.left));
        }
    }
    let mut out = Vec::new();
    let mut at = (count > 0).then_some(0);
    while let Some(i) = at {
        out.push((symbols[i].range.clone(), symbols[i].id));
        at = symbols[i].next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merges over single characters with a rank table of merged strings.
    fn run(word: &str, ranks: &[&str]) -> Vec<String> {
        let initial = word
            .char_indices()
            .map(|(i, c)| (i..i + c.len_utf8(), Some(0)))
            .collect();
        merge(word, initial, |_, _, joined| {
            ranks.iter().position(|r| *r == joined).map(|rank| (rank as u64, 0))
        })
        .into_iter()
        .map(|(range, _)| word[range].to_string())
        .collect()
    }

    #[test]
    fn best_rank_first_and_leftmost_on_ties() {
        assert_eq!(run("abcd", &["bc", "ab", "bcd"]), ["a", "bcd"]);
        assert_eq!(run("abcd", &["bc", "ab", "bcd", "abcd"]), ["abcd"]);
        assert_eq!(run("aaaa", &["aa"]), ["aa", "aa"]);
        assert_eq!(run("aaa", &["aa"]), ["aa", "a"]);
        assert_eq!(run("aaaa", &["aa", "aaaa"]), ["aaaa"]);
        assert_eq!(run("", &["aa"]), Vec::<String>::new());
        assert_eq!(run("héé", &["éé", "h"]), ["h", "éé"]);
    }
}
