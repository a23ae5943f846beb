//! `porten import --quantize` on the real SmolLM2 file: the Q8_0 copy lands in the store beside
//! the shipped Q4_1, with its own metadata, verifies, deduplicates, and loads and answers.

mod support;

use std::path::Path;

use serde_json::Value;
use support::cli::{ok, porten};
use support::server::Porten;

fn show(home: &Path, name: &str) -> Value {
    serde_json::from_str(&ok(home, &["show", name])).unwrap()
}

#[test]
fn a_requantized_copy_is_stored_beside_the_original_and_answers() {
    let gguf = support::smollm2();
    let gguf = gguf.to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");

    let shipped = ok(&home, &["import", gguf, "--name", "smollm2"]);
    assert!(
        shipped.contains("note: its weights are mostly Q4_1"),
        "{shipped}"
    );
    let quantized = ok(&home, &["import", gguf, "--quantize", "q8_0"]);
    assert!(quantized.contains("quantized"), "{quantized}");
    assert!(quantized.contains(":q8_0 ("), "{quantized}");
    assert!(!quantized.contains("note:"), "{quantized}");
    let name = quantized
        .lines()
        .find_map(|l| l.strip_prefix("imported "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();

    let (original, copy) = (show(&home, "smollm2"), show(&home, &name));
    assert_eq!(original["metadata"]["quantization"], "Q4_1");
    assert_eq!(copy["metadata"]["quantization"], "Q8_0");
    let by_type = copy["metadata"]["parameters_by_type"].as_object().unwrap();
    let dominant = by_type
        .iter()
        .max_by_key(|(_, n)| n.as_u64().unwrap())
        .unwrap()
        .0;
    assert_eq!(dominant, "q8_0", "{by_type:?}");
    assert_eq!(
        original["metadata"]["parameter_count"],
        copy["metadata"]["parameter_count"]
    );
    // Q8_0 is 8.5 bits a weight, Q4_1 5: the copy is bigger, and the estimate follows it.
    let bytes = |m: &Value| m["metadata"]["tensor_bytes"].as_u64().unwrap();
    assert!(
        bytes(&copy) > bytes(&original) * 6 / 5,
        "{original}\n{copy}"
    );
    assert_eq!(name, "smollm2-135m-instruct:q8_0");
    assert_eq!(copy["source"], format!("{gguf} (requantized to Q8_0)"));
    let ls = ok(&home, &["ls"]);
    assert!(ls.contains("smollm2:latest") && ls.contains(&name), "{ls}");

    // The same requantization again is the same bytes: one blob, stored once.
    let again = ok(
        &home,
        &["import", gguf, "--quantize", "Q8_0", "--name", "again"],
    );
    assert!(again.contains("1 already stored"), "{again}");
    assert!(ok(&home, &["verify"]).contains("0 problems"));
    let unknown = porten(&home, &["import", gguf, "--quantize", "q7"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown quantization `q7`"));

    let server = Porten::start(&["--home", home.to_str().unwrap()]);
    support::assert_names_earth(server.addr, &name);
}
