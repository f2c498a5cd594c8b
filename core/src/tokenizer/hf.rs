//! Loading a Hugging Face `tokenizer.json` with a WordPiece model (BERT family):
//! `BertNormalizer`, `BertPreTokenizer`, `WordPiece`, `TemplateProcessing` or
//! `BertProcessing`, and the added tokens. Other pipelines are rejected with
//! `Unsupported`, never approximated.

use serde_json::Value as J;

use super::vocab::{attr, Vocab, VocabType};
use super::wpm::{HfBert, Trie};
use super::TokenizerError;

/// What a `tokenizer.json` adds around a single sequence.
#[derive(Clone, Debug, Default)]
pub(crate) struct Template {
    pub prefix: Vec<u32>,
    pub suffix: Vec<u32>,
}

fn unsupported(what: impl Into<String>) -> TokenizerError {
    TokenizerError::Unsupported(what.into())
}

fn bad(what: impl Into<String>) -> TokenizerError {
    TokenizerError::InvalidVocab(what.into())
}

fn get_bool(obj: &J, key: &str, default: bool) -> Result<bool, TokenizerError> {
    match obj.get(key) {
        None | Some(J::Null) => Ok(default),
        Some(J::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("tokenizer.json: '{key}' is not a boolean"))),
    }
}

fn id_of(v: &J, what: &str) -> Result<u32, TokenizerError> {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| bad(format!("tokenizer.json: {what} is not a token id")))
}

pub(crate) fn load(json: &str) -> Result<(Vocab, HfBert, Template), TokenizerError> {
    let j: J = serde_json::from_str(json).map_err(|e| bad(format!("tokenizer.json: {e}")))?;

    // model
    let model = j
        .get("model")
        .ok_or_else(|| bad("tokenizer.json has no 'model'"))?;
    let mtype = model.get("type").and_then(J::as_str).unwrap_or("");
    if mtype != "WordPiece" {
        return Err(unsupported(format!(
            "tokenizer.json model type '{mtype}' (only WordPiece is supported; use the GGUF vocabulary for BPE and SentencePiece models)"
        )));
    }
    let vocab_map = model
        .get("vocab")
        .and_then(J::as_object)
        .ok_or_else(|| bad("tokenizer.json: model.vocab is not an object"))?;
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(J::as_str)
        .unwrap_or("##")
        .to_string();
    let max_chars = model
        .get("max_input_chars_per_word")
        .and_then(J::as_u64)
        .unwrap_or(100) as usize;
    let unk_text = model
        .get("unk_token")
        .and_then(J::as_str)
        .unwrap_or("[UNK]")
        .to_string();

    // normalizer
    let (mut clean_text, mut chinese, mut strip_accents, mut lowercase) =
        (false, false, false, false);
    match j.get("normalizer") {
        None | Some(J::Null) => {}
        Some(n) => {
            let ntype = n.get("type").and_then(J::as_str).unwrap_or("");
            if ntype != "BertNormalizer" {
                return Err(unsupported(format!("tokenizer.json normalizer '{ntype}'")));
            }
            clean_text = get_bool(n, "clean_text", true)?;
            chinese = get_bool(n, "handle_chinese_chars", true)?;
            lowercase = get_bool(n, "lowercase", true)?;
            strip_accents = match n.get("strip_accents") {
                None | Some(J::Null) => lowercase,
                Some(J::Bool(b)) => *b,
                Some(_) => return Err(bad("tokenizer.json: 'strip_accents' is not a boolean")),
            };
        }
    }

    // pre-tokenizer
    let ptype = j
        .get("pre_tokenizer")
        .and_then(|p| p.get("type"))
        .and_then(J::as_str)
        .unwrap_or("");
    if ptype != "BertPreTokenizer" {
        return Err(unsupported(format!(
            "tokenizer.json pre_tokenizer '{ptype}' (only BertPreTokenizer)"
        )));
    }

    // vocabulary: WordPiece entries, then added tokens
    let mut n = 0usize;
    for v in vocab_map.values() {
        n = n.max(id_of(v, "a vocab entry")? as usize + 1);
    }
    let added = match j.get("added_tokens") {
        None | Some(J::Null) => Vec::new(),
        Some(J::Array(a)) => a.clone(),
        Some(_) => return Err(bad("tokenizer.json: 'added_tokens' is not an array")),
    };
    for a in &added {
        n = n.max(id_of(a.get("id").unwrap_or(&J::Null), "an added token id")? as usize + 1);
    }
    // ids index a table: refuse absurd ids rather than allocating for them
    if n > 2 * (vocab_map.len() + added.len()) + 1024 {
        return Err(bad(format!(
            "tokenizer.json: token id {} for {} entries",
            n - 1,
            vocab_map.len() + added.len()
        )));
    }
    let mut texts: Vec<Option<String>> = vec![None; n];
    let mut attrs = vec![attr::NORMAL; n];
    let mut trie = Trie::new();
    for (text, v) in vocab_map {
        let id = id_of(v, "a vocab entry")? as usize;
        if texts[id].is_some() {
            return Err(bad(format!(
                "tokenizer.json: id {id} appears twice in the vocab"
            )));
        }
        trie.insert(text.as_bytes(), id as u32);
        texts[id] = Some(text.clone());
    }
    for a in &added {
        let id = id_of(a.get("id").unwrap_or(&J::Null), "an added token id")? as usize;
        let content = a
            .get("content")
            .and_then(J::as_str)
            .ok_or_else(|| bad("tokenizer.json: added token without content"))?;
        match &texts[id] {
            Some(t) if t != content => {
                return Err(bad(format!(
                    "tokenizer.json: added token {id} {content:?} differs from vocab {t:?}"
                )))
            }
            _ => texts[id] = Some(content.to_string()),
        }
        let special = get_bool(a, "special", false)?;
        let mut at = if special {
            attr::CONTROL
        } else {
            attr::USER_DEFINED
        };
        if get_bool(a, "lstrip", false)? {
            at |= attr::LSTRIP;
        }
        if get_bool(a, "rstrip", false)? {
            at |= attr::RSTRIP;
        }
        attrs[id] = at;
    }

    let mut v = Vocab::empty(VocabType::Wpm, "tokenizer.json");
    v.ids = Default::default();
    v.add_bos = false;
    v.add_sep = false;
    v.lowercase = lowercase;
    v.strip_accents = strip_accents;
    let mut list = Vec::with_capacity(n);
    for (i, t) in texts.into_iter().enumerate() {
        list.push(t.unwrap_or_else(|| format!("[EMPTY_{i}]")));
    }
    v.set_tokens(list, None, None)?;
    for (t, a) in v.tokens.iter_mut().zip(attrs) {
        t.attr = a;
    }
    let unk = v.text_to_token(&unk_text).ok_or_else(|| {
        bad(format!(
            "tokenizer.json: unk_token {unk_text:?} is not in the vocab"
        ))
    })?;
    v.ids.unk = Some(unk);
    if v.tokens[unk as usize].attr == attr::NORMAL {
        v.tokens[unk as usize].attr = attr::UNKNOWN;
    }

    // post-processor
    let mut template = Template::default();
    match j.get("post_processor") {
        None | Some(J::Null) => {}
        Some(p) => match p.get("type").and_then(J::as_str).unwrap_or("") {
            "TemplateProcessing" => {
                let single = p
                    .get("single")
                    .and_then(J::as_array)
                    .ok_or_else(|| bad("tokenizer.json: TemplateProcessing without 'single'"))?;
                let specials = p.get("special_tokens");
                let mut seen_seq = false;
                for item in single {
                    if item.get("Sequence").is_some() {
                        seen_seq = true;
                        continue;
                    }
                    let name = item
                        .get("SpecialToken")
                        .and_then(|s| s.get("id"))
                        .and_then(J::as_str)
                        .ok_or_else(|| bad("tokenizer.json: bad TemplateProcessing item"))?;
                    let ids: Vec<u32> = match specials
                        .and_then(|s| s.get(name))
                        .and_then(|s| s.get("ids"))
                    {
                        Some(J::Array(ids)) => ids
                            .iter()
                            .map(|x| id_of(x, "a template id"))
                            .collect::<Result<_, _>>()?,
                        _ => vec![v.text_to_token(name).ok_or_else(|| {
                            bad(format!("tokenizer.json: template token {name:?} unknown"))
                        })?],
                    };
                    if seen_seq {
                        template.suffix.extend(ids);
                    } else {
                        template.prefix.extend(ids);
                    }
                }
            }
            "BertProcessing" | "RobertaProcessing" => {
                let pair_id = |key: &str| -> Result<u32, TokenizerError> {
                    p.get(key)
                        .and_then(J::as_array)
                        .and_then(|a| a.get(1))
                        .map(|x| id_of(x, key))
                        .unwrap_or_else(|| {
                            Err(bad(format!(
                                "tokenizer.json: BertProcessing without '{key}'"
                            )))
                        })
                };
                template.prefix.push(pair_id("cls")?);
                template.suffix.push(pair_id("sep")?);
            }
            other => {
                return Err(unsupported(format!(
                    "tokenizer.json post_processor '{other}'"
                )))
            }
        },
    }
    v.ids.bos = template.prefix.first().copied();
    v.ids.sep = template.suffix.last().copied();
    v.ids.pad = v.text_to_token("[PAD]");
    v.ids.mask = v.text_to_token("[MASK]");
    v.clean_spaces = true;
    v.add_space_prefix = false;
    v.build_special_order();

    let bert = HfBert {
        clean_text,
        handle_chinese_chars: chinese,
        strip_accents,
        lowercase,
        continuing_prefix: prefix,
        max_input_chars_per_word: max_chars,
        unk,
        trie,
    };
    Ok((v, bert, template))
}
