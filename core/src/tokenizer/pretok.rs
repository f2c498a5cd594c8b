//! BPE pre-tokenizers: the word splitting that llama.cpp's `llm_tokenizer_bpe` does
//! before the merges, one variant per `tokenizer.ggml.pre`.
//!
//! llama.cpp runs, for each pre-tokenizer, a list of regexes; each regex splits every
//! current piece further (its matches and the gaps between them both become pieces).
//! Two regexes have hand-written implementations in llama.cpp (`gpt2` and `llama3`,
//! in `unicode.cpp`); the others go through `std::regex` on a "collapsed" text where
//! every non-ASCII code point is replaced by a byte standing for its category. The
//! scanners here reproduce both: the custom ones line by line, the `std::regex` ones
//! by following ECMAScript's backtracking order for each alternative. No regex engine.

use super::unicode::{cpt_flags, flag, to_lower_simple};

/// Which splitting rules a BPE vocabulary uses (llama.cpp's `llama_vocab_pre_type`,
/// restricted to the ones implemented here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `default` (and a missing `tokenizer.ggml.pre`): four regexes.
    Default,
    /// `gpt-2`, `mpt`, `olmo`, `jais`, `phi-2`, ...: the GPT-2 regex.
    Gpt2,
    /// `llama3`, `llama-bpe`, `dbrx`, `smaug-bpe`, `chatglm-bpe`, ...
    Llama3,
    /// `starcoder`, `smollm`, `refact`, `command-r`, ...: single digits, then GPT-2.
    Starcoder,
    /// `qwen2`, `deepseek-r1-qwen`, `stablelm2`, ...: like llama3 with single digits.
    Qwen2,
    /// `gpt-4o`, `llama4`, ...: o200k's case-aware word regex.
    Gpt4o,
    /// `tekken` (Mistral): like gpt-4o without contractions, single digits.
    Tekken,
}

const OOR: u32 = u32::MAX; // "out of range" code point, as in llama.cpp

/// A piece of text being split: code points and their flags, restricted to one chunk.
struct Chunk<'a> {
    cpts: &'a [u32],
    flags: &'a [u16],
    ini: usize,
    end: usize,
}

impl Chunk<'_> {
    #[inline]
    fn cpt(&self, p: usize) -> u32 {
        if p >= self.ini && p < self.end {
            self.cpts[p]
        } else {
            OOR
        }
    }
    #[inline]
    fn flags(&self, p: usize) -> u16 {
        if p >= self.ini && p < self.end {
            self.flags[p]
        } else {
            0
        }
    }
    #[inline]
    fn is_letter(&self, p: usize) -> bool {
        self.flags(p) & flag::LETTER != 0
    }
    #[inline]
    fn is_number(&self, p: usize) -> bool {
        self.flags(p) & flag::NUMBER != 0
    }
    #[inline]
    fn is_space(&self, p: usize) -> bool {
        self.flags(p) & flag::WHITESPACE != 0
    }
    /// `[^\s\p{L}\p{N}]` (inside the chunk).
    #[inline]
    fn is_other(&self, p: usize) -> bool {
        let f = self.flags(p);
        f != 0 && f & (flag::WHITESPACE | flag::LETTER | flag::NUMBER) == 0
    }
}

/// Appends the lengths of pieces to `out`.
struct Pieces<'o> {
    out: &'o mut Vec<usize>,
    prev_end: usize,
}

impl Pieces<'_> {
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

fn is_contraction_1(c: u32) -> bool {
    c == 's' as u32 || c == 't' as u32 || c == 'm' as u32 || c == 'd' as u32
}

fn is_contraction_2(c1: u32, c2: u32) -> bool {
    let (r, e, v, l) = ('r' as u32, 'e' as u32, 'v' as u32, 'l' as u32);
    ((c1 == r || c1 == v) && c2 == e) || (c1 == l && c2 == l)
}

/// `unicode_regex_split_custom_gpt2`:
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn split_gpt2(c: &Chunk, pieces: &mut Pieces) {
    let mut pos = c.ini;
    while pos < c.end {
        let cpt = c.cpt(pos);
        let f = c.flags(pos);

        if cpt == '\'' as u32 && pos + 1 < c.end {
            let next = c.cpt(pos + 1);
            if is_contraction_1(next) {
                pos += pieces.add(pos + 2);
                continue;
            }
            if pos + 2 < c.end && is_contraction_2(next, c.cpt(pos + 2)) {
                pos += pieces.add(pos + 3);
                continue;
            }
        }

        let space = cpt == ' ' as u32;
        let mut f2 = if space { c.flags(pos + 1) } else { f };
        // <space>?\p{L}+
        if f2 & flag::LETTER != 0 {
            pos += space as usize;
            while f2 & flag::LETTER != 0 {
                pos += 1;
                f2 = c.flags(pos);
            }
            pieces.add(pos);
            continue;
        }
        // <space>?\p{N}+
        if f2 & flag::NUMBER != 0 {
            pos += space as usize;
            while f2 & flag::NUMBER != 0 {
                pos += 1;
                f2 = c.flags(pos);
            }
            pieces.add(pos);
            continue;
        }
        // <space>?[^\s\p{L}\p{N}]+
        let other = |f: u16| f != 0 && f & (flag::WHITESPACE | flag::LETTER | flag::NUMBER) == 0;
        if other(f2) {
            pos += space as usize;
            while other(f2) {
                pos += 1;
                f2 = c.flags(pos);
            }
            pieces.add(pos);
            continue;
        }

        let mut n_ws = 0;
        while c.is_space(pos + n_ws) {
            n_ws += 1;
        }
        // \s+(?!\S)
        if n_ws > 1 && c.cpt(pos + n_ws) != OOR {
            pos += n_ws - 1;
            pieces.add(pos);
            continue;
        }
        // \s+
        if n_ws > 0 {
            pos += n_ws;
            pieces.add(pos);
            continue;
        }
        // no match
        pos += 1;
        pieces.add(pos);
    }
}

/// `unicode_regex_split_custom_llama3` (with `max_digits` = 3), which also implements
/// the qwen2 regex (`max_digits` = 1, `\p{N}` instead of `\p{N}{1,3}`):
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn split_llama3(c: &Chunk, pieces: &mut Pieces, max_digits: usize) {
    let (cr, lf) = ('\r' as u32, '\n' as u32);
    let mut pos = c.ini;
    while pos < c.end {
        let cpt = c.cpt(pos);
        let f = c.flags(pos);

        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if cpt == '\'' as u32 && pos + 1 < c.end {
            let next = to_lower_simple(c.cpt(pos + 1));
            if is_contraction_1(next) {
                pos += pieces.add(pos + 2);
                continue;
            }
            if pos + 2 < c.end && is_contraction_2(next, to_lower_simple(c.cpt(pos + 2))) {
                pos += pieces.add(pos + 3);
                continue;
            }
        }

        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(cpt == cr || cpt == lf || f & flag::NUMBER != 0)
            && (f & flag::LETTER != 0 || c.is_letter(pos + 1))
        {
            pos += 1;
            while c.is_letter(pos) {
                pos += 1;
            }
            pieces.add(pos);
            continue;
        }

        // \p{N}{1,3}
        if f & flag::NUMBER != 0 {
            let mut ini = pos;
            while c.is_number(pos) {
                pos += 1;
                if pos - ini >= max_digits {
                    pieces.add(pos);
                    ini = pos;
                }
            }
            pieces.add(pos);
            continue;
        }

        // <space>?[^\s\p{L}\p{N}]+[\r\n]*
        let space = cpt == ' ' as u32;
        let mut f2 = if space { c.flags(pos + 1) } else { f };
        let other = |f: u16| f != 0 && f & (flag::WHITESPACE | flag::LETTER | flag::NUMBER) == 0;
        if f2 & (flag::WHITESPACE | flag::LETTER | flag::NUMBER) == 0 && f != 0 {
            pos += space as usize;
            while other(f2) {
                pos += 1;
                f2 = c.flags(pos);
            }
            let mut c2 = c.cpt(pos);
            while c2 == cr || c2 == lf {
                pos += 1;
                c2 = c.cpt(pos);
            }
            pieces.add(pos);
            continue;
        }

        let mut n_ws = 0;
        let mut last_end_rn = 0;
        while c.is_space(pos + n_ws) {
            let c2 = c.cpt(pos + n_ws);
            if c2 == cr || c2 == lf {
                last_end_rn = pos + n_ws + 1;
            }
            n_ws += 1;
        }
        // \s*[\r\n]+
        if last_end_rn > 0 {
            pos = last_end_rn;
            pieces.add(pos);
            continue;
        }
        // \s+(?!\S)
        if n_ws > 1 && c.cpt(pos + n_ws) != OOR {
            pos += n_ws - 1;
            pieces.add(pos);
            continue;
        }
        // \s+
        if n_ws > 0 {
            pos += n_ws;
            pieces.add(pos);
            continue;
        }
        pos += 1;
        pieces.add(pos);
    }
}

/// The gpt-4o regex (llama.cpp's adaptation, run by `std::regex`), and tekken's
/// (`contractions` = false, `max_digits` = 1):
/// `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|...)?`
/// `|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|...)?`
/// `|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
///
/// "Upper" is a letter other than a-z, "lower" a letter other than A-Z: every
/// non-ASCII letter is both (the collapsed text cannot tell them apart).
fn split_gpt4o(c: &Chunk, pieces: &mut Pieces, contractions: bool, max_digits: usize) {
    let (cr, lf) = ('\r' as u32, '\n' as u32);
    let is_az = |p: usize| (b'a' as u32..=b'z' as u32).contains(&c.cpt(p));
    let is_caz = |p: usize| (b'A' as u32..=b'Z' as u32).contains(&c.cpt(p));
    let is_upper = |p: usize| c.is_letter(p) && !is_az(p);
    let is_lower = |p: usize| c.is_letter(p) && !is_caz(p);
    // [^\r\n\p{L}\p{N}]
    let is_prefix = |p: usize| {
        let cp = c.cpt(p);
        cp != OOR && cp != cr && cp != lf && !c.is_letter(p) && !c.is_number(p)
    };
    // (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?
    let contraction = |e: usize| -> usize {
        if !contractions || c.cpt(e) != '\'' as u32 {
            return e;
        }
        let lower = |p: usize| {
            let cp = c.cpt(p);
            if (b'A' as u32..=b'Z' as u32).contains(&cp) {
                cp + 32
            } else {
                cp
            }
        };
        let (c1, c2) = (lower(e + 1), lower(e + 2));
        if c1 == 's' as u32 || c1 == 't' as u32 {
            return e + 2;
        }
        if (c1 == 'r' as u32 || c1 == 'v' as u32) && c2 == 'e' as u32 {
            return e + 3;
        }
        if c1 == 'm' as u32 {
            return e + 2;
        }
        if c1 == 'l' as u32 && c2 == 'l' as u32 {
            return e + 3;
        }
        if c1 == 'd' as u32 {
            return e + 2;
        }
        e
    };

    let mut pos = c.ini;
    while pos < c.end {
        let cpt = c.cpt(pos);
        // where the letters may start: after the optional prefix (tried first), or at pos
        let starts: [Option<usize>; 2] = if is_prefix(pos) {
            [Some(pos + 1), Some(pos)]
        } else {
            [Some(pos), None]
        };

        // alternative 1: P? U* L+ C?
        let mut matched = None;
        'alt1: for q in starts.into_iter().flatten() {
            let mut u_end = q;
            while is_upper(u_end) {
                u_end += 1;
            }
            // U* backtracks from its longest run until L+ can match
            let mut k = u_end;
            loop {
                if is_lower(k) {
                    let mut e = k;
                    while is_lower(e) {
                        e += 1;
                    }
                    matched = Some(contraction(e));
                    break 'alt1;
                }
                if k == q {
                    break;
                }
                k -= 1;
            }
        }
        // alternative 2: P? U+ L* C?
        if matched.is_none() {
            for q in starts.into_iter().flatten() {
                if is_upper(q) {
                    let mut e = q;
                    while is_upper(e) {
                        e += 1;
                    }
                    while is_lower(e) {
                        e += 1;
                    }
                    matched = Some(contraction(e));
                    break;
                }
            }
        }
        if let Some(e) = matched {
            pos = e;
            pieces.add(pos);
            continue;
        }

        // \p{N}{1,3}
        if c.is_number(pos) {
            let mut e = pos;
            while e - pos < max_digits && c.is_number(e) {
                e += 1;
            }
            pos = e;
            pieces.add(pos);
            continue;
        }

        // <space>?[^\s\p{L}\p{N}]+[\r\n/]*
        let q = if cpt == ' ' as u32 && c.is_other(pos + 1) {
            pos + 1
        } else {
            pos
        };
        if c.is_other(q) {
            let mut e = q;
            while c.is_other(e) {
                e += 1;
            }
            while matches!(c.cpt(e), x if x == cr || x == lf || x == '/' as u32) {
                e += 1;
            }
            pos = e;
            pieces.add(pos);
            continue;
        }

        // \s*[\r\n]+ | \s+(?!\S) | \s+
        let mut n_ws = 0;
        let mut last_end_rn = 0;
        while c.is_space(pos + n_ws) {
            let c2 = c.cpt(pos + n_ws);
            if c2 == cr || c2 == lf {
                last_end_rn = pos + n_ws + 1;
            }
            n_ws += 1;
        }
        if last_end_rn > 0 {
            pos = last_end_rn;
        } else if n_ws > 1 && c.cpt(pos + n_ws) != OOR {
            pos += n_ws - 1;
        } else if n_ws > 0 {
            pos += n_ws;
        } else {
            // cannot happen (every code point matches one alternative); be safe
            pos += 1;
        }
        pieces.add(pos);
    }
}

/// A `std::regex` split with a character-class regex: `runs` = `[C]+` (maximal runs
/// of C are matches), otherwise `C` (each C code point is a match). The gaps between
/// matches are pieces too.
fn split_class(c: &Chunk, pieces: &mut Pieces, runs: bool, class: impl Fn(usize) -> bool) {
    let mut pos = c.ini;
    while pos < c.end {
        let start = pos;
        if class(pos) {
            pos += 1;
            if runs {
                while pos < c.end && class(pos) {
                    pos += 1;
                }
            }
        } else {
            while pos < c.end && !class(pos) {
                pos += 1;
            }
        }
        debug_assert!(pos > start);
        pieces.add(pos);
    }
}

/// `[0-9][0-9][0-9]` (a `std::wregex`): runs of three ASCII digits, scanning left to right.
fn split_ascii_digit3(c: &Chunk, pieces: &mut Pieces) {
    let is_digit = |p: usize| (b'0' as u32..=b'9' as u32).contains(&c.cpt(p));
    let mut pos = c.ini;
    while pos < c.end {
        if is_digit(pos) && is_digit(pos + 1) && is_digit(pos + 2) {
            pieces.add(pos);
            pos += 3;
            pieces.add(pos);
        } else {
            pos += 1;
        }
    }
    pieces.add(c.end);
}

/// `[\p{P}\$\+<=>\^~\|]` on llama.cpp's collapsed text: ASCII punctuation and symbols
/// except the backtick, and non-ASCII punctuation (not symbols).
fn is_default_punct(cpt: u32, f: u16) -> bool {
    if cpt < 128 {
        let b = cpt as u8;
        b.is_ascii_punctuation() && b != b'`'
    } else {
        f & flag::PUNCTUATION != 0 && f & flag::WHITESPACE == 0
    }
}

#[derive(Clone, Copy)]
enum Step {
    Gpt2,
    Llama3 {
        max_digits: usize,
    },
    Gpt4o {
        contractions: bool,
        max_digits: usize,
    },
    /// `\p{N}`
    EachNumber,
    /// `\p{N}+`
    NumberRuns,
    /// `[0-9][0-9][0-9]`
    AsciiDigit3,
    /// `[\p{P}\$\+<=>\^~\|]+`
    PunctRuns,
}

fn steps(pre: PreTokenizer) -> &'static [Step] {
    match pre {
        PreTokenizer::Default => &[
            Step::PunctRuns,
            Step::Gpt2,
            Step::NumberRuns,
            Step::AsciiDigit3,
        ],
        PreTokenizer::Gpt2 => &[Step::Gpt2],
        PreTokenizer::Llama3 => &[Step::Llama3 { max_digits: 3 }],
        PreTokenizer::Starcoder => &[Step::EachNumber, Step::Gpt2],
        PreTokenizer::Qwen2 => &[Step::Llama3 { max_digits: 1 }],
        PreTokenizer::Gpt4o => &[Step::Gpt4o {
            contractions: true,
            max_digits: 3,
        }],
        PreTokenizer::Tekken => &[Step::Gpt4o {
            contractions: false,
            max_digits: 1,
        }],
    }
}

/// Splits `text` into words (byte ranges of `text`, in order, covering all of it).
pub(crate) fn split_words(pre: PreTokenizer, text: &str) -> Vec<(usize, usize)> {
    let mut cpts = Vec::with_capacity(text.len());
    let mut byte_offs = Vec::with_capacity(text.len() + 1);
    for (i, ch) in text.char_indices() {
        cpts.push(ch as u32);
        byte_offs.push(i);
    }
    byte_offs.push(text.len());
    if cpts.is_empty() {
        return Vec::new();
    }
    let flags: Vec<u16> = cpts.iter().map(|&c| cpt_flags(c)).collect();

    let mut offsets = vec![cpts.len()];
    for &step in steps(pre) {
        let mut out = Vec::with_capacity(offsets.len() * 2);
        let mut start = 0;
        for &len in &offsets {
            let chunk = Chunk {
                cpts: &cpts,
                flags: &flags,
                ini: start,
                end: start + len,
            };
            let mut pieces = Pieces {
                out: &mut out,
                prev_end: start,
            };
            match step {
                Step::Gpt2 => split_gpt2(&chunk, &mut pieces),
                Step::Llama3 { max_digits } => split_llama3(&chunk, &mut pieces, max_digits),
                Step::Gpt4o {
                    contractions,
                    max_digits,
                } => split_gpt4o(&chunk, &mut pieces, contractions, max_digits),
                Step::EachNumber => split_class(&chunk, &mut pieces, false, |p| chunk.is_number(p)),
                Step::NumberRuns => split_class(&chunk, &mut pieces, true, |p| chunk.is_number(p)),
                Step::AsciiDigit3 => split_ascii_digit3(&chunk, &mut pieces),
                Step::PunctRuns => split_class(&chunk, &mut pieces, true, |p| {
                    is_default_punct(chunk.cpt(p), chunk.flags(p))
                }),
            }
            debug_assert_eq!(pieces.prev_end, start + len);
            start += len;
        }
        offsets = out;
    }

    let mut words = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for len in offsets {
        words.push((byte_offs[start], byte_offs[start + len]));
        start += len;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, s: &str) -> Vec<&str> {
        split_words(pre, s)
            .into_iter()
            .map(|(a, b)| &s[a..b])
            .collect()
    }

    #[test]
    fn gpt2() {
        let p = PreTokenizer::Gpt2;
        assert_eq!(words(p, "Hello world"), ["Hello", " world"]);
        assert_eq!(words(p, "I'm fine  ok"), ["I", "'m", " fine", " ", " ok"]);
        assert_eq!(words(p, "a   "), ["a", "   "]);
        assert_eq!(words(p, "x 123 !!?"), ["x", " 123", " !!?"]);
        assert_eq!(words(p, "\n\n a"), ["\n\n", " a"]);
    }

    #[test]
    fn starcoder_digits() {
        let p = PreTokenizer::Starcoder;
        assert_eq!(words(p, "ab 123"), ["ab", " ", "1", "2", "3"]);
    }

    #[test]
    fn llama3_and_qwen2() {
        let p = PreTokenizer::Llama3;
        assert_eq!(words(p, "Hello world"), ["Hello", " world"]);
        assert_eq!(words(p, "1234567"), ["123", "456", "7"]);
        assert_eq!(words(p, "I'M ok"), ["I", "'M", " ok"]);
        assert_eq!(words(p, "a \n\n b"), ["a", " \n\n", " b"]);
        assert_eq!(words(p, "x!!\n\ny"), ["x", "!!\n\n", "y"]);
        assert_eq!(words(p, "x  y  "), ["x", " ", " y", "  "]);
        let q = PreTokenizer::Qwen2;
        assert_eq!(words(q, "1234"), ["1", "2", "3", "4"]);
        assert_eq!(words(q, "(abc)"), ["(abc", ")"]);
    }

    #[test]
    fn gpt4o() {
        let p = PreTokenizer::Gpt4o;
        assert_eq!(words(p, "HTTPServer"), ["HTTPServer"]);
        assert_eq!(words(p, "helloWorld"), ["hello", "World"]);
        assert_eq!(words(p, "ABC def"), ["ABC", " def"]);
        assert_eq!(words(p, "don't"), ["don't"]);
        assert_eq!(words(p, "1234567"), ["123", "456", "7"]);
        assert_eq!(words(p, "a!/\n/b"), ["a", "!/\n/", "b"]);
        let t = PreTokenizer::Tekken;
        assert_eq!(words(t, "don't 12"), ["don", "'t", " ", "1", "2"]);
    }

    #[test]
    fn default_pre() {
        let p = PreTokenizer::Default;
        assert_eq!(words(p, "a+b 12345"), ["a", "+", "b", " ", "123", "45"]);
    }

    #[test]
    fn long_input_is_linear() {
        let s = "a".repeat(1 << 20);
        for pre in [
            PreTokenizer::Default,
            PreTokenizer::Gpt2,
            PreTokenizer::Llama3,
            PreTokenizer::Starcoder,
            PreTokenizer::Qwen2,
            PreTokenizer::Gpt4o,
            PreTokenizer::Tekken,
        ] {
            assert_eq!(split_words(pre, &s).len(), 1);
        }
        let s = "A".repeat(1 << 20);
        assert_eq!(split_words(PreTokenizer::Gpt4o, &s).len(), 1);
    }

    /// Splits (lengths in code points) computed by a transcription of llama.cpp's
    /// `unicode_regex_split` compiled with g++ 12 (libstdc++ `std::regex` for the regex
    /// paths), on random strings; order: default, gpt2, gpt4o, llama3, qwen2, starcoder,
    /// tekken. (30,000 such strings were checked during development, all identical.)
    #[test]
    fn matches_llama_cpp_reference() {
        let pres = [
            PreTokenizer::Default,
            PreTokenizer::Gpt2,
            PreTokenizer::Gpt4o,
            PreTokenizer::Llama3,
            PreTokenizer::Qwen2,
            PreTokenizer::Starcoder,
            PreTokenizer::Tekken,
        ];
        let vectors: &[(&str, [&str; 7])] = &[
            (
                "N\r\nu\u{378}\u{2028}'twe\u{20ac}\u{663}",
                [
                    "1,1,1,1,1,1,1,3,1,1",
                    "1,1,1,1,1,1,2,2,1,1",
                    "1,2,1,1,1,4,1,1",
                    "1,2,1,1,1,2,2,1,1",
                    "1,2,1,1,1,2,2,1,1",
                    "1,1,1,1,1,1,2,2,1,1",
                    "1,2,1,1,1,4,1,1",
                ],
            ),
            (
                "K)`)\u{b}`123456",
                [
                    "1,1,1,1,1,1,3,3",
                    "1,3,1,1,6",
                    "1,3,1,1,3,3",
                    "1,3,1,1,3,3",
                    "1,3,1,1,1,1,1,1,1,1",
                    "1,3,1,1,1,1,1,1,1,1",
                    "1,3,1,1,1,1,1,1,1,1",
                ],
            ),
            (
                " \u{e9}colE'Ll\u{a0}",
                [
                    "6,1,2,1", "6,1,2,1", "5,4,1", "6,3,1", "6,3,1", "6,1,2,1", "5,1,3,1",
                ],
            ),
            (
                "DON'T'd~'reG",
                [
                    "3,1,1,1,1,2,3",
                    "3,1,1,2,2,3",
                    "5,2,2,2,1",
                    "3,2,2,2,3",
                    "3,2,2,2,3",
                    "3,1,1,2,2,3",
                    "3,2,2,2,2,1",
                ],
            ),
            (
                "'re\u{4e2d}['S\u{3000}*dn\u{2b0}\u{b2}don't\u{300}\u{663}",
                [
                    "1,3,2,1,1,1,3,1,3,1,1,1,1",
                    "3,1,2,1,1,1,3,1,3,2,1,1",
                    "4,2,1,1,4,1,5,1,1",
                    "3,1,2,1,1,4,1,3,2,1,1",
                    "3,1,2,1,1,4,1,3,2,1,1",
                    "3,1,2,1,1,1,3,1,3,2,1,1",
                    "4,2,1,1,4,1,3,2,1,1",
                ],
            ),
            (
                "\u{a0}PpQ'Ll\u{1c5}Y\u{2581}%\r\n",
                [
                    "1,3,1,4,1,1,2",
                    "1,3,1,4,2,2",
                    "3,4,1,1,4",
                    "4,3,2,4",
                    "4,3,2,4",
                    "1,3,1,4,2,2",
                    "3,1,4,1,4",
                ],
            ),
            (
                "'RE'dZrj",
                [
                    "1,2,1,4", "1,2,2,3", "5,3", "3,2,3", "3,2,3", "1,2,2,3", "3,2,3",
                ],
            ),
            (
                "31*r\rHTTPServerI,\u{2028}\u{2028}a",
                [
                    "2,1,1,1,11,1,1,1,1",
                    "2,1,1,1,11,1,1,1,1",
                    "2,2,1,10,1,1,1,2",
                    "2,2,1,11,1,1,2",
                    "1,1,2,1,11,1,1,2",
                    "1,1,1,1,1,11,1,1,1,1",
                    "1,1,2,1,10,1,1,1,2",
                ],
            ),
            (
                "\u{e9}colE'm\u{1f600}Q\u{216b}\u{e9}'t \n\u{c9}5l",
                [
                    "5,1,1,1,1,1,1,1,1,1,1,1,1,1",
                    "5,2,1,1,1,1,2,1,1,1,1,1",
                    "4,3,2,1,3,2,1,1,1",
                    "5,2,2,1,1,2,2,1,1,1",
                    "5,2,2,1,1,2,2,1,1,1",
                    "5,2,1,1,1,1,2,1,1,1,1,1",
                    "4,1,2,2,1,1,2,2,1,1,1",
                ],
            ),
            (
                "}@\u{ff48} 'sX'm\u{df}",
                [
                    "2,1,1,1,2,1,2",
                    "2,1,2,2,2,1",
                    "2,1,2,1,3,1",
                    "2,1,2,2,2,1",
                    "2,1,2,2,2,1",
                    "2,1,2,2,2,1",
                    "2,1,2,1,1,3",
                ],
            ),
            (
                "\n\n.\u{1f600} D\u{663}\u{1c5}kj\nB9d\u{e9}colE",
                [
                    "2,1,1,2,1,3,1,1,1,6",
                    "1,1,2,2,1,3,1,1,1,6",
                    "2,2,2,1,3,1,1,1,5,1",
                    "2,2,2,1,3,1,1,1,6",
                    "2,2,2,1,3,1,1,1,6",
                    "1,1,2,2,1,3,1,1,1,6",
                    "2,2,2,1,3,1,1,1,5,1",
                ],
            ),
            (
                "\u{85} 'sdon't,MjX'mP=GhelloWorld",
                [
                    "2,1,4,1,1,1,3,1,2,1,11",
                    "1,2,4,2,1,3,2,1,1,11",
                    "1,2,6,3,3,1,7,5",
                    "1,2,4,2,4,2,1,12",
                    "1,2,4,2,4,2,1,12",
                    "1,2,4,2,1,3,2,1,1,11",
                    "1,2,4,2,3,1,2,1,7,5",
                ],
            ),
            (
                "' \u{2028}A's\u{3000}u 's/IG\u{4e2d} \u{3000}'S\u{133}F\u{ff48}v'd",
                [
                    "1,1,1,1,1,1,1,1,1,1,1,1,3,2,1,5,1,1",
                    "1,1,1,1,2,1,1,2,1,1,3,1,1,1,5,2",
                    "1,1,4,2,2,1,4,1,1,8",
                    "1,1,2,2,2,2,1,4,1,1,2,4,2",
                    "1,1,2,2,2,2,1,4,1,1,2,4,2",
                    "1,1,1,1,2,1,1,2,1,1,3,1,1,1,5,2",
                    "1,1,2,2,2,2,1,4,1,1,6,2",
                ],
            ),
            (
                "vG'veA}'RE)aO9^ky",
                [
                    "2,1,3,2,2,1,2,1,1,2",
                    "2,3,1,2,2,1,2,1,1,2",
                    "1,4,1,2,2,2,1,1,3",
                    "2,3,1,2,2,3,1,3",
                    "2,3,1,2,2,3,1,3",
                    "2,3,1,2,2,1,2,1,1,2",
                    "1,1,3,1,2,2,2,1,1,3",
                ],
            ),
            (
                "=/'\u{2581}GhB're'RE",
                [
                    "3,1,3,1,2,1,2",
                    "4,3,3,1,2",
                    "4,2,4,3",
                    "4,3,3,3",
                    "4,3,3,3",
                    "4,3,3,1,2",
                    "4,2,1,3,3",
                ],
            ),
            (
                "d'dV  M9^\u{e9}colE",
                [
                    "1,1,2,1,2,1,1,5",
                    "1,2,1,1,2,1,1,5",
                    "3,1,1,2,1,5,1",
                    "1,2,1,1,2,1,6",
                    "1,2,1,1,2,1,6",
                    "1,2,1,1,2,1,1,5",
                    "1,2,1,1,2,1,5,1",
                ],
            ),
            (
                "\u{2028}\n *q0\u{b}<k\\'Ll\u{85}8S's\u{a0}",
                [
                    "3,1,1,1,1,1,1,2,2,1,1,1,1,1,1",
                    "2,2,1,1,1,1,1,2,2,1,1,1,2,1",
                    "2,2,1,1,1,2,2,2,1,1,3,1",
                    "2,2,1,1,1,2,2,2,1,1,1,2,1",
                    "2,2,1,1,1,2,2,2,1,1,1,2,1",
                    "2,2,1,1,1,1,1,2,2,1,1,1,2,1",
                    "2,2,1,1,1,2,2,2,1,1,1,2,1",
                ],
            ),
            (
                "Im'rePZ\u{c9}COLE\u{2581}",
                [
                    "2,1,9,1",
                    "2,3,7,1",
                    "5,3,4,1",
                    "2,3,7,1",
                    "2,3,7,1",
                    "2,3,7,1",
                    "2,3,3,4,1",
                ],
            ),
            (
                "\r\nW've\u{df}[",
                [
                    "1,1,1,1,3,1",
                    "1,1,1,3,1,1",
                    "2,4,1,1",
                    "2,1,3,1,1",
                    "2,1,3,1,1",
                    "1,1,1,3,1,1",
                    "2,1,4,1",
                ],
            ),
            (
                ".\u{663}123456g\n\n\r\n  d",
                [
                    "1,1,3,3,1,5,2",
                    "1,7,1,5,2",
                    "1,3,3,1,1,4,1,2",
                    "1,3,3,1,1,4,1,2",
                    "1,1,1,1,1,1,1,1,1,4,1,2",
                    "1,1,1,1,1,1,1,1,1,5,2",
                    "1,1,1,1,1,1,1,1,1,4,1,2",
                ],
            ),
            (
                "H\u{1f600}DON'TDON'T",
                [
                    "1,1,3,1,4,1,1",
                    "1,1,3,1,4,1,1",
                    "1,6,5",
                    "1,4,2,3,2",
                    "1,4,2,3,2",
                    "1,1,3,1,4,1,1",
                    "1,4,5,2",
                ],
            ),
            (
                " \n 's\u{3c2}\u{301}\r\u{3a3}h0B're",
                [
                    "3,1,2,1,1,2,1,1,1,2",
                    "2,2,2,1,1,2,1,1,3",
                    "2,2,2,2,2,1,4",
                    "2,2,2,2,2,1,1,3",
                    "2,2,2,2,2,1,1,3",
                    "2,2,2,1,1,2,1,1,3",
                    "2,2,2,2,2,1,1,3",
                ],
            ),
            (
                "'d@\\]Vp'P\u{3000}j\n\n7\u{300}\n\n`\u{133} ",
                [
                    "1,1,3,2,1,1,1,1,1,1,1,1,1,1,1,1,1",
                    "2,3,2,1,1,1,1,1,1,1,1,1,1,1,1,1",
                    "2,3,2,2,2,2,1,3,2,1",
                    "2,3,2,2,2,2,1,3,2,1",
                    "2,3,2,2,2,2,1,3,2,1",
                    "2,3,2,1,1,1,1,2,1,1,1,1,1,1,1",
                    "2,3,2,2,2,2,1,3,2,1",
                ],
            ),
            (
                "\u{3000} o@Rqyp \u{2b0}\u{e9}colE\u{2028}\u{216b}`}'re",
                [
                    "1,2,1,4,7,1,1,1,2,2",
                    "1,2,1,4,7,1,1,3,2",
                    "1,2,5,6,1,1,1,3,2",
                    "1,2,5,7,1,1,3,2",
                    "1,2,5,7,1,1,3,2",
                    "1,2,1,4,7,1,1,3,2",
                    "1,2,5,6,1,1,1,3,2",
                ],
            ),
            (
                ")8W'RE@\\'t\u{b}c'Ll\u{e9}colE",
                [
                    "1,1,1,1,2,3,1,1,1,1,7",
                    "1,1,1,1,2,3,1,1,1,1,7",
                    "1,1,4,3,1,5,4,1",
                    "1,1,1,3,3,1,2,3,5",
                    "1,1,1,3,3,1,2,3,5",
                    "1,1,1,1,2,3,1,1,1,1,7",
                    "1,1,1,3,3,1,2,7,1",
                ],
            ),
            (
                "$f;!^O ek{\"q't\u{300}ab",
                [
                    "1,1,3,1,3,2,1,1,1,1,2",
                    "1,1,3,1,3,2,1,2,1,2",
                    "2,3,1,3,2,3,3",
                    "2,3,1,3,2,1,2,3",
                    "2,3,1,3,2,1,2,3",
                    "1,1,3,1,3,2,1,2,1,2",
                    "2,3,1,3,2,1,2,3",
                ],
            ),
            (
                "cOg9K'Ll]\u{3a3}'\n\u{2581}_",
                [
                    "3,1,1,1,2,1,1,1,1,1,1",
                    "3,1,1,1,2,1,1,1,1,2",
                    "1,2,1,4,2,2,2",
                    "3,1,1,3,2,2,2",
                    "3,1,1,3,2,2,2",
                    "3,1,1,1,2,1,1,1,1,2",
                    "1,2,1,1,3,2,2,2",
                ],
            ),
            (
                "\u{1c5}VS\u{3000}/ \u{a0}_\u{4e2d}-'REDON'TA\u{20ac}\u{c9}COLE",
                [
                    "3,1,1,2,1,1,2,5,1,2,1,5",
                    "3,1,1,1,1,1,1,2,5,1,2,1,5",
                    "1,2,1,1,1,1,2,2,7,1,2,4",
                    "3,1,1,1,1,2,2,5,2,1,6",
                    "3,1,1,1,1,2,2,5,2,1,6",
                    "3,1,1,1,1,1,1,2,5,1,2,1,5",
                    "1,2,1,1,1,1,2,2,5,3,2,4",
                ],
            ),
            (
                "helloWorldKK's",
                ["12,1,1", "12,2", "5,5,4", "12,2", "12,2", "12,2", "5,5,2,2"],
            ),
            (
                "  r\u{ff48}'m\n\n7\u{301}?1?R\u{133}lXP>&",
                [
                    "1,3,1,1,1,1,1,1,1,1,1,5,2",
                    "1,3,2,1,1,1,2,1,1,5,2",
                    "1,5,2,1,2,1,4,2,2",
                    "1,3,2,2,1,2,1,6,2",
                    "1,3,2,2,1,2,1,6,2",
                    "1,3,2,2,1,2,1,1,5,2",
                    "1,3,2,2,1,2,1,4,2,2",
                ],
            ),
            (
                "\u{3a3}'m 6@L\nbX|S84aEc'dY\u{b2}\u{1f600}",
                [
                    "1,1,1,1,1,1,1,1,2,1,1,2,3,1,2,1,1",
                    "1,2,2,1,1,1,2,1,1,2,3,2,1,1,1",
                    "3,1,1,2,1,1,1,2,2,1,4,1,1,1",
                    "1,2,1,1,2,1,2,2,2,3,2,1,1,1",
                    "1,2,1,1,2,1,2,2,1,1,3,2,1,1,1",
                    "1,2,1,1,1,1,1,2,1,1,1,1,3,2,1,1,1",
                    "1,2,1,1,2,1,1,1,2,1,1,1,2,2,1,1,1",
                ],
            ),
            (
                "*d2\u{200b}\u{ff48}'ve",
                [
                    "1,1,1,1,1,1,2",
                    "1,1,1,1,1,3",
                    "2,1,5",
                    "2,1,2,3",
                    "2,1,2,3",
                    "1,1,1,1,1,3",
                    "2,1,2,3",
                ],
            ),
            (
                "J, 5<helloWorld",
                [
                    "1,1,1,1,1,10",
                    "1,1,2,1,10",
                    "1,1,1,1,6,5",
                    "1,1,1,1,11",
                    "1,1,1,1,11",
                    "1,1,1,1,1,10",
                    "1,1,1,1,6,5",
                ],
            ),
            (
                "'a/.vAmiI\r\n;)N\u{85}AhelloWorld",
                [
                    "1,1,2,5,2,2,1,1,11",
                    "1,1,2,5,1,1,2,1,1,11",
                    "2,2,1,3,1,2,2,1,7,5",
                    "2,2,5,2,2,1,12",
                    "2,2,5,2,2,1,12",
                    "1,1,2,5,1,1,2,1,1,11",
                    "2,2,1,3,1,2,2,1,7,5",
                ],
            ),
            (
                " 'sDON'Tu\u{20ac}iDUs\u{2b0}'REe\u{c9}COLE",
                [
                    "1,1,4,1,2,1,5,1,8",
                    "2,4,1,2,1,5,1,8",
                    "2,1,5,1,2,7,2,4",
                    "2,4,2,1,6,3,6",
                    "2,4,2,1,6,3,6",
                    "2,4,1,2,1,5,1,8",
                    "2,1,3,3,2,4,5,4",
                ],
            ),
            (
                "\r'sh{-]uK'Ll \u{e9}colE",
                [
                    "1,1,2,3,2,1,2,6",
                    "1,2,1,3,2,1,2,6",
                    "1,3,3,1,4,5,1",
                    "1,2,1,3,2,3,6",
                    "1,2,1,3,2,3,6",
                    "1,2,1,3,2,1,2,6",
                    "1,3,3,1,1,3,5,1",
                ],
            ),
            (
                "'ak% |[\u{e9}colE",
                [
                    "1,2,1,1,2,5",
                    "1,2,1,3,5",
                    "3,1,3,4,1",
                    "3,1,3,5",
                    "3,1,3,5",
                    "1,2,1,3,5",
                    "3,1,3,4,1",
                ],
            ),
            (
                "\r\n've'Ll@\n\n",
                [
                    "2,1,2,1,2,1,2",
                    "1,1,3,1,2,1,2",
                    "2,6,3",
                    "2,3,3,3",
                    "2,3,3,3",
                    "1,1,3,1,2,1,2",
                    "2,3,3,3",
                ],
            ),
            (
                "_\u{1f600}^Y\r\n's'sHTTPServer",
                [
                    "1,1,1,1,2,1,1,1,11",
                    "3,1,1,1,2,2,10",
                    "3,1,2,4,10",
                    "3,1,2,2,2,10",
                    "3,1,2,2,2,10",
                    "3,1,1,1,2,2,10",
                    "3,1,2,2,2,10",
                ],
            ),
            (
                "\\\u{1f600} d'Ll'm^!",
                [
                    "1,1,2,1,2,1,1,2",
                    "2,2,1,2,2,2",
                    "2,5,2,2",
                    "2,2,3,2,2",
                    "2,2,3,2,2",
                    "2,2,1,2,2,2",
                    "2,2,3,2,2",
                ],
            ),
            (
                "! -HTTPServer\u{300}DON'T",
                [
                    "1,1,1,10,1,3,1,1",
                    "1,2,10,1,3,1,1",
                    "1,2,10,6",
                    "1,2,10,4,2",
                    "1,2,10,4,2",
                    "1,2,10,1,3,1,1",
                    "1,2,10,4,2",
                ],
            ),
            (
                "{\u{b2}NO \u{e9} ]DdZ}\u{4e2d}\u{20ac}9  \n\n|\u{c9}l'RE",
                [
                    "1,1,2,2,1,1,3,1,1,1,1,4,1,2,1,2",
                    "1,1,2,2,2,3,1,1,1,1,3,1,1,2,1,2",
                    "1,1,2,2,2,2,1,2,1,1,4,6",
                    "1,1,2,2,2,3,2,1,1,4,3,3",
                    "1,1,2,2,2,3,2,1,1,4,3,3",
                    "1,1,2,2,2,3,1,1,1,1,3,1,1,2,1,2",
                    "1,1,2,2,2,2,1,2,1,1,4,3,3",
                ],
            ),
            (
                ")\u{e9}P\u{1c5}'ve\u{85}K[:J",
                [
                    "1,3,1,2,1,1,2,1",
                    "1,3,3,1,1,2,1",
                    "7,2,2,1",
                    "4,3,2,2,1",
                    "4,3,2,2,1",
                    "1,3,3,1,1,2,1",
                    "4,3,2,2,1",
                ],
            ),
            (
                "\u{ff48}+123456T\u{133}*\n\n~?",
                [
                    "1,1,3,3,2,1,2,2",
                    "1,1,6,2,1,1,1,2",
                    "1,1,3,3,2,3,2",
                    "1,1,3,3,2,3,2",
                    "1,1,1,1,1,1,1,1,2,3,2",
                    "1,1,1,1,1,1,1,1,2,1,1,1,2",
                    "1,1,1,1,1,1,1,1,2,3,2",
                ],
            ),
            (
                "\u{2581}V;\r\no>\u{85}[x'sQ\n4's\u{85}} \tx\u{a0}",
                [
                    "1,1,1,1,1,1,1,1,1,1,1,2,1,1,1,1,1,1,1,1,1,1",
                    "1,1,1,1,1,1,1,1,1,1,2,1,1,1,2,1,1,1,1,1,1",
                    "2,3,1,1,1,4,1,1,1,2,1,1,1,2,1",
                    "2,3,1,1,1,2,2,1,1,1,2,1,1,1,2,1",
                    "2,3,1,1,1,2,2,1,1,1,2,1,1,1,2,1",
                    "1,1,1,1,1,1,1,1,1,1,2,1,1,1,2,1,1,1,1,1,1",
                    "2,3,1,1,1,2,2,1,1,1,2,1,1,1,2,1",
                ],
            ),
            (
                "%Adon't\u{216b}P\u{378}&{>=",
                [
                    "1,4,1,1,1,1,1,4",
                    "1,4,2,1,1,5",
                    "7,1,1,5",
                    "5,2,1,1,5",
                    "5,2,1,1,5",
                    "1,4,2,1,1,5",
                    "5,2,1,1,5",
                ],
            ),
            (
                "  7\u{2581} M\u{300} ga\u{3c2}'m8o Q",
                [
                    "1,1,1,1,2,1,4,1,1,1,1,2",
                    "1,2,1,2,1,4,2,1,1,2",
                    "1,1,1,1,2,1,6,1,1,2",
                    "1,1,1,1,2,1,4,2,1,1,2",
                    "1,1,1,1,2,1,4,2,1,1,2",
                    "2,1,1,2,1,4,2,1,1,2",
                    "1,1,1,1,2,1,4,2,1,1,2",
                ],
            ),
            (
                "eHm'RE'eM ",
                [
                    "3,1,2,1,2,1",
                    "3,1,2,1,2,1",
                    "1,5,2,1,1",
                    "3,3,3,1",
                    "3,3,3,1",
                    "3,1,2,1,2,1",
                    "1,2,3,2,1,1",
                ],
            ),
        ];
        for (s, want) in vectors {
            for (pre, w) in pres.iter().zip(want) {
                let got: Vec<String> = split_words(*pre, s)
                    .iter()
                    .map(|&(a, b)| s[a..b].chars().count().to_string())
                    .collect();
                assert_eq!(got.join(","), *w, "{pre:?} on {s:?}");
            }
        }
    }
}
