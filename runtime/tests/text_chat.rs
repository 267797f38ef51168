//! Chat templates rendered by Kiln (minijinja) equal Python jinja2's renderings with the setup
//! of Hugging Face transformers' `apply_chat_template`, for SmolLM2-135M-Instruct's template and
//! two hand-written templates (tests/data/chat_template_cases.json, written by
//! `scripts/chat_template_reference.py`; a case that raises in Python must fail with the same
//! message).

use kiln_runtime::text::{ChatTemplate, Message, TextError, TokenizerModel, TokenizerSpec};

#[test]
fn templates_render_as_transformers_renders_them() {
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("data/chat_template_cases.json")).expect("cases JSON");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let text = |key: &str| case[key].as_str().map(String::from);
        let template = ChatTemplate::from_source(
            &text("template").unwrap(),
            text("bos_token"),
            text("eos_token"),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let messages: Vec<Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let rendered = template.render(&messages, case["add_generation_prompt"].as_bool().unwrap());
        match (text("expected"), text("error")) {
            (Some(expected), None) => assert_eq!(rendered.unwrap(), expected, "{name}"),
            (None, Some(error)) => {
                let err = rendered.unwrap_err().to_string();
                assert!(err.contains(&error), "{name}: {err:?} should contain {error:?}");
            }
            _ => panic!("{name}: a case has either 'expected' or 'error'"),
        }
    }
}

#[test]
fn the_spec_supplies_template_and_special_token_texts() {
    let mut spec = TokenizerSpec::new(TokenizerModel::Gpt2, ["<s>", "</s>", "a"].map(String::from).to_vec());
    assert!(matches!(ChatTemplate::new(&spec), Err(TextError::NoChatTemplate)));
    spec.chat_template =
        Some("{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}".into());
    spec.bos_token_id = Some(0);
    spec.eos_token_id = Some(1);
    let rendered = ChatTemplate::new(&spec)
        .unwrap()
        .render(&[Message::new("user", "hi")], false)
        .unwrap();
    assert_eq!(rendered, "<s>hi</s>");
}

#[test]
fn broken_templates_are_clear_errors() {
    let err = ChatTemplate::from_source("{% for m in messages %}", None, None, None, None).unwrap_err();
    assert!(matches!(err, TextError::Template(_)), "{err}");
    assert!(
        err.to_string().contains("chat template") && err.to_string().contains("line 1"),
        "{err}"
    );
    let template =
        ChatTemplate::from_source("{{ messages[0].content.nonexistent_method() }}", None, None, None, None).unwrap();
    let err = template.render(&[Message::new("user", "x")], false).unwrap_err();
    assert!(err.to_string().contains("nonexistent_method"), "{err}");
}
