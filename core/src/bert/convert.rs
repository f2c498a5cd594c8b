//! Hugging Face BERT directory → GGUF (`chord convert`), written as llama.cpp's
//! `convert_hf_to_gguf.py` writes the `bert` architecture: its tensor names, its
//! `bert.*` keys, and the WordPiece vocabulary in llama.cpp's "phantom space" form
//! (word-initial tokens prefixed with U+2581, `##` dropped from continuations, control
//! tokens as they are), so that llama.cpp and [`Tokenizer::from_gguf`] both load it.
//!
//! Matrices go to the target type; 1-D tensors (norms, biases) and the position and
//! token-type tables stay F32 (as llama.cpp keeps them); a matrix whose rows are not a
//! multiple of the target's block falls back to F16.
//!
//! [`Tokenizer::from_gguf`]: crate::tokenizer::Tokenizer::from_gguf

use std::collections::HashMap;
use std::io::Write;

use super::{bert_metadata, map_hf_tensor, BertConfig, HfFiles, HfTensor};
use crate::gguf::{ByteSource, GgufError, GgufWriter, Metadata, Value, ValueType};
use crate::model::ModelError;
use crate::pooling::EmbedError;
use crate::quant::{self, GgmlType, QuantError};
use crate::safetensors::{SafeTensors, SafetensorsError, TensorEntry};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("tokenizer.json: {0}")]
    Tokenizer(String),
    #[error("tensor '{0}' is not part of a BERT model")]
    UnknownTensor(String),
    #[error("tensor '{name}' ({dtype}) cannot be converted: {reason}")]
    BadTensor {
        name: String,
        dtype: String,
        reason: String,
    },
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    #[error("converting to {0} is not supported (choose f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1)")]
    UnsupportedTarget(GgmlType),
}

/// What was written.
#[derive(Debug, Default)]
pub struct ConvertReport {
    pub n_tensors: usize,
    /// Tensors in the target type.
    pub converted: usize,
    /// Tensors kept F32 (1-D, position and token-type tables).
    pub kept_f32: usize,
    /// Matrices written as F16 because their rows do not fit the target's blocks.
    pub fallbacks: Vec<String>,
    pub n_vocab: usize,
}

/// llama.cpp's `llama_ftype` for an all-`ty` model.
fn file_type(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        GgmlType::BF16 => 32,
        _ => return None,
    })
}

/// llama.cpp token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// Converts the model in `files` + `st` (whose bytes are `src`) to GGUF in `target`.
/// `name` becomes `general.name`. `progress(i, n, name)` is called before each tensor.
pub fn convert_hf_to_gguf<S: ByteSource + ?Sized>(
    files: &HfFiles,
    st: &SafeTensors,
    src: &S,
    target: GgmlType,
    name: Option<&str>,
    out: &mut impl Write,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<ConvertReport, ConvertError> {
    let ftype = file_type(target).ok_or(ConvertError::UnsupportedTarget(target))?;
    let cfg = BertConfig::from_hf_json(&files.config_json)?;
    let pooling = files.pooling()?;

    // Tensor plan, in llama.cpp's order (embeddings, then each block).
    let mut by_name: HashMap<String, &TensorEntry> = HashMap::new();
    for t in &st.tensors {
        match map_hf_tensor(&t.name) {
            HfTensor::Mapped(n) => {
                if t.dtype.ggml_type().is_none() {
                    return Err(ConvertError::BadTensor {
                        name: t.name.clone(),
                        dtype: t.dtype.to_string(),
                        reason: "only F32, F16 and BF16 tensors are supported".into(),
                    });
                }
                by_name.insert(n, t);
            }
            HfTensor::Ignored => {}
            HfTensor::Unknown => return Err(ConvertError::UnknownTensor(t.name.clone())),
        }
    }
    let d = cfg.n_embd;
    let mut names: Vec<(String, Vec<u64>)> = vec![
        (
            "token_embd.weight".into(),
            vec![d as u64, cfg.n_vocab as u64],
        ),
        (
            "position_embd.weight".into(),
            vec![d as u64, cfg.n_ctx_train as u64],
        ),
    ];
    if cfg.n_token_types > 0 {
        names.push((
            "token_types.weight".into(),
            vec![d as u64, cfg.n_token_types as u64],
        ));
    }
    names.push(("token_embd_norm.weight".into(), vec![d as u64]));
    names.push(("token_embd_norm.bias".into(), vec![d as u64]));
    let (d64, ff) = (d as u64, cfg.n_ff as u64);
    for i in 0..cfg.n_layer {
        for (t, w, b) in [
            ("attn_q", vec![d64, d64], d64),
            ("attn_k", vec![d64, d64], d64),
            ("attn_v", vec![d64, d64], d64),
            ("attn_output", vec![d64, d64], d64),
            ("attn_output_norm", vec![d64], d64),
            ("ffn_up", vec![d64, ff], ff),
            ("ffn_down", vec![ff, d64], d64),
            ("layer_output_norm", vec![d64], d64),
        ] {
            names.push((format!("blk.{i}.{t}.weight"), w));
            names.push((format!("blk.{i}.{t}.bias"), vec![b]));
        }
    }
    if by_name.len() != names.len() {
        if let Some((extra, _)) = by_name
            .iter()
            .find(|(k, _)| !names.iter().any(|(n, _)| n == *k))
        {
            return Err(ConvertError::UnknownTensor(by_name[extra].name.clone()));
        }
    }

    let mut md = Metadata::default();
    md.insert("general.architecture", Value::String("bert".into()));
    if let Some(n) = name {
        md.insert("general.name", Value::String(n.into()));
    }
    md.insert("general.file_type", Value::U32(ftype));
    if target.block_size() > 1 {
        md.insert("general.quantization_version", Value::U32(2));
    }
    bert_metadata(&mut md, &cfg, pooling);
    let n_vocab = tokenizer_metadata(&mut md, &files.tokenizer_json, &cfg)?;

    let mut report = ConvertReport {
        n_vocab,
        ..Default::default()
    };
    let mut plan = Vec::with_capacity(names.len());
    let mut w = GgufWriter::new(md);
    for (gname, dims) in &names {
        let t = by_name
            .get(gname)
            .ok_or_else(|| ConvertError::MissingTensor(gname.clone()))?;
        if t.ggml_dims() != *dims {
            return Err(ConvertError::Model(ModelError::BadShape {
                name: t.name.clone(),
                expected: dims.clone(),
                found: t.ggml_dims(),
            }));
        }
        let keep_f32 =
            dims.len() < 2 || gname == "position_embd.weight" || gname == "token_types.weight";
        let ty = if keep_f32 {
            report.kept_f32 += 1;
            GgmlType::F32
        } else if dims[0] % target.block_size() as u64 == 0 {
            report.converted += 1;
            target
        } else {
            report.fallbacks.push(gname.clone());
            GgmlType::F16
        };
        w.add_tensor(gname, dims, ty)?;
        plan.push((*t, ty));
    }
    report.n_tensors = plan.len();

    let n = plan.len();
    let mut failure = None;
    w.write(out, |i, o| {
        let (t, ty) = plan[i];
        progress(i, n, &names[i].0);
        let src_ty = t.dtype.ggml_type().unwrap_or(GgmlType::F32);
        let row = *t.shape.last().unwrap_or(&1) as usize;
        let rows = (t.n_elements() as usize).checked_div(row).unwrap_or(0);
        let src_row = t.size_bytes as usize / rows.max(1);
        let mut raw = vec![0u8; src_row];
        let mut f = vec![0f32; row];
        let mut q = vec![0u8; ty.row_size(row).unwrap_or(0)];
        for r in 0..rows {
            src.read_at(t.offset + (r * src_row) as u64, &mut raw)?;
            let step = quant::dequantize_row(src_ty, &raw, &mut f)
                .and_then(|_| quant::quantize_row(ty, &f, &mut q));
            if let Err(e) = step {
                failure = Some(e);
                return Err(std::io::Error::other("conversion failed"));
            }
            o.write_all(&q)?;
        }
        Ok(())
    })
    .map_err(|e| match failure.take() {
        Some(q) => ConvertError::Quant(q),
        None => ConvertError::Gguf(e),
    })?;
    Ok(report)
}

/// Writes llama.cpp's `bert` tokenizer keys from a WordPiece `tokenizer.json`.
/// Returns the vocabulary size (the model's, with unused ids as `[PAD<i>]`).
fn tokenizer_metadata(
    md: &mut Metadata,
    json: &str,
    cfg: &BertConfig,
) -> Result<usize, ConvertError> {
    let bad = |m: String| ConvertError::Tokenizer(m);
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let model = v.get("model").ok_or_else(|| bad("no 'model'".into()))?;
    if model.get("type").and_then(|t| t.as_str()) != Some("WordPiece") {
        return Err(bad("only WordPiece tokenizers can be converted".into()));
    }
    let vocab = model
        .get("vocab")
        .and_then(|x| x.as_object())
        .ok_or_else(|| bad("model.vocab is not an object".into()))?;
    let n_vocab = cfg.n_vocab;
    let mut texts: Vec<Option<String>> = vec![None; n_vocab];
    let mut types = vec![NORMAL; n_vocab];
    let mut put = |text: &str, id: u64| -> Result<(), ConvertError> {
        let slot = texts.get_mut(id as usize).ok_or_else(|| {
            bad(format!(
                "token '{text}' has id {id}, beyond the model's {n_vocab} embeddings"
            ))
        })?;
        *slot = Some(text.to_string());
        Ok(())
    };
    for (text, id) in vocab {
        put(
            text,
            id.as_u64()
                .ok_or_else(|| bad(format!("bad id for '{text}'")))?,
        )?;
    }
    if let Some(added) = v.get("added_tokens").and_then(|a| a.as_array()) {
        for a in added {
            let (Some(id), Some(text)) = (
                a.get("id").and_then(|x| x.as_u64()),
                a.get("content").and_then(|x| x.as_str()),
            ) else {
                return Err(bad("malformed added_tokens entry".into()));
            };
            put(text, id)?;
            let special = a.get("special").and_then(|x| x.as_bool()).unwrap_or(false);
            types[id as usize] = if special { CONTROL } else { USER_DEFINED };
        }
    }
    let mut tokens = Vec::with_capacity(n_vocab);
    for (i, t) in texts.iter().enumerate() {
        let text = match t {
            None => {
                types[i] = UNUSED;
                format!("[PAD{i}]")
            }
            Some(t) if types[i] == CONTROL => t.clone(),
            Some(t) => match t.strip_prefix("##") {
                Some(rest) => rest.to_string(),
                None => format!("\u{2581}{t}"),
            },
        };
        tokens.push(Value::String(text));
    }
    let id_of = |text: &str| vocab.get(text).and_then(|x| x.as_u64()).map(|x| x as u32);
    // [CLS] and [SEP] from the post-processor's single-sequence template.
    let template: Vec<&str> = v
        .pointer("/post_processor/single")
        .and_then(|s| s.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|it| it.pointer("/SpecialToken/id").and_then(|x| x.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let cls = template
        .first()
        .copied()
        .and_then(id_of)
        .or_else(|| id_of("[CLS]"));
    let sep = template
        .last()
        .copied()
        .and_then(id_of)
        .or_else(|| id_of("[SEP]"));
    let unk = model
        .get("unk_token")
        .and_then(|x| x.as_str())
        .and_then(id_of);
    let pad = v
        .pointer("/padding/pad_id")
        .and_then(|x| x.as_u64())
        .map(|x| x as u32)
        .or_else(|| id_of("[PAD]"));
    let mask = id_of("[MASK]");
    let (Some(cls), Some(sep)) = (cls, sep) else {
        return Err(bad("cannot find the [CLS] / [SEP] tokens".into()));
    };

    md.insert("tokenizer.ggml.model", Value::String("bert".into()));
    md.insert("tokenizer.ggml.pre", Value::String("default".into()));
    md.insert(
        "tokenizer.ggml.tokens",
        Value::Array(ValueType::String, tokens),
    );
    md.insert(
        "tokenizer.ggml.token_type",
        Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
    );
    md.insert(
        "tokenizer.ggml.token_type_count",
        Value::U32(cfg.n_token_types.max(1) as u32),
    );
    md.insert("tokenizer.ggml.bos_token_id", Value::U32(cls));
    md.insert("tokenizer.ggml.cls_token_id", Value::U32(cls));
    md.insert("tokenizer.ggml.seperator_token_id", Value::U32(sep));
    for (key, id) in [
        ("tokenizer.ggml.unknown_token_id", unk),
        ("tokenizer.ggml.padding_token_id", pad),
        ("tokenizer.ggml.mask_token_id", mask),
    ] {
        if let Some(id) = id {
            md.insert(key, Value::U32(id));
        }
    }
    md.insert("tokenizer.ggml.add_bos_token", Value::Bool(true));
    md.insert("tokenizer.ggml.add_sep_token", Value::Bool(true));
    md.insert("tokenizer.ggml.add_eos_token", Value::Bool(false));
    let norm = v.get("normalizer");
    let lowercase = norm
        .and_then(|n| n.get("lowercase"))
        .and_then(|x| x.as_bool())
        .unwrap_or(true);
    let strip = norm
        .and_then(|n| n.get("strip_accents"))
        .and_then(|x| x.as_bool())
        .unwrap_or(lowercase);
    md.insert(
        "tokenizer.ggml.normalizer.lowercase",
        Value::Bool(lowercase),
    );
    md.insert(
        "tokenizer.ggml.normalizer.strip_accents",
        Value::Bool(strip),
    );
    Ok(n_vocab)
}
