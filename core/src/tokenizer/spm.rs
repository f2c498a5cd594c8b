//! SentencePiece BPE (llama.cpp's `llm_tokenizer_spm`): start from UTF-8 characters,
//! repeatedly merge the adjacent pair whose concatenation is the vocabulary token with
//! the highest score (ties: leftmost), then emit each final piece as its token, or as
//! byte tokens `<0xXX>` when it is not in the vocabulary.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::vocab::Vocab;
use super::TokenizerError;

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
}

struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the lower left index.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| Reverse(self.left).cmp(&Reverse(other.left)))
    }
}

/// Token for one byte: `<0xXX>`, else the byte itself as a one-character token
/// (llama.cpp's `byte_to_token` for SPM vocabularies).
pub(crate) fn byte_to_token(vocab: &Vocab, b: u8) -> Result<u32, TokenizerError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let buf = [
        b'<',
        b'0',
        b'x',
        HEX[(b >> 4) as usize],
        HEX[(b & 15) as usize],
        b'>',
    ];
    // buf is ASCII
    if let Some(id) = std::str::from_utf8(&buf)
        .ok()
        .and_then(|s| vocab.text_to_token(s))
    {
        return Ok(id);
    }
    let one = [b];
    if let Some(id) = std::str::from_utf8(&one)
        .ok()
        .and_then(|s| vocab.text_to_token(s))
    {
        return Ok(id);
    }
    Err(TokenizerError::MissingByteToken(b))
}

/// Tokenizes `text` (spaces already escaped to U+2581) and appends the ids to `out`.
pub(crate) fn tokenize(
    vocab: &Vocab,
    text: &str,
    out: &mut Vec<u32>,
) -> Result<(), TokenizerError> {
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    let n_chars = text.chars().count();
    for (idx, (i, ch)) in text.char_indices().enumerate() {
        syms.push(Sym {
            start: i as u32,
            len: ch.len_utf8() as u32,
            prev: idx as i32 - 1,
            next: if idx + 1 == n_chars {
                -1
            } else {
                idx as i32 + 1
            },
        });
    }
    if syms.is_empty() {
        return Ok(());
    }

    let mut heap = BinaryHeap::new();
    let try_add = |syms: &[Sym], heap: &mut BinaryHeap<Bigram>, l: i32, r: i32| {
        if l < 0 || r < 0 {
            return;
        }
        let (sl, sr) = (syms[l as usize], syms[r as usize]);
        let s = sl.start as usize;
        let piece = &text[s..s + (sl.len + sr.len) as usize];
        if let Some(id) = vocab.text_to_token(piece) {
            heap.push(Bigram {
                score: vocab.token(id).score,
                left: l as u32,
                right: r as u32,
                size: piece.len() as u32,
            });
        }
    };

    for i in 1..syms.len() {
        try_add(&syms, &mut heap, i as i32 - 1, i as i32);
    }

    while let Some(b) = heap.pop() {
        let (l, r) = (b.left as usize, b.right as usize);
        let (ln, rn) = (syms[l].len, syms[r].len);
        if ln == 0 || rn == 0 || ln + rn != b.size {
            continue;
        }
        syms[l].len += rn;
        syms[r].len = 0;
        let next = syms[r].next;
        syms[l].next = next;
        if next >= 0 {
            syms[next as usize].prev = l as i32;
        }
        let prev = syms[l].prev;
        try_add(&syms, &mut heap, prev, l as i32);
        try_add(&syms, &mut heap, l as i32, next);
    }

    let mut i = 0i32;
    while i != -1 {
        let s = syms[i as usize];
        let piece = &text[s.start as usize..(s.start + s.len) as usize];
        match vocab.text_to_token(piece) {
            Some(id) => out.push(id),
            None => {
                for &b in piece.as_bytes() {
                    out.push(byte_to_token(vocab, b)?);
                }
            }
        }
        i = s.next;
    }
    Ok(())
}
