//! Tokenizers that give the same token ids as llama.cpp (commit 0c1e570 and later),
//! built from the vocabulary stored in a GGUF file (`tokenizer.ggml.*`), plus the
//! Hugging Face `tokenizer.json` route for WordPiece (BERT) models.
//!
//! - **BPE** (`tokenizer.ggml.model = gpt2`): byte-level BPE with merge ranks, after the
//!   pre-tokenizer named by `tokenizer.ggml.pre` ([`PreTokenizer`]). Supported names:
//!   `default`, the gpt-2 family (`gpt-2`, `mpt`, `olmo`, `phi-2`, ...), the llama3
//!   family (`llama3`, `llama-bpe`, `dbrx`, `smaug-bpe`, `chatglm-bpe`, ...), the
//!   starcoder family (`starcoder`, `smollm`, `refact`, `command-r`, ...), the qwen2
//!   family (`qwen2`, `deepseek-r1-qwen`, `stablelm2`, ...), `gpt-4o`/`llama4`, `tekken`.
//!   A name llama.cpp knows but that is not implemented here is
//!   [`TokenizerError::UnsupportedPreTokenizer`]; a name llama.cpp does not know is
//!   [`TokenizerError::UnknownPreTokenizer`]. A *missing* `tokenizer.ggml.pre` falls back
//!   to `default`, as llama.cpp does (recorded in [`Tokenizer::warnings`]).
//! - **SentencePiece** (`llama`): score-ordered merges, `<0xXX>` byte fallback,
//!   `add_space_prefix`, spaces escaped to U+2581. Gemma vocabularies are this type with
//!   `add_space_prefix = false` and many user-defined tokens (whitespace runs, tags),
//!   which are split out of the text before tokenization, as llama.cpp does.
//! - **WordPiece**: llama.cpp's `bert` GGUF vocabularies, and Hugging Face
//!   `tokenizer.json` (BertNormalizer, BertPreTokenizer, WordPiece with `##` and
//!   `max_input_chars_per_word`, `[CLS]`/`[SEP]` from the post-processor).
//!
//! Special tokens follow llama.cpp's `tokenizer_st_partition`: with `parse_special`
//! the text of control, user-defined and unknown tokens (e.g. `<|im_start|>`) becomes
//! the token; without it, only user-defined tokens are split out (llama.cpp and Hugging
//! Face both do that), and control tokens are plain text.
//!
//! Unicode data (categories, whitespace, case, NFD) is Unicode 15.1, as in llama.cpp.
//! Everything is pure Rust with no regex engine; work is O(n log n) in the input size.

mod bpe;
mod decode;
mod fxhash;
mod hf;
mod pretok;
mod special;
mod spm;
mod unicode;
#[allow(clippy::all)]
#[rustfmt::skip]
mod unicode_tables;
mod vocab;
mod wpm;

pub use decode::{DecodeOptions, StreamDecoder};
pub use pretok::PreTokenizer;
pub use vocab::{attr as token_attr, VocabType};

/// Version of the Unicode data used for character classes, case and NFD (the version
/// of llama.cpp's tables).
pub const UNICODE_VERSION: &str = unicode_tables::UNICODE_VERSION;

use bpe::{BpeRanks, BpeScratch};
use special::{Fragment, SpecialMatcher};
use vocab::{attr, Vocab};
use wpm::{HfBert, Trie};

use crate::gguf::{Gguf, Metadata};

/// Everything that can go wrong when loading a vocabulary or (de)tokenizing.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer metadata: {0}")]
    Metadata(String),
    #[error("unknown tokenizer model '{0}'")]
    UnknownModel(String),
    #[error("tokenizer model '{0}' is not supported")]
    UnsupportedModel(String),
    #[error("unknown pre-tokenizer type '{0}' (tokenizer.ggml.pre)")]
    UnknownPreTokenizer(String),
    #[error("pre-tokenizer type '{0}' (tokenizer.ggml.pre) is not supported")]
    UnsupportedPreTokenizer(String),
    #[error("invalid vocabulary: {0}")]
    InvalidVocab(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("input is not valid UTF-8 (valid up to byte {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("token id {id} is out of range (vocabulary size {vocab_size})")]
    InvalidTokenId { id: u32, vocab_size: usize },
    #[error("the vocabulary has no token for byte 0x{0:02X} (byte fallback)")]
    MissingByteToken(u8),
    #[error("the vocabulary has no unknown token")]
    MissingUnknownToken,
    #[error("the vocabulary has no {0} token")]
    MissingSpecialToken(&'static str),
}

#[derive(Clone, Debug)]
enum Engine {
    Spm,
    Bpe {
        ranks: BpeRanks,
        pre: PreTokenizer,
    },
    WpmLlama {
        trie: Trie,
    },
    WpmHf {
        bert: HfBert,
        template: hf::Template,
    },
}

/// A tokenizer: text to token ids and back.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    vocab: Vocab,
    engine: Engine,
    matcher: SpecialMatcher,
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF header (only the metadata is read; the file's
    /// tensor data may be missing).
    pub fn from_gguf(g: &Gguf) -> Result<Self, TokenizerError> {
        Self::from_metadata(g.metadata())
    }

    /// Builds the tokenizer from GGUF metadata.
    pub fn from_metadata(md: &Metadata) -> Result<Self, TokenizerError> {
        let (vocab, merges) = Vocab::from_metadata(md)?;
        let engine = match vocab.typ {
            VocabType::Spm => Engine::Spm,
            VocabType::Bpe => Engine::Bpe {
                ranks: BpeRanks::from_merges(merges.iter().flatten().map(String::as_str)),
                pre: vocab.pre.unwrap_or(PreTokenizer::Default),
            },
            VocabType::Wpm => {
                let mut trie = Trie::new();
                for (i, t) in vocab.tokens.iter().enumerate() {
                    trie.insert(t.text.as_bytes(), i as u32);
                }
                Engine::WpmLlama { trie }
            }
        };
        Ok(Self::assemble(vocab, engine))
    }

    /// Builds a WordPiece tokenizer from a Hugging Face `tokenizer.json` (BERT-style
    /// pipelines only). Truncation and padding settings in the file are ignored.
    pub fn from_hf_json(json: &str) -> Result<Self, TokenizerError> {
        let (vocab, bert, template) = hf::load(json)?;
        Ok(Self::assemble(vocab, Engine::WpmHf { bert, template }))
    }

    fn assemble(vocab: Vocab, engine: Engine) -> Self {
        let matcher = SpecialMatcher::new(&vocab, &vocab.special_order);
        Tokenizer {
            vocab,
            engine,
            matcher,
        }
    }

    /// Tokenizes `text`. `add_special`: add BOS/EOS (or `[CLS]`/`[SEP]`) as the
    /// vocabulary asks; `parse_special`: turn the text of control tokens into them.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let v = &self.vocab;
        let frags = special::partition(v, &v.special_order, &self.matcher, text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        match &self.engine {
            Engine::Spm => {
                if add_special && v.add_bos {
                    out.push(
                        v.ids
                            .bos
                            .ok_or(TokenizerError::MissingSpecialToken("BOS"))?,
                    );
                }
                let mut prev_special = true;
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Fragment::Text(a, b) => {
                            buf.clear();
                            if v.add_space_prefix && prev_special {
                                buf.push('\u{2581}');
                            }
                            for c in text[a..b].chars() {
                                buf.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm::tokenize(v, &buf, &mut out)?;
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
                if add_special && v.add_eos {
                    out.push(
                        v.ids
                            .eos
                            .ok_or(TokenizerError::MissingSpecialToken("EOS"))?,
                    );
                }
            }
            Engine::Bpe { ranks, pre } => {
                if add_special && v.add_bos {
                    out.push(
                        v.ids
                            .bos
                            .ok_or(TokenizerError::MissingSpecialToken("BOS"))?,
                    );
                }
                let mut scratch = BpeScratch::default();
                let mut syms = Vec::new();
                let mut encoded = String::new();
                for f in frags {
                    match f {
                        Fragment::Text(a, b) => self.bpe_fragment(
                            ranks,
                            *pre,
                            &text[a..b],
                            &mut scratch,
                            &mut syms,
                            &mut encoded,
                            &mut out,
                        ),
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special && v.add_eos {
                    out.push(
                        v.ids
                            .eos
                            .ok_or(TokenizerError::MissingSpecialToken("EOS"))?,
                    );
                }
            }
            Engine::WpmLlama { trie } => {
                if add_special {
                    out.push(
                        v.ids
                            .bos
                            .ok_or(TokenizerError::MissingSpecialToken("BOS"))?,
                    );
                }
                for f in frags {
                    match f {
                        Fragment::Text(a, b) => {
                            wpm::tokenize_llama(v, trie, &text[a..b], &mut out)?
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special {
                    out.push(
                        v.ids
                            .sep
                            .ok_or(TokenizerError::MissingSpecialToken("SEP"))?,
                    );
                }
            }
            Engine::WpmHf { bert, template } => {
                if add_special {
                    out.extend_from_slice(&template.prefix);
                }
                for f in frags {
                    match f {
                        Fragment::Text(a, b) => bert.tokenize(&text[a..b], &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special {
                    out.extend_from_slice(&template.suffix);
                }
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn bpe_fragment(
        &self,
        ranks: &BpeRanks,
        pre: PreTokenizer,
        text: &str,
        scratch: &mut BpeScratch,
        syms: &mut Vec<(usize, usize)>,
        encoded: &mut String,
        out: &mut Vec<u32>,
    ) {
        let v = &self.vocab;
        for (a, b) in pretok::split_words(pre, text) {
            encoded.clear();
            for &byte in &text.as_bytes()[a..b] {
                encoded.push(unicode::byte_to_unicode(byte));
            }
            if v.ignore_merges {
                if let Some(id) = v.text_to_token(encoded) {
                    out.push(id);
                    continue;
                }
            }
            syms.clear();
            bpe::merge_word(ranks, encoded, scratch, syms);
            for &(s, e) in syms.iter() {
                let piece = &encoded[s..e];
                match v.text_to_token(piece) {
                    Some(id) => out.push(id),
                    None => {
                        // llama.cpp looks up each byte of the piece as a one-byte token
                        // (only ASCII bytes can match) and drops the others
                        for &byte in piece.as_bytes() {
                            if byte < 0x80 {
                                if let Some(id) =
                                    v.text_to_token(std::str::from_utf8(&[byte]).unwrap_or(""))
                                {
                                    out.push(id);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Like [`encode`](Self::encode) for raw bytes: invalid UTF-8 is an error
    /// (llama.cpp would silently replace it with U+FFFD).
    pub fn encode_bytes(
        &self,
        bytes: &[u8],
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let text = std::str::from_utf8(bytes).map_err(|e| TokenizerError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        self.encode(text, add_special, parse_special)
    }

    /// Decodes ids to text like llama.cpp's `llama_detokenize(remove_special = false,
    /// unparse_special = render_special)`: pieces concatenated, the leading space of the
    /// first piece removed for `add_space_prefix` vocabularies, the vocabulary's
    /// `clean_spaces` clean-up applied. Bytes that are not valid UTF-8 as a whole (e.g.
    /// a lone byte token) become U+FFFD; use [`decode_bytes`](Self::decode_bytes) to get
    /// them raw.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> Result<String, TokenizerError> {
        self.decode_with(ids, DecodeOptions::new(render_special))
    }

    /// [`decode`](Self::decode) with all options.
    pub fn decode_with(&self, ids: &[u32], opts: DecodeOptions) -> Result<String, TokenizerError> {
        let mut d = self.streaming_decoder_with(opts);
        let mut out = String::new();
        for &id in ids {
            d.push_into(id, &mut out)?;
        }
        out.push_str(&d.finish());
        Ok(out)
    }

    /// The raw bytes of the decoded pieces (no clean-up, no lossy conversion).
    pub fn decode_bytes(
        &self,
        ids: &[u32],
        render_special: bool,
    ) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        for &id in ids {
            decode::append_piece(&self.vocab, self.wpm_prefix(), id, render_special, &mut out)?;
        }
        Ok(out)
    }

    /// The bytes of one token (llama.cpp's `llama_token_to_piece` with `lstrip = 0`).
    /// Control and unknown tokens give nothing unless `render_special`.
    pub fn token_to_piece(&self, id: u32, render_special: bool) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        decode::append_piece(&self.vocab, self.wpm_prefix(), id, render_special, &mut out)?;
        Ok(out)
    }

    /// An incremental decoder equal to [`decode`](Self::decode) in total output.
    pub fn streaming_decoder(&self, render_special: bool) -> StreamDecoder<'_> {
        self.streaming_decoder_with(DecodeOptions::new(render_special))
    }

    pub fn streaming_decoder_with(&self, opts: DecodeOptions) -> StreamDecoder<'_> {
        StreamDecoder::new(&self.vocab, self.wpm_prefix(), opts)
    }

    fn wpm_prefix(&self) -> Option<&str> {
        match &self.engine {
            Engine::WpmHf { bert, .. } => Some(bert.continuing_prefix.as_str()),
            _ => None,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.n_tokens()
    }

    pub fn vocab_type(&self) -> VocabType {
        self.vocab.typ
    }

    /// `tokenizer.ggml.model` (`llama`, `gpt2`, `bert`), or `tokenizer.json`.
    pub fn model_name(&self) -> &str {
        &self.vocab.model
    }

    /// `tokenizer.ggml.pre` as stored (empty when absent).
    pub fn pre_tokenizer_name(&self) -> &str {
        &self.vocab.pre_name
    }

    /// Number of BPE merges (0 for other vocabulary types).
    pub fn n_merges(&self) -> usize {
        match &self.engine {
            Engine::Bpe { ranks, .. } => ranks.len(),
            _ => 0,
        }
    }

    /// The pre-tokenizer of a BPE vocabulary.
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        match &self.engine {
            Engine::Bpe { pre, .. } => Some(*pre),
            _ => None,
        }
    }

    pub fn bos(&self) -> Option<u32> {
        self.vocab.ids.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.vocab.ids.eos
    }

    /// End of turn (`<|eot_id|>`, `<|im_end|>`, `<end_of_turn>`, ...).
    pub fn eot(&self) -> Option<u32> {
        self.vocab.ids.eot
    }

    pub fn unk(&self) -> Option<u32> {
        self.vocab.ids.unk
    }

    /// Separator (`[SEP]` for BERT).
    pub fn sep(&self) -> Option<u32> {
        self.vocab.ids.sep
    }

    pub fn pad(&self) -> Option<u32> {
        self.vocab.ids.pad
    }

    /// Whether `encode(.., add_special = true, ..)` adds a BOS (resp. EOS).
    pub fn add_bos(&self) -> bool {
        match &self.engine {
            Engine::WpmLlama { .. } => true,
            Engine::WpmHf { template, .. } => !template.prefix.is_empty(),
            _ => self.vocab.add_bos,
        }
    }

    pub fn add_eos(&self) -> bool {
        self.vocab.add_eos
    }

    /// End-of-generation tokens: EOS, EOT, EOM and the tokens llama.cpp recognizes by
    /// their text (`<|im_end|>`, `<end_of_turn>`, `<|endoftext|>`, `<|eot_id|>`, ...),
    /// plus the FIM pad/repo/separator tokens, exactly as llama.cpp's `is_eog`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.vocab.eog.contains(&id)
    }

    /// All end-of-generation tokens, sorted.
    pub fn eog_tokens(&self) -> Vec<u32> {
        self.vocab.eog.iter().copied().collect()
    }

    /// The vocabulary text of a token (GGUF: as stored, e.g. `Ġhello` or `▁hello`;
    /// tokenizer.json: e.g. `##ing`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(|t| &*t.text)
    }

    pub fn token_to_id(&self, text: &str) -> Option<u32> {
        self.vocab.text_to_token(text)
    }

    /// llama.cpp token attributes of a token (see [`token_attr`]).
    pub fn token_attr(&self, id: u32) -> Option<u32> {
        self.vocab.tokens.get(id as usize).map(|t| t.attr)
    }

    /// Whether the token is a control token (rendered only with `render_special`).
    pub fn is_control(&self, id: u32) -> bool {
        self.token_attr(id).is_some_and(|a| a & attr::CONTROL != 0)
    }

    /// Non-fatal notes from loading (e.g. the missing-`pre` fallback).
    pub fn warnings(&self) -> &[String] {
        &self.vocab.warnings
    }
}
