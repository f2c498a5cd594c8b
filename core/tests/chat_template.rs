//! The chat template of SmolLM2 (from its GGUF) rendered by minijinja equals what
//! Python's jinja2 renders (fixtures/chat/smollm2.json, see fixtures/chat/README.md).

mod common;

use chord_core::chat::{ChatTemplate, Message};
use chord_core::gguf::{FileSource, Gguf};

#[test]
fn smollm2_template_matches_jinja2() {
    let src = FileSource::open(common::smollm2("q4_1")).unwrap();
    let g = Gguf::read_header(&src).unwrap();
    let t = ChatTemplate::from_metadata(g.metadata(), "<|im_start|>", "<|im_end|>").unwrap();
    let fixture = std::fs::read_to_string(common::fixture("chat/smollm2.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&fixture).unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let got = t.render(&messages, true).unwrap();
        assert_eq!(
            got,
            case["prompt"].as_str().unwrap(),
            "case {}",
            case["name"]
        );
    }
}
