//! Special-token partitioning (llama.cpp's `tokenizer_st_partition`): before the text
//! is tokenized, the text of control, user-defined and unknown tokens is cut out of it
//! and replaced by the token itself; the rest is tokenized normally, fragment by
//! fragment.
//!
//! llama.cpp processes the special tokens one at a time, longest text first, each over
//! all the remaining text fragments, left to right. The order of tokens whose texts
//! have the same length comes from `std::sort` (not stable) in llama.cpp; it matters
//! only when two such tokens overlap in the input, and [`libstdcxx_sort`] reproduces
//! libstdc++'s introsort exactly so that even then the result is the same as a
//! llama.cpp built with GCC.

use super::fxhash::FxHashMap;
use super::vocab::{attr, Vocab};

/// A piece of the input after partitioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// A byte range `start..end` of the input text, still to be tokenized.
    Text(usize, usize),
    Token(u32),
}

/// A byte trie over the special tokens' texts, to find quickly which of them occur.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpecialMatcher {
    /// (node, byte) -> child node
    edges: FxHashMap<(u32, u8), u32>,
    /// node -> index in the special-token order (u32::MAX: none)
    value: Vec<u32>,
}

impl SpecialMatcher {
    /// `order`: the special tokens in processing order.
    pub(crate) fn new(vocab: &Vocab, order: &[u32]) -> Self {
        let mut m = SpecialMatcher {
            edges: FxHashMap::default(),
            value: vec![u32::MAX],
        };
        for (rank, &id) in order.iter().enumerate() {
            let text = vocab.text(id).as_bytes();
            let mut node = 0u32;
            for &b in text {
                let next = m.value.len() as u32;
                node = *m.edges.entry((node, b)).or_insert_with(|| next);
                if node == next {
                    m.value.push(u32::MAX);
                }
            }
            m.value[node as usize] = rank as u32;
        }
        m
    }

    /// Ranks of the special tokens that occur anywhere in `text`, sorted.
    fn occurring(&self, text: &[u8], n_special: usize) -> Vec<u32> {
        let mut seen = vec![false; n_special];
        let mut found = Vec::new();
        if self.edges.is_empty() {
            return found;
        }
        for start in 0..text.len() {
            let mut node = 0u32;
            for &b in &text[start..] {
                match self.edges.get(&(node, b)) {
                    Some(&n) => node = n,
                    None => break,
                }
                let v = self.value[node as usize];
                if v != u32::MAX && !seen[v as usize] {
                    seen[v as usize] = true;
                    found.push(v);
                }
            }
        }
        found.sort_unstable();
        found
    }
}

fn is_c_space(b: u8) -> bool {
    // isspace() in the "C" locale
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Splits `text` around special tokens. With `parse_special` false, only user-defined
/// tokens are split out (as in llama.cpp, and as Hugging Face does for added tokens);
/// control and unknown tokens stay plain text.
pub(crate) fn partition(
    vocab: &Vocab,
    order: &[u32],
    matcher: &SpecialMatcher,
    text: &str,
    parse_special: bool,
) -> Vec<Fragment> {
    let mut frags = Vec::new();
    if text.is_empty() {
        return frags;
    }
    frags.push(Fragment::Text(0, text.len()));
    let bytes = text.as_bytes();

    for rank in matcher.occurring(bytes, order.len()) {
        let id = order[rank as usize];
        let data = vocab.token(id);
        if !parse_special && data.attr & (attr::CONTROL | attr::UNKNOWN) != 0 {
            continue;
        }
        let needle = &data.text;
        let mut next = Vec::with_capacity(frags.len() + 2);
        for &frag in &frags {
            let Fragment::Text(start, end) = frag else {
                next.push(frag);
                continue;
            };
            let (mut off, mut len) = (start, end - start);
            loop {
                let hay = &text[off..off + len];
                let Some(rel) = hay.find(&**needle) else {
                    next.push(Fragment::Text(off, off + len));
                    break;
                };
                let m = off + rel;
                if m > off {
                    let mut left_len = m - off;
                    if data.attr & attr::LSTRIP != 0 {
                        while left_len > 0 && is_c_space(bytes[off + left_len - 1]) {
                            left_len -= 1;
                        }
                    }
                    if left_len > 0 {
                        next.push(Fragment::Text(off, off + left_len));
                    }
                }
                next.push(Fragment::Token(id));
                let after = m + needle.len();
                if after < off + len {
                    let mut r_off = after;
                    let mut r_len = off + len - after;
                    if data.attr & attr::RSTRIP != 0 {
                        while r_len > 0 && is_c_space(bytes[r_off]) {
                            r_off += 1;
                            r_len -= 1;
                        }
                    }
                    if r_len > 0 {
                        off = r_off;
                        len = r_len;
                        continue;
                    }
                }
                break;
            }
        }
        frags = next;
    }
    frags
}

/// libstdc++'s `std::sort` (introsort + final insertion sort), element for element, so
/// that elements that compare equal end up in the same order as in llama.cpp.
pub(crate) fn libstdcxx_sort<T: Copy>(v: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    let n = v.len();
    if n < 2 {
        return;
    }
    let depth = 2 * (usize::BITS - 1 - n.leading_zeros()) as usize;
    introsort_loop(v, 0, n, depth, less);
    final_insertion_sort(v, 0, n, less);
}

const THRESHOLD: usize = 16;

fn introsort_loop<T: Copy>(
    v: &mut [T],
    first: usize,
    mut last: usize,
    mut depth: usize,
    less: &impl Fn(&T, &T) -> bool,
) {
    while last - first > THRESHOLD {
        if depth == 0 {
            heap_sort(v, first, last, less);
            return;
        }
        depth -= 1;
        let cut = partition_pivot(v, first, last, less);
        introsort_loop(v, cut, last, depth, less);
        last = cut;
    }
}

fn partition_pivot<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &impl Fn(&T, &T) -> bool,
) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(v, first, first + 1, mid, last - 1, less);
    unguarded_partition(v, first + 1, last, first, less)
}

fn move_median_to_first<T: Copy>(
    v: &mut [T],
    result: usize,
    a: usize,
    b: usize,
    c: usize,
    less: &impl Fn(&T, &T) -> bool,
) {
    let m = if less(&v[a], &v[b]) {
        if less(&v[b], &v[c]) {
            b
        } else if less(&v[a], &v[c]) {
            c
        } else {
            a
        }
    } else if less(&v[a], &v[c]) {
        a
    } else if less(&v[b], &v[c]) {
        c
    } else {
        b
    };
    v.swap(result, m);
}

fn unguarded_partition<T: Copy>(
    v: &mut [T],
    mut first: usize,
    mut last: usize,
    pivot: usize,
    less: &impl Fn(&T, &T) -> bool,
) -> usize {
    loop {
        while less(&v[first], &v[pivot]) {
            first += 1;
        }
        last -= 1;
        while less(&v[pivot], &v[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        v.swap(first, last);
        first += 1;
    }
}

fn final_insertion_sort<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &impl Fn(&T, &T) -> bool,
) {
    if last - first > THRESHOLD {
        insertion_sort(v, first, first + THRESHOLD, less);
        for i in first + THRESHOLD..last {
            unguarded_linear_insert(v, i, less);
        }
    } else {
        insertion_sort(v, first, last, less);
    }
}

fn insertion_sort<T: Copy>(v: &mut [T], first: usize, last: usize, less: &impl Fn(&T, &T) -> bool) {
    if first == last {
        return;
    }
    for i in first + 1..last {
        if less(&v[i], &v[first]) {
            let val = v[i];
            v.copy_within(first..i, first + 1);
            v[first] = val;
        } else {
            unguarded_linear_insert(v, i, less);
        }
    }
}

fn unguarded_linear_insert<T: Copy>(v: &mut [T], mut last: usize, less: &impl Fn(&T, &T) -> bool) {
    let val = v[last];
    let mut next = last - 1;
    while less(&val, &v[next]) {
        v[last] = v[next];
        last = next;
        next -= 1;
    }
    v[last] = val;
}

fn heap_sort<T: Copy>(v: &mut [T], first: usize, last: usize, less: &impl Fn(&T, &T) -> bool) {
    // std::__partial_sort(first, last, last): make_heap, then sort_heap
    let len = last - first;
    if len >= 2 {
        let mut parent = (len - 2) / 2;
        loop {
            let value = v[first + parent];
            adjust_heap(v, first, parent, len, value, less);
            if parent == 0 {
                break;
            }
            parent -= 1;
        }
    }
    let mut end = last;
    while end - first > 1 {
        end -= 1;
        let value = v[end];
        v[end] = v[first];
        adjust_heap(v, first, 0, end - first, value, less);
    }
}

fn adjust_heap<T: Copy>(
    v: &mut [T],
    first: usize,
    mut hole: usize,
    len: usize,
    value: T,
    less: &impl Fn(&T, &T) -> bool,
) {
    let top = hole;
    let mut child = hole;
    while child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if less(&v[first + child], &v[first + child - 1]) {
            child -= 1;
        }
        v[first + hole] = v[first + child];
        hole = child;
    }
    if len & 1 == 0 && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        v[first + hole] = v[first + child - 1];
        hole = child - 1;
    }
    // push_heap
    let mut parent = if hole > 0 { (hole - 1) / 2 } else { 0 };
    while hole > top && less(&v[first + parent], &value) {
        v[first + hole] = v[first + parent];
        hole = parent;
        parent = if hole > 0 { (hole - 1) / 2 } else { 0 };
    }
    v[first + hole] = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_sorts() {
        // pseudo-random keys with many ties, checked against a stable sort by key
        let mut x = 12345u64;
        for n in [0usize, 1, 2, 5, 16, 17, 100, 1000, 5000] {
            let mut v: Vec<(u32, u32)> = (0..n as u32)
                .map(|i| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (((x >> 33) % 13) as u32, i)
                })
                .collect();
            let mut expect = v.clone();
            expect.sort_by_key(|e| std::cmp::Reverse(e.0));
            libstdcxx_sort(&mut v, &|a: &(u32, u32), b: &(u32, u32)| a.0 > b.0);
            let keys: Vec<u32> = v.iter().map(|e| e.0).collect();
            let ekeys: Vec<u32> = expect.iter().map(|e| e.0).collect();
            assert_eq!(keys, ekeys);
            let mut ids: Vec<u32> = v.iter().map(|e| e.1).collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..n as u32).collect::<Vec<_>>());
        }
        // heap-sort fallback (depth 0) sorts too
        let mut v: Vec<u32> = (0..100).rev().collect();
        heap_sort(&mut v, 0, 100, &|a: &u32, b: &u32| a < b);
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }

    /// Orders produced by libstdc++'s `std::sort` (g++ 12) for `len[i] = (7i + i/3) % 5`,
    /// sorted by `len` descending: the order among equal keys must be the same.
    #[test]
    fn sort_matches_libstdcxx() {
        let n300 = "47,242,96,244,246,201,51,49,199,139,141,257,169,197,261,171,107,36,167,81,79,216,77,214,227,137,229,259,231,212,66,92,64,62,94,34,182,152,287,289,291,17,184,126,19,122,21,6,186,276,109,4,274,111,124,32,154,272,2,156,175,173,192,83,87,177,85,132,207,128,117,205,115,203,98,113,100,188,102,190,237,130,278,42,40,38,263,265,267,145,27,25,23,220,280,282,147,12,10,8,293,295,297,158,218,222,72,70,68,233,235,162,160,57,55,53,248,250,252,143,226,168,153,164,166,151,239,299,288,286,284,273,271,269,258,256,254,243,241,179,228,1,224,213,211,209,198,196,194,183,181,78,123,121,119,14,108,16,106,18,104,93,91,89,149,29,76,74,31,33,63,61,59,48,46,44,136,134,3,138,84,217,82,219,80,215,275,140,159,230,69,234,232,67,262,260,39,50,249,52,247,54,245,125,37,155,264,35,144,157,142,65,187,20,7,292,170,129,110,189,112,277,114,185,172,127,174,290,9,200,24,5,22,294,279,95,204,97,202,99,13,0,43,41,150,268,298,26,281,11,266,283,15,270,30,28,296,285,178,101,103,105,195,193,191,116,118,120,180,206,176,131,133,135,165,163,161,146,148,73,255,253,251,56,58,60,240,238,236,71,45,75,225,223,221,86,88,90,210,208";
        let cases: [(usize, Vec<u32>); 3] = [
            (
                20,
                vec![
                    19, 2, 17, 4, 6, 10, 12, 8, 14, 16, 3, 18, 1, 7, 9, 5, 0, 11, 13, 15,
                ],
            ),
            (
                40,
                vec![
                    2, 4, 21, 6, 32, 19, 36, 17, 34, 27, 25, 23, 12, 10, 8, 38, 14, 33, 16, 18, 31,
                    3, 29, 1, 35, 37, 39, 24, 22, 20, 9, 7, 5, 26, 28, 30, 15, 13, 11, 0,
                ],
            ),
            (300, n300.split(',').map(|x| x.parse().unwrap()).collect()),
        ];
        for (n, want) in cases {
            let len: Vec<u32> = (0..n as u32).map(|i| (i * 7 + i / 3) % 5).collect();
            let mut ids: Vec<u32> = (0..n as u32).collect();
            libstdcxx_sort(&mut ids, &|a: &u32, b: &u32| {
                len[*a as usize] > len[*b as usize]
            });
            assert_eq!(ids, want, "n = {n}");
        }
    }
}
