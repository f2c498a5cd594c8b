//! WordPiece, in two flavours:
//! - llama.cpp's `llm_tokenizer_wpm` for `bert` GGUF vocabularies (whose word-initial
//!   tokens carry a U+2581 prefix and continuation tokens none);
//! - Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece for `tokenizer.json`
//!   (continuation tokens prefixed with `##`, `max_input_chars_per_word`).
//!
//! Both look up the longest vocabulary entry at each position with a byte trie, so a
//! word costs O(length x longest token) instead of O(length^2) hash lookups.

use super::fxhash::FxHashMap;
use super::unicode::{
    cpt_flags, flag, general_category, is_bert_chinese_char, nfd, nfd_first, to_lower_simple, Gc,
};
use super::vocab::Vocab;
use super::TokenizerError;

/// A byte trie over token texts: longest-prefix lookups.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trie {
    edges: FxHashMap<(u32, u8), u32>,
    value: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Trie {
    pub(crate) fn new() -> Self {
        Trie {
            edges: FxHashMap::default(),
            value: vec![NONE],
        }
    }

    pub(crate) fn insert(&mut self, key: &[u8], id: u32) {
        let mut node = 0u32;
        for &b in key {
            let next = self.value.len() as u32;
            node = *self.edges.entry((node, b)).or_insert(next);
            if node == next {
                self.value.push(NONE);
            }
        }
        self.value[node as usize] = id;
    }

    /// The node reached by `key` from the root, if any.
    pub(crate) fn walk(&self, from: u32, key: &[u8]) -> Option<u32> {
        let mut node = from;
        for &b in key {
            node = *self.edges.get(&(node, b))?;
        }
        Some(node)
    }

    /// Longest `text[..k]` (k > 0) that is a key, starting from `from`: `(k, id)`.
    pub(crate) fn longest(&self, from: u32, text: &[u8]) -> Option<(usize, u32)> {
        let mut node = from;
        let mut best = None;
        for (i, &b) in text.iter().enumerate() {
            match self.edges.get(&(node, b)) {
                Some(&n) => node = n,
                None => break,
            }
            let v = self.value[node as usize];
            if v != NONE {
                best = Some((i + 1, v));
            }
        }
        best
    }
}

// ---------------------------------------------------------------- llama.cpp flavour

/// llama.cpp's `llm_tokenizer_wpm_session::preprocess`.
fn preprocess_llama(text: &str, lowercase: bool, strip_accents: bool) -> Vec<String> {
    let mut words = vec![String::new()];
    for ch in text.chars() {
        let mut cpt = ch as u32;
        if strip_accents {
            cpt = nfd_first(cpt);
        }
        let flags = cpt_flags(cpt);
        if flags & flag::WHITESPACE != 0 {
            if words.last().is_some_and(|w| !w.is_empty()) {
                words.push(String::new());
            }
            continue;
        }
        if cpt == 0 || cpt == 0xFFFD || flags & flag::CONTROL != 0 {
            continue;
        }
        if strip_accents && flags & flag::MARK != 0 {
            continue;
        }
        let out = if lowercase { to_lower_simple(cpt) } else { cpt };
        let c = char::from_u32(out).unwrap_or('\u{FFFD}');
        if flags & flag::PUNCTUATION != 0
            || (cpt < 0x7F && flags & flag::SYMBOL != 0)
            || is_bert_chinese_char(cpt)
        {
            if words.last().is_some_and(|w| !w.is_empty()) {
                words.push(String::new());
            }
            if let Some(last) = words.last_mut() {
                last.push(c);
            }
            words.push(String::new());
        } else if let Some(last) = words.last_mut() {
            last.push(c);
        }
    }
    if words.last().is_some_and(|w| w.is_empty()) {
        words.pop();
    }
    words
}

/// llama.cpp's `llm_tokenizer_wpm_session::tokenize` (no BOS/SEP: added by the caller).
pub(crate) fn tokenize_llama(
    vocab: &Vocab,
    trie: &Trie,
    text: &str,
    out: &mut Vec<u32>,
) -> Result<(), TokenizerError> {
    for word in preprocess_llama(text, vocab.lowercase, vocab.strip_accents) {
        if word.is_empty() {
            continue;
        }
        let word1 = format!("\u{2581}{word}");
        let bytes = word1.as_bytes();
        let current = out.len();
        let mut i = 0;
        while i < bytes.len() {
            match trie.longest(0, &bytes[i..]) {
                Some((k, id)) => {
                    out.push(id);
                    i += k;
                }
                None => {
                    out.truncate(current);
                    break;
                }
            }
        }
        if out.len() == current {
            out.push(vocab.ids.unk.ok_or(TokenizerError::MissingUnknownToken)?);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- Hugging Face flavour

/// The parts of a `tokenizer.json` BERT pipeline that change the result.
#[derive(Clone, Debug)]
pub(crate) struct HfBert {
    pub clean_text: bool,
    pub handle_chinese_chars: bool,
    pub strip_accents: bool,
    pub lowercase: bool,
    pub continuing_prefix: String,
    pub max_input_chars_per_word: usize,
    pub unk: u32,
    /// Trie over the WordPiece vocabulary texts.
    pub trie: Trie,
}

/// HF `is_whitespace`: \t, \n, \r and `char::is_whitespace`.
fn hf_is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// HF `is_control`: `unicode_categories`' `is_other`, i.e. categories Cc, Cf and Co
/// (unassigned code points are kept), except \t, \n, \r.
fn hf_is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(general_category(c as u32), Gc::Cc | Gc::Cf | Gc::Co)
}

/// HF `is_bert_punc`: ASCII punctuation or a Unicode punctuation category.
fn hf_is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            general_category(c as u32),
            Gc::Pc | Gc::Pd | Gc::Ps | Gc::Pe | Gc::Pi | Gc::Pf | Gc::Po
        )
}

impl HfBert {
    /// BertNormalizer.
    pub(crate) fn normalize(&self, text: &str) -> String {
        let mut s: String = if self.clean_text {
            text.chars()
                .filter(|&c| !(c == '\0' || c == '\u{FFFD}' || hf_is_control(c)))
                .map(|c| if hf_is_whitespace(c) { ' ' } else { c })
                .collect()
        } else {
            text.to_string()
        };
        if self.handle_chinese_chars && s.chars().any(|c| is_bert_chinese_char(c as u32)) {
            let mut t = String::with_capacity(s.len() + 16);
            for c in s.chars() {
                if is_bert_chinese_char(c as u32) {
                    t.push(' ');
                    t.push(c);
                    t.push(' ');
                } else {
                    t.push(c);
                }
            }
            s = t;
        }
        if self.strip_accents {
            s = nfd(&s)
                .into_iter()
                .filter(|&c| general_category(c as u32) != Gc::Mn)
                .collect();
        }
        if self.lowercase {
            s = s.chars().flat_map(char::to_lowercase).collect();
        }
        s
    }

    /// BertPreTokenizer: split on whitespace, then isolate each punctuation character.
    pub(crate) fn pre_tokenize<'a>(&self, text: &'a str, out: &mut Vec<&'a str>) {
        for piece in text.split(char::is_whitespace) {
            let mut start = 0;
            for (i, c) in piece.char_indices() {
                if hf_is_punct(c) {
                    if i > start {
                        out.push(&piece[start..i]);
                    }
                    out.push(&piece[i..i + c.len_utf8()]);
                    start = i + c.len_utf8();
                }
            }
            if start < piece.len() {
                out.push(&piece[start..]);
            }
        }
    }

    /// WordPiece on one word.
    pub(crate) fn word_piece(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > self.max_input_chars_per_word {
            out.push(self.unk);
            return;
        }
        let prefix_node = self.trie.walk(0, self.continuing_prefix.as_bytes());
        let current = out.len();
        let bytes = word.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            let from = if start == 0 { Some(0) } else { prefix_node };
            match from.and_then(|n| self.trie.longest(n, &bytes[start..])) {
                Some((k, id)) => {
                    out.push(id);
                    start += k;
                }
                None => {
                    out.truncate(current);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }

    pub(crate) fn tokenize(&self, text: &str, out: &mut Vec<u32>) {
        let normalized = self.normalize(text);
        let mut words = Vec::new();
        self.pre_tokenize(&normalized, &mut words);
        for w in words {
            self.word_piece(w, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_longest() {
        let mut t = Trie::new();
        t.insert(b"ab", 1);
        t.insert(b"abcd", 2);
        t.insert(b"##c", 3);
        assert_eq!(t.longest(0, b"abcx"), Some((2, 1)));
        assert_eq!(t.longest(0, b"abcde"), Some((4, 2)));
        assert_eq!(t.longest(0, b"x"), None);
        let p = t.walk(0, b"##").unwrap();
        assert_eq!(t.longest(p, b"cd"), Some((1, 3)));
    }

    #[test]
    fn llama_preprocess() {
        assert_eq!(
            preprocess_llama("Héllo, WORLD!  a\u{200B}b", true, true),
            ["hello", ",", "world", "!", "ab"]
        );
        assert_eq!(preprocess_llama("中文", true, true), ["中", "文"]);
    }

    #[test]
    fn hf_normalize() {
        let b = HfBert {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: true,
            lowercase: true,
            continuing_prefix: "##".into(),
            max_input_chars_per_word: 100,
            unk: 0,
            trie: Trie::new(),
        };
        assert_eq!(b.normalize("Café\tNAÏVE\u{200B}x 中"), "cafe naivex  中 ");
        let mut w = Vec::new();
        b.pre_tokenize("hello, world!!  x", &mut w);
        assert_eq!(w, ["hello", ",", "world", "!", "!", "x"]);
    }
}
