//! `switchyard embed` and `switchyard model fetch` as a user runs them, including bad model files and input.
use std::path::Path;
use std::process::Output;

use switchyard_encoder::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use switchyard_testkit::{max_abs_diff, model_files};

/// `switchyard` as a user runs it: no `--model-dir` or `SWITCHYARD_MODEL_DIR`, in a folder whose
/// `models/all-MiniLM-L6-v2/` holds the model (the tests' own, outside the source tree).
fn switchyard(args: &[&str]) -> Output {
    model_files(); // make sure models/all-MiniLM-L6-v2 exists before the binary looks for it
    switchyard_testkit::cli(crate::BIN)
        .args(args)
        .current_dir(switchyard_testkit::model_home())
        .env_remove("SWITCHYARD_MODEL_DIR")
        .output()
        .unwrap()
}

fn stdout_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn vector(line: &serde_json::Value) -> Vec<f32> {
    line["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn embeds_arguments_one_json_line_each() {
    let lines = stdout_lines(&switchyard(&["embed", "What is the capital of France?", "hi"]));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], "What is the capital of France?");
    assert_eq!(lines[0]["tokens"], 9);
    assert_eq!(lines[0]["truncated"], false);
    assert_eq!(lines[1]["tokens"], 3);
    assert_eq!(vector(&lines[0]).len(), 384);
}

#[test]
fn input_file_keeps_order_and_batch_size_does_not_change_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let texts: Vec<String> = (0..23).map(|i| format!("prompt number {i} {}", "about routing ".repeat(i % 7))).collect();
    let body: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i % 2 == 0 {
                format!("{}\n", serde_json::json!(t))
            } else {
                format!("{}\n\n", serde_json::json!({"text": t, "id": i}))
            }
        })
        .collect();
    std::fs::write(&input, body).unwrap();
    let path = input.to_str().unwrap();
    let one = stdout_lines(&switchyard(&["embed", "--input", path, "--batch-size", "1"]));
    let many = stdout_lines(&switchyard(&["embed", "--input", path, "--batch-size", "8"]));
    assert_eq!(one.len(), texts.len());
    for ((a, b), text) in one.iter().zip(&many).zip(&texts) {
        assert_eq!(a["text"], text.as_str());
        assert_eq!(b["text"], text.as_str());
        assert!(max_abs_diff(&vector(a), &vector(b)) <= 1e-5);
    }
}

#[test]
fn max_tokens_flag_truncates_and_reports() {
    let lines = stdout_lines(&switchyard(&["embed", "--max-tokens", "8", "a b c d e f g h i j k l"]));
    assert_eq!(lines[0]["tokens"], 8);
    assert_eq!(lines[0]["truncated"], true);
    let out = switchyard(&["embed", "--max-tokens", "600", "hi"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("512"), "{}", stderr(&out));
}

#[test]
fn bad_input_lines_are_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.jsonl");
    std::fs::write(&input, b"\"fine\"\n{\"prompt\": \"wrong key\"}\n").unwrap();
    let out = switchyard(&["embed", "--input", input.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("bad.jsonl:2") && err.contains("\"text\""), "{err}");

    std::fs::write(&input, b"\"caf\xe9\"\n").unwrap();
    let err = stderr(&switchyard(&["embed", "--input", input.to_str().unwrap()]));
    assert!(err.contains("bad.jsonl:1") && err.contains("UTF-8"), "{err}");

    let err = stderr(&switchyard(&["embed", "--input", "/nonexistent/in.jsonl"]));
    assert!(err.contains("/nonexistent/in.jsonl"), "{err}");

    let out = switchyard(&["embed"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--input"), "{}", stderr(&out));
}

/// A copy of the real model folder with one file replaced (or removed).
fn damaged_model(dir: &Path, name: &str, content: Option<Vec<u8>>) {
    let files = model_files();
    for (file, src) in
        [(WEIGHTS_FILE, &files.weights), (CONFIG_FILE, &files.config), (TOKENIZER_FILE, &files.tokenizer)]
    {
        if file != name {
            std::fs::copy(src, dir.join(file)).unwrap();
        }
    }
    if let Some(content) = content {
        std::fs::write(dir.join(name), content).unwrap();
    }
}

fn embed_with_model_dir(dir: &Path) -> String {
    let out = switchyard(&["embed", "--model-dir", dir.to_str().unwrap(), "hi"]);
    assert!(!out.status.success(), "expected a failure with {}", dir.display());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn missing_truncated_and_corrupt_model_files_are_clear_errors() {
    let weights = std::fs::read(&model_files().weights).unwrap();

    let dir = tempfile::tempdir().unwrap();
    damaged_model(dir.path(), WEIGHTS_FILE, None);
    let err = embed_with_model_dir(dir.path());
    assert!(err.contains("model.safetensors is missing") && err.contains("--model-dir"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    damaged_model(dir.path(), WEIGHTS_FILE, Some(weights[..weights.len() / 2].to_vec()));
    let err = embed_with_model_dir(dir.path());
    assert!(err.contains("model.safetensors") && err.contains("truncated"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let mut flipped = weights.clone();
    flipped[weights.len() / 2] ^= 0xff;
    damaged_model(dir.path(), WEIGHTS_FILE, Some(flipped));
    let err = embed_with_model_dir(dir.path());
    assert!(err.contains("sha256") && err.contains(switchyard_encoder::WEIGHTS_SHA256), "{err}");

    // A damaged header also fails to parse; the digest, checked alongside, is what the error reports.
    let dir = tempfile::tempdir().unwrap();
    let mut header_damaged = weights.clone();
    header_damaged[7] ^= 0x40;
    damaged_model(dir.path(), WEIGHTS_FILE, Some(header_damaged));
    let err = embed_with_model_dir(dir.path());
    assert!(err.contains("sha256") && err.contains("corrupt"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    damaged_model(dir.path(), CONFIG_FILE, Some(b"{\"hidden_size\": \"big\"}".to_vec()));
    let err = embed_with_model_dir(dir.path());
    assert!(err.contains("config.json is not valid"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    damaged_model(dir.path(), TOKENIZER_FILE, Some(b"{not json".to_vec()));
    let err = embed_with_model_dir(dir.path());
    assert!(err.contains("tokenizer.json is not valid"), "{err}");
}

#[test]
fn model_fetch_verifies_the_local_copy() {
    let out = switchyard(&["model", "fetch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sha256 verified") && text.contains("all-MiniLM-L6-v2"), "{text}");
}

#[test]
fn help_explains_each_command() {
    let out = switchyard(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cheapest model likely to succeed") && text.contains("embed"), "{text}");
    let out = switchyard(&["embed", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["--input", "--batch-size", "--max-tokens", "--model-dir", "truncated"] {
        assert!(text.contains(needle), "embed --help lacks {needle}: {text}");
    }
}
