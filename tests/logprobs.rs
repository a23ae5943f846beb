//! Prompt log-probabilities on `/v1/completions` (`echo` + `logprobs`), checked against the
//! model itself: on the tiny random model, the values equal a numpy forward pass over the same
//! weights; on SmolLM2 the right answer scores higher than a wrong one; and
//! lm-evaluation-harness itself, unmodified, scores a small multiple-choice task through
//! porten's completions and tokenizer routes.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::fixtures::write_tiny_chat_model;
use support::http::post_json;
use support::server::Porten;

fn setup() -> &'static Path {
    support::setup_test_deps()
}

fn completion(server: &Porten, body: Value) -> Value {
    let answer = post_json(server.addr, "/v1/completions", &body, &[]);
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), server.log());
    answer.json()
}

fn logprobs_of(choice: &Value) -> Vec<Option<f64>> {
    choice["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::as_f64)
        .collect()
}

#[test]
fn echoed_logprobs_are_the_tiny_model_s_own_log_softmax() {
    let root = setup();
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny");
    write_tiny_chat_model(&tiny);
    // F32 compute, so the engine and numpy do the same arithmetic.
    let config = dir.path().join("porten.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nid = \"tiny\"\npath = \"{}\"\ndtype = \"f32\"\n",
            tiny.display()
        ),
    )
    .unwrap();
    let server = Porten::start(&["--config", config.to_str().unwrap()]);
    server.wait_ready();
    let tokens = [
        72u32, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 65,
    ];
    let answer = completion(
        &server,
        json!({"model": "tiny", "prompt": tokens, "echo": true, "logprobs": 2, "max_tokens": 0}),
    );
    let choice = &answer["choices"][0];
    let got = logprobs_of(choice);
    assert_eq!(got.len(), tokens.len(), "{answer}");
    assert_eq!(got[0], None, "the first token has nothing before it");
    let top = choice["logprobs"]["top_logprobs"].as_array().unwrap();
    assert!(
        top[0].is_null() && top[1].as_object().unwrap().len() == 2,
        "{answer}"
    );
    assert_eq!(
        choice["logprobs"]["tokens"].as_array().unwrap().len(),
        tokens.len()
    );
    assert_eq!(answer["usage"]["prompt_tokens"], tokens.len());
    assert_eq!(answer["usage"]["completion_tokens"], 0);

    let mut reference = Command::new(root.join(".venv/bin/python"));
    reference
        .arg(root.join("tests/python_ollama/tiny_llama_logprobs.py"))
        .arg(&tiny)
        .args(tokens.iter().map(|t| t.to_string()));
    let out = reference.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
    for (i, (got, expected)) in got[1..].iter().zip(&expected).enumerate() {
        let got = got.unwrap();
        assert!(
            (got - expected).abs() < 1e-3,
            "token {}: porten {got}, numpy {expected}",
            i + 1
        );
    }

    // A text prompt with one generated token: the prompt's values, then the answer's.
    let answer = completion(
        &server,
        json!({"model": "tiny", "prompt": "Hello", "echo": true, "logprobs": 1, "max_tokens": 1,
               "temperature": 0}),
    );
    let choice = &answer["choices"][0];
    let got = logprobs_of(choice);
    let prompt_tokens = answer["usage"]["prompt_tokens"].as_u64().unwrap() as usize;
    assert_eq!(got.len(), prompt_tokens + 1, "{answer}");
    assert!(got[prompt_tokens].is_some());
    assert!(choice["text"].as_str().unwrap().starts_with("Hello"));
    let offsets = choice["logprobs"]["text_offset"].as_array().unwrap();
    assert_eq!(offsets[0], 0);
    assert!(offsets.windows(2).all(|w| w[0].as_u64() <= w[1].as_u64()));

    // Out of range, and streaming with logprobs, are refused by name.
    for (body, param) in [
        (
            json!({"model": "tiny", "prompt": "x", "logprobs": 6}),
            "logprobs",
        ),
        (
            json!({"model": "tiny", "prompt": "x", "logprobs": 1, "stream": true}),
            "stream",
        ),
    ] {
        let answer = post_json(server.addr, "/v1/completions", &body, &[]);
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert_eq!(answer.json()["error"]["param"], param);
    }
}

#[test]
fn smollm2_scores_the_right_answer_higher_and_lm_eval_runs_on_it() {
    let root = setup();
    let server = Porten::with_models(&[("smollm2", &support::smollm2())], &[]);
    let score = |text: &str| -> f64 {
        let answer = completion(
            &server,
            json!({"model": "smollm2", "prompt": text, "echo": true, "logprobs": 1,
                   "max_tokens": 0}),
        );
        logprobs_of(&answer["choices"][0])
            .into_iter()
            .flatten()
            .sum()
    };
    let paris = score("The capital of France is Paris");
    let banana = score("The capital of France is Banana");
    assert!(paris > banana, "Paris {paris} vs Banana {banana}");

    // lm-evaluation-harness with a task defined here, from a local JSON file.
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("capitals.jsonl");
    let rows = [
        ("France", "Paris", ["Paris", "Banana", "Tuesday"]),
        ("Germany", "Berlin", ["Berlin", "Purple", "Seven"]),
        ("Italy", "Rome", ["Rome", "Spoon", "Winter"]),
        ("Spain", "Madrid", ["Madrid", "Pencil", "Cloud"]),
    ];
    let lines: Vec<String> = rows
        .iter()
        .map(|(country, answer, choices)| {
            json!({"question": format!("The capital of {country} is"), "choices": choices,
                   "gold": choices.iter().position(|c| c == answer).unwrap()})
            .to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let tasks = work.path().join("tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    std::fs::write(
        tasks.join("capitals.yaml"),
        format!(
            "task: porten_capitals\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    \
             test: {}\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: \
             \"{{{{question}}}}\"\ndoc_to_choice: \"{{{{choices}}}}\"\ndoc_to_target: gold\n\
             target_delimiter: \" \"\nmetric_list:\n  - metric: acc\n",
            data.display()
        ),
    )
    .unwrap();
    let output = work.path().join("results");
    let mut lm_eval = Command::new(root.join(".venv/bin/lm_eval"));
    lm_eval
        .args(["--model", "local-completions", "--tasks", "porten_capitals"])
        .arg("--include_path")
        .arg(&tasks)
        .arg("--model_args")
        .arg(format!(
            "model=smollm2,base_url=http://{}/v1/completions,num_concurrent=1,max_retries=1,\
             tokenized_requests=True,tokenizer_backend=remote",
            server.addr
        ))
        .arg("--output_path")
        .arg(&output)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", work.path().join("hf"));
    let report = server.run_client("lm_eval", &mut lm_eval);
    let results = std::fs::read_dir(&output)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap_or_else(|| panic!("no results file under {}:\n{report}", output.display()));
    let results: Value = serde_json::from_slice(&std::fs::read(results).unwrap()).unwrap();
    let accuracy = results["results"]["porten_capitals"]["acc,none"]
        .as_f64()
        .unwrap_or_else(|| panic!("no accuracy in {results}"));
    assert!((0.0..=1.0).contains(&accuracy), "{results}");
    println!("lm_eval accuracy on the capitals task: {accuracy}");
}
