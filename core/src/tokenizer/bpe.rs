//! Byte-level BPE merges (llama.cpp's `llm_tokenizer_bpe_session`): a priority queue of
//! adjacent symbol pairs ordered by merge rank (then by position), over a linked list
//! of symbols, so a word of n characters costs O(n log n) whatever its shape.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::fxhash::FxHashMap;

const NONE: u32 = u32::MAX;

/// Merge ranks from `tokenizer.ggml.merges` ("left right" per line, rank = line index).
#[derive(Clone, Debug, Default)]
pub(crate) struct BpeRanks {
    /// Interned merge halves.
    parts: FxHashMap<Box<str>, u32>,
    /// `(left part << 32) | right part` -> rank.
    ranks: FxHashMap<u64, u32>,
}

impl BpeRanks {
    pub(crate) fn from_merges<'a>(merges: impl IntoIterator<Item = &'a str>) -> Self {
        let mut r = BpeRanks::default();
        for (i, m) in merges.into_iter().enumerate() {
            // llama.cpp: word.find(' ', 1); no space -> both halves empty
            let (first, second) = match m.as_bytes().iter().skip(1).position(|&b| b == b' ') {
                Some(p) => (&m[..p + 1], &m[p + 2..]),
                None => ("", ""),
            };
            let a = r.intern(first);
            let b = r.intern(second);
            // std::unordered_map::emplace: the first occurrence wins
            r.ranks
                .entry(((a as u64) << 32) | b as u64)
                .or_insert(i as u32);
        }
        r
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.parts.get(s) {
            return id;
        }
        let id = self.parts.len() as u32;
        self.parts.insert(s.into(), id);
        id
    }

    pub(crate) fn len(&self) -> usize {
        self.ranks.len()
    }

    #[inline]
    fn part(&self, s: &str) -> u32 {
        self.parts.get(s).copied().unwrap_or(NONE)
    }

    #[inline]
    fn rank(&self, a: u32, b: u32) -> Option<u32> {
        if a == NONE || b == NONE {
            return None;
        }
        self.ranks.get(&(((a as u64) << 32) | b as u64)).copied()
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
    part: u32,
}

/// Reusable buffers for [`merge_word`].
#[derive(Default)]
pub(crate) struct BpeScratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<(u32, u32, u32, u32)>>, // (rank, left, right, size)
}

/// Runs the merges on one (byte-encoded) word and returns the final symbols as byte
/// ranges of `word`, in order.
pub(crate) fn merge_word(
    ranks: &BpeRanks,
    word: &str,
    scratch: &mut BpeScratch,
    out: &mut Vec<(usize, usize)>,
) {
    let syms = &mut scratch.syms;
    let heap = &mut scratch.heap;
    syms.clear();
    heap.clear();

    let n_chars = word.chars().count();
    for (idx, (i, ch)) in word.char_indices().enumerate() {
        let len = ch.len_utf8();
        syms.push(Sym {
            start: i as u32,
            len: len as u32,
            prev: idx as i32 - 1,
            next: if idx + 1 == n_chars {
                -1
            } else {
                idx as i32 + 1
            },
            part: ranks.part(&word[i..i + len]),
        });
    }

    let add =
        |syms: &[Sym], heap: &mut BinaryHeap<Reverse<(u32, u32, u32, u32)>>, l: i32, r: i32| {
            if l < 0 || r < 0 {
                return;
            }
            let (sl, sr) = (&syms[l as usize], &syms[r as usize]);
            if let Some(rank) = ranks.rank(sl.part, sr.part) {
                heap.push(Reverse((rank, l as u32, r as u32, sl.len + sr.len)));
            }
        };

    for i in 1..syms.len() {
        add(syms, heap, i as i32 - 1, i as i32);
    }

    while let Some(Reverse((_, left, right, size))) = heap.pop() {
        let (l, r) = (left as usize, right as usize);
        let (ln, rn) = (syms[l].len, syms[r].len);
        // outdated entry: one side was merged away or grew since it was queued
        if ln == 0 || rn == 0 || ln + rn != size {
            continue;
        }
        syms[l].len += rn;
        syms[r].len = 0;
        let next = syms[r].next;
        syms[l].next = next;
        if next >= 0 {
            syms[next as usize].prev = left as i32;
        }
        let s = syms[l].start as usize;
        syms[l].part = ranks.part(&word[s..s + syms[l].len as usize]);
        let prev = syms[l].prev;
        add(syms, heap, prev, left as i32);
        add(syms, heap, left as i32, next);
    }

    for s in syms.iter() {
        if s.len > 0 {
            out.push((s.start as usize, (s.start + s.len) as usize));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(merges: &[&str], word: &str) -> Vec<String> {
        let r = BpeRanks::from_merges(merges.iter().copied());
        let mut out = Vec::new();
        merge_word(&r, word, &mut BpeScratch::default(), &mut out);
        out.into_iter()
            .map(|(a, b)| word[a..b].to_string())
            .collect()
    }

    #[test]
    fn merges_by_rank() {
        let m = ["l o", "lo w", "e r", "low er"];
        assert_eq!(run(&m, "lower"), ["lower"]);
        assert_eq!(run(&m, "lowest"), ["low", "e", "s", "t"]);
        assert_eq!(run(&m, ""), Vec::<String>::new());
        // ties on rank are broken by position: "aaa" with "a a" merges the left pair
        assert_eq!(run(&["a a"], "aaa"), ["aa", "a"]);
        assert_eq!(run(&["a a", "aa aa"], "aaaaa"), ["aaaa", "a"]);
    }

    #[test]
    /// A 1 MiB word merges completely (its speed is measured by the `tokenizer_bench`
    /// benchmark, not asserted here).
    fn a_very_long_word_merges_completely() {
        let mut merges = vec!["a a".to_string()];
        let mut cur = "aa".to_string();
        for _ in 0..10 {
            merges.push(format!("{cur} {cur}"));
            cur = format!("{cur}{cur}");
        }
        let refs: Vec<&str> = merges.iter().map(|s| s.as_str()).collect();
        let word = "a".repeat(1 << 20);
        let out = run(&refs, &word);
        assert_eq!(out.len(), 512);
    }
}
