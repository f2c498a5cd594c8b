//! Detokenization: token pieces (llama.cpp's `token_to_piece`), whole-sequence
//! decoding (`llama_detokenize`: leading-space removal, optional BOS/EOS removal,
//! `clean_spaces`), and an incremental decoder that emits only complete UTF-8.
//!
//! One-shot decoding runs the same incremental pipeline as streaming, so the two agree
//! by construction: pieces -> (leading space strip) -> (the three `clean_spaces`
//! passes, each incremental with a one-byte hold-back) -> UTF-8 assembly.

use super::unicode::unicode_to_byte;
use super::vocab::{attr, Vocab, VocabType};
use super::TokenizerError;

/// How to decode a sequence of tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Render control and unknown tokens as their text (llama.cpp's `unparse_special`).
    /// When false they produce nothing. User-defined tokens are always rendered.
    pub render_special: bool,
    /// Drop a leading BOS and a trailing EOS when the vocabulary adds them (llama.cpp's
    /// `remove_special`; dropping the BOS also keeps the leading space of the next token,
    /// as in llama.cpp).
    pub remove_special: bool,
    /// Apply llama.cpp's `clean_spaces` clean-up (" ." -> "." and so on). `None`: the
    /// vocabulary's setting, as `llama_detokenize` does.
    pub clean_spaces: Option<bool>,
    /// Remove one leading space from the first piece. `None`: as `llama_detokenize`
    /// does, i.e. for vocabularies with `add_space_prefix` (SentencePiece) the first
    /// token's piece; for WordPiece, the first non-empty piece (llama.cpp keeps that
    /// space for WordPiece; Hugging Face does not).
    pub strip_leading_space: Option<bool>,
}

impl DecodeOptions {
    /// `llama_detokenize(remove_special = false, unparse_special = render_special)`:
    /// decoding a whole sequence (a prompt, a complete answer).
    pub fn new(render_special: bool) -> Self {
        DecodeOptions {
            render_special,
            remove_special: false,
            clean_spaces: None,
            strip_leading_space: None,
        }
    }

    /// The plain concatenation of `token_to_piece`, with no clean-up and no leading-space
    /// removal: what llama.cpp's CLI and server stream while generating, i.e. the right
    /// choice for text that continues a prompt.
    pub fn pieces(render_special: bool) -> Self {
        DecodeOptions {
            render_special,
            remove_special: false,
            clean_spaces: Some(false),
            strip_leading_space: Some(false),
        }
    }
}

/// The byte of a `<0xXX>` token (llama.cpp: `strtol(text.substr(3, 2), 16)`).
fn token_to_byte(text: &str) -> u8 {
    let hex = text.get(3..5).or_else(|| text.get(3..)).unwrap_or("");
    let mut v: u32 = 0;
    for c in hex.chars() {
        match c.to_digit(16) {
            Some(d) => v = v * 16 + d,
            None => break,
        }
    }
    v as u8
}

/// Appends the piece of one token to `out` (llama.cpp's `token_to_piece`, lstrip = 0).
pub(crate) fn append_piece(
    vocab: &Vocab,
    wpm_prefix: Option<&str>,
    id: u32,
    special: bool,
    out: &mut Vec<u8>,
) -> Result<(), TokenizerError> {
    if id as usize >= vocab.n_tokens() {
        return Err(TokenizerError::InvalidTokenId {
            id,
            vocab_size: vocab.n_tokens(),
        });
    }
    let t = vocab.token(id);
    let a = t.attr;
    if !special && a & (attr::UNKNOWN | attr::CONTROL) != 0 {
        return Ok(());
    }
    if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
        out.extend_from_slice(t.text.as_bytes());
        return Ok(());
    }
    if a & attr::NORMAL != 0 {
        match vocab.typ {
            VocabType::Spm | VocabType::Wpm => {
                if let Some(prefix) = wpm_prefix {
                    // Hugging Face WordPiece: "##x" continues a word, anything else starts one
                    match t.text.strip_prefix(prefix) {
                        Some(rest) => out.extend_from_slice(rest.as_bytes()),
                        None => {
                            out.push(b' ');
                            out.extend_from_slice(t.text.as_bytes());
                        }
                    }
                } else {
                    unescape_whitespace(&t.text, out);
                }
            }
            VocabType::Bpe => {
                if vocab.escape_whitespaces {
                    unescape_whitespace(&t.text, out);
                } else {
                    decode_byte_level(&t.text, out);
                }
            }
        }
        return Ok(());
    }
    if a & attr::BYTE != 0 {
        out.push(token_to_byte(&t.text));
    }
    // unused and undefined tokens: nothing, like llama.cpp
    Ok(())
}

/// U+2581 -> ' '.
fn unescape_whitespace(text: &str, out: &mut Vec<u8>) {
    let mut rest = text;
    while let Some(p) = rest.find('\u{2581}') {
        out.extend_from_slice(&rest.as_bytes()[..p]);
        out.push(b' ');
        rest = &rest[p + '\u{2581}'.len_utf8()..];
    }
    out.extend_from_slice(rest.as_bytes());
}

/// GPT-2 byte-level text back to bytes (llama.cpp's `llama_decode_text`).
fn decode_byte_level(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match unicode_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}

/// One of llama.cpp's three `clean_spaces` passes, run incrementally. Each pass reads
/// at most two bytes ahead and only ever retracts the last byte it wrote (a space),
/// so everything before a trailing space is final.
#[derive(Clone, Debug)]
struct CleanPass {
    kind: u8,
    input: Vec<u8>,
    i: usize,
    started: bool,
    out: Vec<u8>,
    sent: usize,
}

impl CleanPass {
    fn new(kind: u8) -> Self {
        CleanPass {
            kind,
            input: Vec::new(),
            i: 0,
            started: false,
            out: Vec::new(),
            sent: 0,
        }
    }

    fn lookahead(&self) -> usize {
        match self.kind {
            1 => 0,
            2 => 1,
            _ => 2,
        }
    }

    /// Feeds bytes and moves the now-final output to `emit`.
    fn push(&mut self, bytes: &[u8], finished: bool, emit: &mut Vec<u8>) {
        self.input.extend_from_slice(bytes);
        let n = self.input.len();
        let look = self.lookahead();
        while self.i < n && (finished || self.i + look < n) {
            let i = self.i;
            if !self.started {
                self.out.push(self.input[i]);
                self.started = true;
                self.i += 1;
                continue;
            }
            let x = self.input[i];
            let prev = self.input[i - 1];
            match self.kind {
                1 => {
                    // " ?", " !", " .", " ,"
                    if prev == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
                        self.out.pop();
                    }
                }
                2 => {
                    // " ' " -> "'"
                    if x == b'\'' && i + 1 < n && prev == b' ' && self.input[i + 1] == b' ' {
                        self.out.pop();
                        self.input[i + 1] = 0;
                        self.i += 1;
                    }
                }
                _ => {
                    // " 's", " 'm", " 're", " 've" -> no space
                    if prev == b' ' && x == b'\'' && i + 1 < n {
                        let x1 = self.input[i + 1];
                        if x1 == b't' || x1 == b'd' {
                        } else if x1 == b's' || x1 == b'm' {
                            self.out.pop();
                        } else if i + 2 < n {
                            let x2 = self.input[i + 2];
                            if x1 == b'l' && x2 == b'l' {
                            } else if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                                self.out.pop();
                            }
                        }
                    }
                }
            }
            self.out.push(x);
            self.i += 1;
        }
        let stable = if finished || self.out.last() != Some(&b' ') {
            self.out.len()
        } else {
            self.out.len() - 1
        };
        if stable > self.sent {
            emit.extend_from_slice(&self.out[self.sent..stable]);
            self.sent = stable;
        }
        // keep memory bounded on long streams: only the previous byte is ever read back
        if self.i > 4096 {
            let k = self.i - 1;
            self.input.drain(..k);
            self.i -= k;
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }
}

/// Collects bytes and hands out complete UTF-8 text; invalid sequences become U+FFFD
/// exactly as `String::from_utf8_lossy` would on the whole output.
#[derive(Clone, Debug, Default)]
struct Utf8Assembler {
    pending: Vec<u8>,
}

impl Utf8Assembler {
    fn push(&mut self, bytes: &[u8], finished: bool, out: &mut String) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // valid_up_to() bytes are valid UTF-8
                    out.push_str(
                        std::str::from_utf8(&self.pending[start..start + valid]).unwrap_or(""),
                    );
                    start += valid;
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start += n;
                        }
                        None => {
                            if finished {
                                out.push('\u{FFFD}');
                                start = self.pending.len();
                            }
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strip {
    None,
    /// Strip one leading space from the first token's piece (llama.cpp, SPM-style
    /// vocabularies with `add_space_prefix`).
    FirstToken,
    /// Strip one leading space from the first non-empty piece (WordPiece).
    FirstNonEmpty,
}

/// Incremental decoder: feed token ids, get text. Text is returned only once its UTF-8
/// is complete (a character split over several byte tokens is held back), and the
/// concatenation of everything returned equals the one-shot decode of the same ids.
#[derive(Clone, Debug)]
pub struct StreamDecoder<'a> {
    vocab: &'a Vocab,
    wpm_prefix: Option<&'a str>,
    opts: DecodeOptions,
    strip: Strip,
    n_seen: usize,
    held_eos: bool,
    passes: Vec<CleanPass>,
    utf8: Utf8Assembler,
    piece: Vec<u8>,
}

impl<'a> StreamDecoder<'a> {
    pub(crate) fn new(vocab: &'a Vocab, wpm_prefix: Option<&'a str>, opts: DecodeOptions) -> Self {
        let first = if vocab.typ == VocabType::Wpm {
            Strip::FirstNonEmpty
        } else {
            Strip::FirstToken
        };
        let strip = match opts.strip_leading_space {
            Some(false) => Strip::None,
            Some(true) => first,
            None if vocab.typ == VocabType::Wpm || vocab.add_space_prefix => first,
            None => Strip::None,
        };
        let clean = opts.clean_spaces.unwrap_or(vocab.clean_spaces);
        let passes = if clean {
            vec![CleanPass::new(1), CleanPass::new(2), CleanPass::new(3)]
        } else {
            Vec::new()
        };
        StreamDecoder {
            vocab,
            wpm_prefix,
            opts,
            strip,
            n_seen: 0,
            held_eos: false,
            passes,
            utf8: Utf8Assembler::default(),
            piece: Vec::new(),
        }
    }

    /// Decodes one more token and returns the text that became complete (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        let mut out = String::new();
        self.push_into(id, &mut out)?;
        Ok(out)
    }

    /// Like [`push`](Self::push), appending to `out`.
    pub fn push_into(&mut self, id: u32, out: &mut String) -> Result<(), TokenizerError> {
        if id as usize >= self.vocab.n_tokens() {
            return Err(TokenizerError::InvalidTokenId {
                id,
                vocab_size: self.vocab.n_tokens(),
            });
        }
        let first = self.n_seen == 0;
        self.n_seen += 1;
        let v = self.vocab;
        if self.opts.remove_special {
            if first && v.add_bos && Some(id) == v.ids.bos {
                if self.strip == Strip::FirstToken {
                    self.strip = Strip::None;
                }
                return Ok(());
            }
            if self.held_eos {
                self.held_eos = false;
                if let Some(eos) = v.ids.eos {
                    self.emit_token(eos, out)?;
                }
            }
            if v.add_eos && Some(id) == v.ids.eos {
                self.held_eos = true;
                return Ok(());
            }
        }
        self.emit_token(id, out)
    }

    fn emit_token(&mut self, id: u32, out: &mut String) -> Result<(), TokenizerError> {
        let mut piece = std::mem::take(&mut self.piece);
        piece.clear();
        append_piece(
            self.vocab,
            self.wpm_prefix,
            id,
            self.opts.render_special,
            &mut piece,
        )?;
        let mut bytes: &[u8] = &piece;
        match self.strip {
            Strip::FirstToken => {
                bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
                self.strip = Strip::None;
            }
            Strip::FirstNonEmpty if !bytes.is_empty() => {
                bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
                self.strip = Strip::None;
            }
            _ => {}
        }
        self.feed(bytes, false, out);
        self.piece = piece;
        Ok(())
    }

    fn feed(&mut self, bytes: &[u8], finished: bool, out: &mut String) {
        let mut cur = bytes.to_vec();
        for pass in &mut self.passes {
            let mut next = Vec::with_capacity(cur.len());
            pass.push(&cur, finished, &mut next);
            cur = next;
        }
        self.utf8.push(&cur, finished, out);
    }

    /// Flushes what was held back (a trailing space under `clean_spaces`, an incomplete
    /// UTF-8 sequence, which becomes U+FFFD). A trailing EOS held under `remove_special`
    /// is dropped.
    pub fn finish(mut self) -> String {
        let mut out = String::new();
        self.feed(&[], true, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's three passes, transcribed literally (in place, with `total`).
    fn clean_reference(text: &mut Vec<u8>) {
        let mut total = text.len();
        let total1 = total;
        total = if total > 0 { 1 } else { 0 };
        for i in 1..total1 {
            let x = text[i];
            if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
                total -= 1;
            }
            text[total] = x;
            total += 1;
        }
        let total2 = total;
        total = if total > 0 { 1 } else { 0 };
        let mut i = 1;
        while i < total2 {
            let x = text[i];
            if x == b'\'' && i + 1 < total2 && text[i - 1] == b' ' && text[i + 1] == b' ' {
                total -= 1;
                i += 1;
                text[i] = 0;
            }
            text[total] = x;
            total += 1;
            i += 1;
        }
        let total3 = total;
        total = if total > 0 { 1 } else { 0 };
        for i in 1..total3 {
            let x = text[i];
            if text[i - 1] == b' ' && x == b'\'' && i + 1 < total3 {
                let x1 = text[i + 1];
                if x1 == b't' || x1 == b'd' {
                } else if x1 == b's' || x1 == b'm' {
                    total -= 1;
                } else if i + 2 < total3 {
                    let x2 = text[i + 2];
                    if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                        total -= 1;
                    }
                }
            }
            text[total] = x;
            total += 1;
        }
        text.truncate(total);
    }

    fn clean_streaming(chunks: &[&[u8]]) -> Vec<u8> {
        let mut passes = vec![CleanPass::new(1), CleanPass::new(2), CleanPass::new(3)];
        let mut result = Vec::new();
        let n = chunks.len();
        for (k, chunk) in chunks.iter().enumerate() {
            let finished = k + 1 == n;
            let mut cur = chunk.to_vec();
            for p in &mut passes {
                let mut next = Vec::new();
                p.push(&cur, finished, &mut next);
                cur = next;
            }
            result.extend_from_slice(&cur);
        }
        result
    }

    #[test]
    fn clean_passes_match_reference() {
        let alphabet = b" '?!.,tdsmlrvex";
        let mut x = 0x2545F4914F6CDD1Du64;
        for _ in 0..20000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let mut s = Vec::new();
            let mut y = x;
            for _ in 0..len {
                y = y.wrapping_mul(6364136223846793005).wrapping_add(1);
                s.push(alphabet[((y >> 33) % alphabet.len() as u64) as usize]);
            }
            let mut expect = s.clone();
            clean_reference(&mut expect);
            // one chunk per byte, then one chunk for all, plus the final empty chunk
            let per_byte: Vec<&[u8]> = s.chunks(1).chain(std::iter::once(&[][..])).collect();
            assert_eq!(
                clean_streaming(&per_byte),
                expect,
                "{:?}",
                String::from_utf8_lossy(&s)
            );
            assert_eq!(clean_streaming(&[&s[..], &[]]), expect);
        }
    }

    #[test]
    fn utf8_assembly() {
        let cases: &[&[u8]] = &[
            b"abc",
            "é😀".as_bytes(),
            b"\xE2\x82",
            b"a\xFFb\xE2\x82\xACc\xF0\x9F",
        ];
        for bytes in cases {
            let mut a = Utf8Assembler::default();
            let mut s = String::new();
            for b in bytes.iter() {
                a.push(&[*b], false, &mut s);
            }
            a.push(&[], true, &mut s);
            assert_eq!(s, String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn byte_tokens() {
        assert_eq!(token_to_byte("<0x0A>"), 10);
        assert_eq!(token_to_byte("<0xFF>"), 255);
        assert_eq!(token_to_byte("<0x"), 0);
    }
}
