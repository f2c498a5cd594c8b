//! Logit parity with llama.cpp on SmolLM2-135M-Instruct (Q4_1, and the Q8_0 and F16
//! files made by our own requantizer), against `fixtures/logits/`.
//!
//! Prints, per model: top-1 agreement, mean and worst mean-absolute logit error over
//! llama.cpp's top-40 tokens, how many positions are bit-near (error < 1e-4) and how many
//! greedy steps of our own path match.
//!
//! `PARITY_CASES=0,2` runs only those fixture cases (forced decoding only, no asserts) and
//! `PARITY_DEBUG=1` prints every position's error, to iterate on one op quickly.

mod common;

use chord_core::eval::{argmax, run_greedy};
use serde_json::Value;

/// llama.cpp's top-2 margin below which a different top-1 is not a disagreement.
const AMBIGUOUS_MARGIN: f32 = 0.05;
const MAX_MEAN_ABS_ERR: f32 = 0.02;
const MIN_GREEDY_MATCH: usize = 16;

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
    let mut stats = Stats {
        positions: 0,
        exact: 0,
        top1_agree: 0,
        top1_ambiguous_miss: 0,
        top1_miss: Vec::new(),
        over_limit: 0,
        case_worst: 0.0,
        sum_err: 0.0,
        worst: (0.0, String::new()),
    };
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
