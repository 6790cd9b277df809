//! `switchyard embed`: texts in (arguments or a JSONL file), one JSON line per embedding out.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use switchyard_encoder::{embed_all, Encoder, MiniLm};

use crate::ModelArgs;

/// How many batches of texts are read from a file before they are embedded and written out.
const BATCHES_PER_WINDOW: usize = 16;

/// Arguments of `switchyard embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Texts to embed (each argument is one text).
    #[arg(value_name = "TEXT")]
    texts: Vec<String>,

    /// Read texts from a JSONL file ("-" for stdin): one JSON string or {"text": "..."} object per line;
    /// blank lines are skipped.
    #[arg(long, short, value_name = "FILE")]
    input: Option<PathBuf>,

    /// Texts per forward pass; texts of similar length are grouped to waste little padding.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096), value_name = "N")]
    batch_size: u32,

    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Serialize)]
struct EmbedLine<'a> {
    text: &'a str,
    tokens: usize,
    truncated: bool,
    embedding: &'a [f32],
}

/// Runs `switchyard embed`.
pub fn run(args: &EmbedArgs) -> anyhow::Result<()> {
    if args.texts.is_empty() && args.input.is_none() {
        bail!("nothing to embed: give texts as arguments or a JSONL file with --input (see `switchyard embed --help`)");
    }
    let encoder = MiniLm::from_locator(&args.model.locator(), args.model.options())?;
    let batch_size = args.batch_size as usize;
    let mut out = BufWriter::new(io::stdout().lock());

    let result = (|| {
        write_embeddings(&encoder, &args.texts, batch_size, &mut out)?;
        if let Some(path) = &args.input {
            let window = batch_size * BATCHES_PER_WINDOW;
            let reader: Box<dyn BufRead> = if path == Path::new("-") {
                Box::new(io::stdin().lock())
            } else {
                let file = File::open(path).with_context(|| format!("cannot open --input {}", path.display()))?;
                Box::new(BufReader::new(file))
            };
            let mut texts = Vec::with_capacity(window);
            for text in JsonlTexts::new(reader, path) {
                texts.push(text?);
                if texts.len() == window {
                    write_embeddings(&encoder, &texts, batch_size, &mut out)?;
                    texts.clear();
                }
            }
            write_embeddings(&encoder, &texts, batch_size, &mut out)?;
        }
        out.flush().context("cannot write to stdout")
    })();
    match result {
        // A closed pipe (`switchyard embed ... | head`) is the reader's choice, not an error.
        Err(err) if is_broken_pipe(&err) => Ok(()),
        other => other,
    }
}

fn write_embeddings(
    encoder: &dyn Encoder,
    texts: &[String],
    batch_size: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embeddings = embed_all(encoder, &refs, batch_size)?;
    for (text, embedding) in texts.iter().zip(&embeddings) {
        let line =
            EmbedLine { text, tokens: embedding.tokens, truncated: embedding.truncated, embedding: &embedding.vector };
        serde_json::to_writer(&mut *out, &line).context("cannot write to stdout")?;
        out.write_all(b"\n").context("cannot write to stdout")?;
    }
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause.downcast_ref::<serde_json::Error>().and_then(|e| e.io_error_kind())
                == Some(io::ErrorKind::BrokenPipe)
    })
}

/// The texts of a JSONL input, one per non-blank line, each error naming the file and line.
struct JsonlTexts<'a, R> {
    reader: R,
    path: &'a Path,
    line_no: usize,
    buf: Vec<u8>,
}

impl<'a, R: BufRead> JsonlTexts<'a, R> {
    fn new(reader: R, path: &'a Path) -> Self {
        Self { reader, path, line_no: 0, buf: Vec::new() }
    }

    fn parse(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let at = || format!("{}:{}", self.path.display(), self.line_no);
        let line = std::str::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not valid UTF-8 (bad byte at column {}); save the file as UTF-8",
                at(),
                e.valid_up_to() + 1
            )
        })?;
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not valid JSON", at()))?;
        match value {
            serde_json::Value::String(text) => Ok(text),
            serde_json::Value::Object(mut object) => match object.remove("text") {
                Some(serde_json::Value::String(text)) => Ok(text),
                Some(other) => bail!("{}: \"text\" must be a string, got {}", at(), json_type(&other)),
                None => bail!("{}: object has no \"text\" field; expected {{\"text\": \"...\"}}", at()),
            },
            other => bail!("{}: expected a JSON string or {{\"text\": \"...\"}}, got {}", at(), json_type(&other)),
        }
    }
}

impl<R: BufRead> Iterator for JsonlTexts<'_, R> {
    type Item = anyhow::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line_no += 1;
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(anyhow::Error::new(e).context(format!("cannot read {}", self.path.display()))))
                }
            }
            let line = self.buf.trim_ascii();
            if !line.is_empty() {
                return Some(self.parse(line));
            }
        }
    }
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Result<String, String>> {
        JsonlTexts::new(input, Path::new("in.jsonl")).map(|r| r.map_err(|e| format!("{e:#}"))).collect()
    }

    #[test]
    fn strings_objects_and_blank_lines() {
        let got = parse_all(b"\"plain\"\n\n  {\"text\": \"obj\", \"id\": 3}\r\n");
        assert_eq!(got, vec![Ok("plain".to_string()), Ok("obj".to_string())]);
    }

    #[test]
    fn each_bad_line_is_named() {
        let got = parse_all(b"\"ok\"\n{\"text\": 5}\n{\"prompt\": \"x\"}\n[1]\n{bad json\n\"caf\xe9\"\n");
        assert!(got[0].is_ok());
        let errs: Vec<String> = got[1..].iter().map(|r| r.clone().unwrap_err()).collect();
        assert!(
            errs[0].starts_with("in.jsonl:2:") && errs[0].contains("must be a string, got a number"),
            "{}",
            errs[0]
        );
        assert!(errs[1].starts_with("in.jsonl:3:") && errs[1].contains("no \"text\" field"), "{}", errs[1]);
        assert!(errs[2].starts_with("in.jsonl:4:") && errs[2].contains("got an array"), "{}", errs[2]);
        assert!(errs[3].starts_with("in.jsonl:5:") && errs[3].contains("not valid JSON"), "{}", errs[3]);
        assert!(
            errs[4].starts_with("in.jsonl:6:") && errs[4].contains("UTF-8") && errs[4].contains("column 5"),
            "{}",
            errs[4]
        );
    }
}
