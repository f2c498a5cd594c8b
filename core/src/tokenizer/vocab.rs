//! The vocabulary: token texts, scores and attributes, special token ids and the
//! tokenizer flags, loaded from GGUF metadata exactly as llama.cpp's
//! `llama_vocab::impl::load` does (defaults per model type, key overrides, the
//! text-based detection of end-of-generation tokens).

use std::collections::hash_map::Entry;
use std::collections::BTreeSet;

use super::fxhash::FxHashMap;
use super::pretok::PreTokenizer;
use super::special::libstdcxx_sort;
use super::TokenizerError;
use crate::gguf::{Metadata, Value};

/// Token attributes (llama.cpp's `llama_token_attr` bits).
pub mod attr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const NORMALIZED: u32 = 1 << 6;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
    pub const SINGLE_WORD: u32 = 1 << 9;
}

/// The tokenization algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabType {
    /// SentencePiece BPE (`tokenizer.ggml.model = llama`).
    Spm,
    /// Byte-level BPE (`gpt2`).
    Bpe,
    /// WordPiece (`bert`, or a Hugging Face `tokenizer.json` with a WordPiece model).
    Wpm,
}

#[derive(Clone, Debug)]
pub(crate) struct TokenData {
    pub text: Box<str>,
    pub score: f32,
    pub attr: u32,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct Vocab {
    pub typ: VocabType,
    pub model: String,
    pub pre_name: String,
    pub pre: Option<PreTokenizer>,
    pub tokens: Vec<TokenData>,
    pub token_to_id: FxHashMap<Box<str>, u32>,
    pub ids: SpecialIds,
    pub add_space_prefix: bool,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_sep: bool,
    pub ignore_merges: bool,
    pub clean_spaces: bool,
    pub escape_whitespaces: bool,
    pub lowercase: bool,
    pub strip_accents: bool,
    pub eog: BTreeSet<u32>,
    /// Control, user-defined and unknown tokens, longest text first (llama.cpp's
    /// `cache_special_tokens`).
    pub special_order: Vec<u32>,
    pub max_token_len: usize,
    pub warnings: Vec<String>,
}

/// Accessor of one special-token id slot.
type Slot = fn(&mut SpecialIds) -> &mut Option<u32>;

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
pub(crate) const KEY_MERGES: &str = "tokenizer.ggml.merges";

/// Pre-tokenizer settings for a `tokenizer.ggml.pre` name (llama.cpp's table).
struct PreCfg {
    pre: PreTokenizer,
    clean_spaces: bool,
    ignore_merges: bool,
    add_bos: bool,
    add_sep: bool,
    no_bos: bool,
}

/// Maps a `tokenizer.ggml.pre` name to its pre-tokenizer, as llama.cpp does. Names that
/// llama.cpp knows but whose splitting rules are not implemented here give
/// `UnsupportedPreTokenizer`; names llama.cpp does not know give `UnknownPreTokenizer`.
fn pre_config(name: &str) -> Result<PreCfg, TokenizerError> {
    use PreTokenizer::*;
    let cfg = |pre, clean_spaces| PreCfg {
        pre,
        clean_spaces,
        ignore_merges: false,
        add_bos: false,
        add_sep: false,
        no_bos: false,
    };
    Ok(match name {
        "default" => cfg(Default, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreCfg {
            ignore_merges: true,
            add_bos: true,
            ..cfg(Llama3, true)
        },
        "dbrx" | "smaug-bpe" => cfg(Llama3, true),
        "glm4" | "chatglm-bpe" => PreCfg {
            no_bos: true,
            ..cfg(Llama3, true)
        },
        "mpt" | "olmo" | "jais" | "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat"
        | "jina-v2-es" | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "exaone4" => {
            cfg(Gpt2, true)
        }
        "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => PreCfg {
            add_sep: true,
            ..cfg(Gpt2, true)
        },
        "trillion" | "granite-docling" => cfg(Gpt2, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            cfg(Starcoder, true)
        }
        "command-r" | "smollm" => cfg(Starcoder, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open"
        | "grok-2" => cfg(Qwen2, false),
        "stablelm2" | "megrez" => cfg(Qwen2, true),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => cfg(Gpt4o, false),
        "tekken" => PreCfg {
            ignore_merges: true,
            add_bos: true,
            ..cfg(Tekken, false)
        },
        "deepseek-llm"
        | "deepseek-coder"
        | "deepseek-v3"
        | "spark2_5"
        | "youtu"
        | "falcon"
        | "jais-2"
        | "gemma4"
        | "granite-embed-multi-311m"
        | "sarvam-moe"
        | "whitespace"
        | "qwen35"
        | "poro-chat"
        | "viking"
        | "bloom"
        | "gpt3-finnish"
        | "exaone-moe"
        | "chameleon"
        | "granite-embed-multi-97m"
        | "tiny_aya"
        | "cohere2moe"
        | "superbpe"
        | "bailingmoe"
        | "bailingmoe2"
        | "llada-moe"
        | "seed-coder"
        | "hunyuan-dense"
        | "hy_v4"
        | "joyai-llm"
        | "kimi-k2"
        | "ufakzeka"
        | "afmoe"
        | "laguna"
        | "minicpm5" => return Err(TokenizerError::UnsupportedPreTokenizer(name.to_string())),
        _ => return Err(TokenizerError::UnknownPreTokenizer(name.to_string())),
    })
}

fn meta_err(e: crate::gguf::GgufError) -> TokenizerError {
    TokenizerError::Metadata(e.to_string())
}

fn opt_bool(md: &Metadata, key: &str) -> Result<Option<bool>, TokenizerError> {
    md.get_bool_opt(key).map_err(meta_err)
}

/// Texts that llama.cpp takes for end-of-turn tokens when `eot_token_id` is absent.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts of end-of-generation tokens (llama.cpp's list).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

impl Vocab {
    pub(crate) fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    pub(crate) fn token(&self, id: u32) -> &TokenData {
        &self.tokens[id as usize]
    }

    pub(crate) fn text(&self, id: u32) -> &str {
        &self.tokens[id as usize].text
    }

    pub(crate) fn attr(&self, id: u32) -> u32 {
        self.tokens[id as usize].attr
    }

    #[inline]
    pub(crate) fn text_to_token(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// An empty vocabulary of the given type, with llama.cpp's default special ids and
    /// flags for that type.
    pub(crate) fn empty(typ: VocabType, model: &str) -> Vocab {
        let mut v = Vocab {
            typ,
            model: model.to_string(),
            pre_name: String::new(),
            pre: None,
            tokens: Vec::new(),
            token_to_id: FxHashMap::default(),
            ids: SpecialIds::default(),
            add_space_prefix: false,
            add_bos: false,
            add_eos: false,
            add_sep: false,
            ignore_merges: false,
            clean_spaces: false,
            escape_whitespaces: true,
            lowercase: true,
            strip_accents: true,
            eog: BTreeSet::new(),
            special_order: Vec::new(),
            max_token_len: 0,
            warnings: Vec::new(),
        };
        match typ {
            VocabType::Spm => {
                v.ids.bos = Some(1);
                v.ids.eos = Some(2);
                v.ids.unk = Some(0);
                v.add_space_prefix = true;
                v.add_bos = true;
            }
            VocabType::Wpm => {
                v.ids.bos = Some(101);
                v.ids.unk = Some(100);
                v.ids.sep = Some(102);
                v.ids.pad = Some(0);
                v.ids.mask = Some(103);
                v.add_sep = true;
                v.add_bos = true;
                v.clean_spaces = true;
            }
            VocabType::Bpe => {
                v.ids.bos = Some(11);
                v.ids.eos = Some(11);
                v.escape_whitespaces = false;
                v.clean_spaces = true;
            }
        }
        v
    }

    /// Adds the tokens (texts, scores, llama.cpp token types).
    pub(crate) fn set_tokens(
        &mut self,
        texts: Vec<String>,
        scores: Option<Vec<f32>>,
        types: Option<Vec<i32>>,
    ) -> Result<(), TokenizerError> {
        let n = texts.len();
        if n >= u32::MAX as usize {
            return Err(TokenizerError::InvalidVocab("too many tokens".into()));
        }
        if let Some(s) = &scores {
            if s.len() < n {
                return Err(TokenizerError::InvalidVocab(format!(
                    "{} scores for {n} tokens",
                    s.len()
                )));
            }
        }
        if let Some(t) = &types {
            if t.len() < n {
                return Err(TokenizerError::InvalidVocab(format!(
                    "{} token types for {n} tokens",
                    t.len()
                )));
            }
        }
        self.tokens.reserve(n);
        self.token_to_id.reserve(n);
        for (i, mut text) in texts.into_iter().enumerate() {
            if text.is_empty() {
                self.warnings.push(format!("empty token at index {i}"));
                text = format!("[EMPTY_{i}]");
            }
            let text: Box<str> = text.into();
            match self.token_to_id.entry(text.clone()) {
                Entry::Occupied(e) => {
                    return Err(TokenizerError::InvalidVocab(format!(
                        "duplicate token in vocabulary: {text:?} has ids {} and {i}",
                        e.get()
                    )))
                }
                Entry::Vacant(e) => {
                    e.insert(i as u32);
                }
            }
            self.max_token_len = self.max_token_len.max(text.len());
            let score = scores.as_ref().map_or(0.0, |s| s[i]);
            let attr = match types.as_ref().map(|t| t[i]) {
                None => attr::NORMAL,
                Some(2) => attr::UNKNOWN,
                Some(5) => attr::UNUSED,
                Some(1) => attr::NORMAL,
                Some(3) => attr::CONTROL,
                Some(4) => attr::USER_DEFINED,
                Some(6) => attr::BYTE,
                Some(_) => attr::UNDEFINED,
            };
            self.tokens.push(TokenData { text, score, attr });
        }
        Ok(())
    }

    fn find_text(&self, texts: &[&str]) -> Option<u32> {
        // llama.cpp walks an unordered_map, so when several candidates exist the choice
        // is arbitrary there; here it is the lowest id.
        texts.iter().filter_map(|t| self.text_to_token(t)).min()
    }

    fn force_control(&mut self, id: u32) {
        let a = &mut self.tokens[id as usize].attr;
        if *a & attr::CONTROL == 0 {
            *a |= attr::CONTROL;
        }
    }

    /// The text-based detection of EOT/EOM/FIM tokens, unused tokens and the
    /// end-of-generation set, then the special-token cache (llama.cpp, same order).
    pub(crate) fn finish_special_tokens(&mut self) {
        let slots: [(Slot, &[&str]); 8] = [
            (|i| &mut i.eot, EOT_TEXTS),
            (|i| &mut i.eom, EOM_TEXTS),
            (|i| &mut i.fim_pre, FIM_PRE_TEXTS),
            (|i| &mut i.fim_suf, FIM_SUF_TEXTS),
            (|i| &mut i.fim_mid, FIM_MID_TEXTS),
            (|i| &mut i.fim_pad, FIM_PAD_TEXTS),
            (|i| &mut i.fim_rep, FIM_REP_TEXTS),
            (|i| &mut i.fim_sep, FIM_SEP_TEXTS),
        ];
        for (slot, texts) in slots {
            if slot(&mut self.ids).is_none() {
                // every candidate present gets the control attribute in llama.cpp only if
                // chosen; the chosen one is the lowest id here (see find_text)
                if let Some(id) = self.find_text(texts) {
                    *slot(&mut self.ids) = Some(id);
                    self.force_control(id);
                }
            }
        }

        // unused tokens: control tokens whose text contains "unused"
        for t in self.tokens.iter_mut() {
            if t.attr & attr::CONTROL != 0
                && t.attr & attr::UNUSED == 0
                && t.text.contains("unused")
            {
                t.attr |= attr::UNUSED;
            }
        }

        // end-of-generation tokens
        let mut eog = BTreeSet::new();
        for id in [self.ids.fim_pad, self.ids.fim_rep, self.ids.fim_sep]
            .into_iter()
            .flatten()
        {
            eog.insert(id);
        }
        for text in EOG_TEXTS {
            if let Some(id) = self.text_to_token(text) {
                eog.insert(id);
                self.force_control(id);
            }
        }
        for name in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = self.text_to_token(name) {
                self.tokens[id as usize].attr = attr::USER_DEFINED;
            }
        }
        for id in [self.ids.eos, self.ids.eot, self.ids.eom]
            .into_iter()
            .flatten()
        {
            eog.insert(id);
        }
        // o200k_harmony / solar-open: "<|end|>" is not end-of-generation
        let has = |v: &Vocab, eog: &BTreeSet<u32>, t: &str| {
            v.text_to_token(t).is_some_and(|id| eog.contains(&id))
        };
        let has_return = has(self, &eog, "<|return|>");
        let has_call = has(self, &eog, "<|call|>") || has(self, &eog, "<|calls|>");
        let has_flush = has(self, &eog, "<|flush|>");
        if let Some(end_id) = self.text_to_token("<|end|>").filter(|id| eog.contains(id)) {
            if has_call && (has_return || has_flush) {
                eog.remove(&end_id);
                self.tokens[end_id as usize].attr = attr::USER_DEFINED;
            }
        }
        // gemma4 / paddleocr: "</s>" is not end-of-generation next to "<|tool_response>"
        if has(self, &eog, "<|tool_response>") {
            if let Some(s_id) = self.text_to_token("</s>").filter(|id| eog.contains(id)) {
                eog.remove(&s_id);
                self.tokens[s_id as usize].attr = attr::NORMAL;
            }
        }
        self.eog = eog;

        self.build_special_order();
    }

    pub(crate) fn build_special_order(&mut self) {
        let mut order: Vec<u32> = (0..self.tokens.len() as u32)
            .filter(|&id| self.attr(id) & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0)
            .collect();
        let tokens = &self.tokens;
        libstdcxx_sort(&mut order, &|a: &u32, b: &u32| {
            tokens[*a as usize].text.len() > tokens[*b as usize].text.len()
        });
        self.special_order = order;
    }

    /// Loads the vocabulary from GGUF metadata (llama.cpp's `llama_vocab::impl::load`).
    pub(crate) fn from_metadata(
        md: &Metadata,
    ) -> Result<(Vocab, Option<Vec<String>>), TokenizerError> {
        let model = md.get_str(KEY_MODEL).map_err(meta_err)?;
        let pre_name = md
            .get_str_opt(KEY_PRE)
            .map_err(meta_err)?
            .unwrap_or("")
            .to_string();

        let typ = match model {
            "llama" => VocabType::Spm,
            "bert" => VocabType::Wpm,
            "gpt2" => VocabType::Bpe,
            "no_vocab" | "none" | "t5" | "rwkv" | "plamo2" | "gemma4" | "hybriddna"
            | "whitespace" => return Err(TokenizerError::UnsupportedModel(model.to_string())),
            _ => return Err(TokenizerError::UnknownModel(model.to_string())),
        };
        let mut v = Vocab::empty(typ, model);
        v.pre_name = pre_name.clone();

        let merges = if typ == VocabType::Bpe {
            let arr = md
                .get_array_opt(KEY_MERGES)
                .map_err(meta_err)?
                .ok_or_else(|| {
                    TokenizerError::InvalidVocab(
                        "cannot find tokenizer merges in model file".into(),
                    )
                })?;
            let mut merges = Vec::with_capacity(arr.len());
            for m in arr {
                let s = m.as_str().ok_or_else(|| {
                    TokenizerError::InvalidVocab(format!("{KEY_MERGES} is not an array of strings"))
                })?;
                merges.push(s.to_string());
            }
            if pre_name.is_empty() {
                // llama.cpp's documented fallback (it logs "GENERATION QUALITY WILL BE DEGRADED")
                v.warnings.push("missing tokenizer.ggml.pre, using the 'default' pre-tokenizer as llama.cpp does".into());
                v.pre = Some(PreTokenizer::Default);
            } else {
                let cfg = pre_config(&pre_name)?;
                v.pre = Some(cfg.pre);
                v.clean_spaces = cfg.clean_spaces;
                v.ignore_merges = cfg.ignore_merges;
                if cfg.add_bos {
                    v.add_bos = true;
                }
                if cfg.add_sep {
                    v.add_sep = true;
                }
                if cfg.no_bos {
                    v.ids.bos = None;
                }
            }
            Some(merges)
        } else {
            None
        };

        if let Some(b) = opt_bool(md, "tokenizer.ggml.add_space_prefix")? {
            v.add_space_prefix = b;
        }

        // tokens, scores, types
        let tokens = md
            .get_array_opt(KEY_TOKENS)
            .map_err(meta_err)?
            .ok_or_else(|| {
                TokenizerError::InvalidVocab("cannot find tokenizer vocab in model file".into())
            })?;
        let mut texts = Vec::with_capacity(tokens.len());
        for t in tokens {
            texts.push(
                t.as_str()
                    .ok_or_else(|| {
                        TokenizerError::InvalidVocab(format!(
                            "{KEY_TOKENS} is not an array of strings"
                        ))
                    })?
                    .to_string(),
            );
        }
        let scores = match md.get_array_opt(KEY_SCORES).map_err(meta_err)? {
            None => None,
            Some(a) => Some(
                a.iter()
                    .map(|x| match x {
                        Value::F32(f) => Ok(*f),
                        Value::I32(i) => Ok(*i as f32),
                        _ => Err(TokenizerError::InvalidVocab(format!(
                            "invalid gguf type for {KEY_SCORES}"
                        ))),
                    })
                    .collect::<Result<Vec<f32>, _>>()?,
            ),
        };
        let types = match md.get_array_opt(KEY_TYPES).map_err(meta_err)? {
            None => None,
            Some(a) => Some(
                a.iter()
                    .map(|x| match x {
                        Value::I32(i) => Ok(*i),
                        _ => Err(TokenizerError::InvalidVocab(format!(
                            "invalid gguf type for {KEY_TYPES}"
                        ))),
                    })
                    .collect::<Result<Vec<i32>, _>>()?,
            ),
        };
        v.set_tokens(texts, scores, types)?;
        let n = v.n_tokens() as u64;

        // special token ids: defaults out of range are dropped, keys override
        let keys: [(&str, Slot); 17] = [
            ("tokenizer.ggml.bos_token_id", |i| &mut i.bos),
            ("tokenizer.ggml.eos_token_id", |i| &mut i.eos),
            ("tokenizer.ggml.eot_token_id", |i| &mut i.eot),
            ("tokenizer.ggml.eom_token_id", |i| &mut i.eom),
            ("tokenizer.ggml.unknown_token_id", |i| &mut i.unk),
            ("tokenizer.ggml.seperator_token_id", |i| &mut i.sep),
            ("tokenizer.ggml.padding_token_id", |i| &mut i.pad),
            ("tokenizer.ggml.mask_token_id", |i| &mut i.mask),
            ("tokenizer.ggml.fim_pre_token_id", |i| &mut i.fim_pre),
            ("tokenizer.ggml.fim_suf_token_id", |i| &mut i.fim_suf),
            ("tokenizer.ggml.fim_mid_token_id", |i| &mut i.fim_mid),
            ("tokenizer.ggml.fim_pad_token_id", |i| &mut i.fim_pad),
            ("tokenizer.ggml.fim_rep_token_id", |i| &mut i.fim_rep),
            ("tokenizer.ggml.fim_sep_token_id", |i| &mut i.fim_sep),
            ("tokenizer.ggml.prefix_token_id", |i| &mut i.fim_pre),
            ("tokenizer.ggml.suffix_token_id", |i| &mut i.fim_suf),
            ("tokenizer.ggml.middle_token_id", |i| &mut i.fim_mid),
        ];
        for (key, slot) in keys {
            let id = slot(&mut v.ids);
            if id.is_some_and(|x| x as u64 >= n) {
                *id = None;
            }
            let Some(new_id) = md.get(key).and_then(Value::as_u64) else {
                continue;
            };
            if new_id >= n {
                v.warnings.push(format!(
                    "bad special token: '{key}' = {new_id}, using default id {id:?}"
                ));
            } else {
                *id = Some(new_id as u32);
            }
        }

        if let Some(b) = opt_bool(md, "tokenizer.ggml.add_bos_token")? {
            v.add_bos = b;
        }
        if let Some(b) = opt_bool(md, "tokenizer.ggml.add_eos_token")? {
            v.add_eos = b;
        }
        if let Some(b) = opt_bool(md, "tokenizer.ggml.add_sep_token")? {
            v.add_sep = b;
        }
        if v.add_bos && v.ids.bos.is_none() {
            return Err(TokenizerError::InvalidVocab(
                "tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set"
                    .into(),
            ));
        }
        if v.add_eos && v.ids.eos.is_none() {
            return Err(TokenizerError::InvalidVocab(
                "tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set"
                    .into(),
            ));
        }
        if v.add_sep && v.ids.sep.is_none() {
            return Err(TokenizerError::InvalidVocab(
                "tokenizer.ggml.add_sep_token is true, but tokenizer.ggml.seperator_token_id is not set".into(),
            ));
        }

        if let Some(b) = opt_bool(md, "tokenizer.ggml.normalizer.lowercase")? {
            v.lowercase = b;
        }
        v.strip_accents = v.lowercase;
        if let Some(b) = opt_bool(md, "tokenizer.ggml.normalizer.strip_accents")? {
            v.strip_accents = b;
        }

        v.finish_special_tokens();

        // per-token attributes that llama.cpp sets by model name
        let name = md
            .get_str_opt("general.name")
            .map_err(meta_err)?
            .unwrap_or("")
            .to_lowercase();
        let arch = md
            .get_str_opt("general.architecture")
            .map_err(meta_err)?
            .unwrap_or("");
        let set = |v: &mut Vocab, text: &str, a: u32, on: bool| {
            if let Some(id) = v.text_to_token(text) {
                let t = &mut v.tokens[id as usize].attr;
                if on {
                    *t |= a;
                } else {
                    *t &= !a;
                }
            }
        };
        if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
            .iter()
            .any(|s| v.pre_name.contains(s))
            || ["nomic-bert-moe", "jina-bert-v3"]
                .iter()
                .any(|s| arch.contains(s))
        {
            set(&mut v, "<mask>", attr::LSTRIP, true);
        } else if name.contains("phi-3") || name.contains("phi3") {
            for id in v.special_order.clone() {
                v.tokens[id as usize].attr |= attr::RSTRIP;
            }
            set(&mut v, "</s>", attr::RSTRIP, true);
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                set(&mut v, t, attr::RSTRIP, false);
            }
        } else if name.contains("modern-bert") {
            set(&mut v, "[MASK]", attr::LSTRIP, true);
        }

        Ok((v, merges))
    }
}
