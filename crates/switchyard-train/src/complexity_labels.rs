//! Complexity labels: prompts with a judged difficulty but no model outcomes (`--complexity-labels`).
//!
//! Logged outcomes teach complexity only where the logs have prompts; benchmark logs have no greetings, no
//! unit conversions and no systems-design questions. A labels file fills that in: each line is a prompt with
//! either a `label` (`easy`, `medium`, `hard`) or a numeric `complexity` in [0, 1]. The complexity head is
//! fitted on these next to the logs' item difficulties, and complexity is trusted near these prompts (see
//! `switchyard_core::Familiarity::place`). They never feed the per-model success predictors.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::TrainError;

/// Complexity of an `easy` label: any small model answers it.
pub const EASY: f32 = 0.05;
/// Complexity of a `medium` label.
pub const MEDIUM: f32 = 0.4;
/// Complexity of a `hard` label: frontier models often fail.
pub const HARD: f32 = 0.85;

/// Prompts with their target complexity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComplexityLabels {
    /// The prompts.
    pub texts: Vec<String>,
    /// Their complexity in [0, 1], in `texts` order.
    pub targets: Vec<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prompt: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    complexity: Option<f32>,
    #[serde(default)]
    #[allow(dead_code)]
    category: Option<String>,
}

/// What is wrong with a complexity-labels file.
#[derive(Debug, thiserror::Error)]
#[error("complexity labels {path}, line {line}: {message}")]
pub struct LabelError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ComplexityLabels {
    /// Reads a JSON-lines file of `{"prompt": ..., "label": "easy"|"medium"|"hard"}` or
    /// `{"prompt": ..., "complexity": 0.3}` objects (an optional `category` is ignored; blank lines are
    /// skipped). Any bad line is an error naming the line.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let file = std::fs::File::open(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
        let mut out = Self::default();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| LabelError { path: path.to_path_buf(), line: i + 1, message };
            let parsed: Line = serde_json::from_str(&line).map_err(|e| {
                bad(format!("{e}; each line must be a JSON object with \"prompt\" and \"label\" or \"complexity\""))
            })?;
            if parsed.prompt.trim().is_empty() {
                return Err(bad("the prompt is empty".into()).into());
            }
            let target = match (parsed.label.as_deref(), parsed.complexity) {
                (Some(_), Some(_)) => return Err(bad("give \"label\" or \"complexity\", not both".into()).into()),
                (Some("easy"), None) => EASY,
                (Some("medium"), None) => MEDIUM,
                (Some("hard"), None) => HARD,
                (Some(other), None) => {
                    return Err(bad(format!("unknown label {other:?}: use easy, medium or hard")).into())
                }
                (None, Some(c)) if (0.0..=1.0).contains(&c) => c,
                (None, Some(c)) => return Err(bad(format!("complexity must be in [0, 1], got {c}")).into()),
                (None, None) => {
                    return Err(bad("missing \"label\" (easy, medium, hard) or \"complexity\"".into()).into())
                }
            };
            out.texts.push(parsed.prompt);
            out.targets.push(target);
        }
        if out.texts.is_empty() {
            return Err(LabelError { path: path.to_path_buf(), line: 0, message: "no labelled prompts".into() }.into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ComplexityLabels, TrainError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.jsonl");
        std::fs::write(&path, text).unwrap();
        ComplexityLabels::load(&path)
    }

    #[test]
    fn reads_labels_and_numbers() {
        let labels = load(
            "{\"prompt\": \"hi\", \"label\": \"easy\", \"category\": \"greeting\"}\n\n\
             {\"prompt\": \"prove it\", \"label\": \"hard\"}\n{\"prompt\": \"x\", \"complexity\": 0.3}\n",
        )
        .unwrap();
        assert_eq!(labels.texts, ["hi", "prove it", "x"]);
        assert_eq!(labels.targets, [EASY, HARD, 0.3]);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, needle) in [
            ("{\"prompt\": \"hi\", \"label\": \"trivial\"}", "unknown label \"trivial\""),
            ("{\"prompt\": \"hi\"}", "missing \"label\""),
            ("{\"prompt\": \"hi\", \"complexity\": 2}", "in [0, 1]"),
            ("{\"prompt\": \"hi\", \"label\": \"easy\", \"complexity\": 0.1}", "not both"),
            ("{\"prompt\": \" \", \"label\": \"easy\"}", "empty"),
            ("not json", "JSON object"),
            ("", "no labelled prompts"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let err = load("{\"prompt\": \"a\", \"label\": \"easy\"}\n{\"prompt\": \"b\", \"label\": \"x\"}").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
