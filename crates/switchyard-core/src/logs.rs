//! Streaming labelled logs from `.jsonl` or gzip-compressed files, one validated row at a time.
//!
//! Rows are handed to the caller as they are read, so memory stays flat however large the file; every bad
//! row is reported with its file and line, and [`read_logs`] either stops at the first or skips and counts.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::row::LabelledRow;

/// How many skipped rows are kept as examples for the report.
const SKIPPED_EXAMPLES: usize = 5;

/// A row that breaks the labelled-log contract.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct RowError {
    /// The log file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// Which rule the row breaks.
    pub message: String,
}

/// Why reading logs stopped.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file cannot be opened or read (including a corrupt gzip stream).
    #[error("cannot read labelled log {}{}: {source}", path.display(), line.map(|l| format!(" near line {l}")).unwrap_or_default())]
    Io {
        /// The log file.
        path: PathBuf,
        /// The line being read, if reading had started.
        line: Option<usize>,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A bad row, when bad rows are not skipped.
    #[error("{0} (pass --skip-bad-rows to skip and count such rows)")]
    BadRow(RowError),
    /// The files hold no usable row.
    #[error("no usable rows in {files}{skipped}")]
    NoRows {
        /// The files read, comma-separated.
        files: String,
        /// A note on skipped rows, if any.
        skipped: String,
    },
}

/// Reads one labelled-log file line by line. gzip is detected from the content, not the file name.
pub struct LogReader {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    line: usize,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader").field("path", &self.path).field("line", &self.line).finish_non_exhaustive()
    }
}

impl LogReader {
    /// Opens a `.jsonl` or `.jsonl.gz` file.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let io_err = |source| LogError::Io { path: path.to_path_buf(), line: None, source };
        let mut file = BufReader::new(File::open(path).map_err(io_err)?);
        let gzip = file.fill_buf().map_err(io_err)?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead> =
            if gzip { Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file))) } else { Box::new(file) };
        Ok(Self::from_reader(path, reader))
    }

    /// Reads rows from any buffered reader; `path` names it in errors.
    pub fn from_reader(path: &Path, reader: Box<dyn BufRead>) -> Self {
        Self { path: path.to_path_buf(), reader, line: 0, buf: Vec::new() }
    }

    fn row_error(&self, message: String) -> RowError {
        RowError { path: self.path.clone(), line: self.line, message }
    }
}

impl Iterator for LogReader {
    /// [`LogError::BadRow`] is one bad row (reading can go on); any other error ends the file.
    type Item = Result<LabelledRow, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(LogError::Io { path: self.path.clone(), line: Some(self.line), source }))
                }
            }
            let bytes = self.buf.trim_ascii();
            if bytes.is_empty() {
                continue;
            }
            let parsed = match std::str::from_utf8(bytes) {
                Ok(text) => LabelledRow::parse(text),
                Err(e) => Err(format!("not valid UTF-8 (bad byte at column {})", e.valid_up_to() + 1)),
            };
            return Some(parsed.map_err(|message| LogError::BadRow(self.row_error(message))));
        }
    }
}

/// What [`read_logs`] saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadSummary {
    /// Rows handed to the visitor.
    pub rows: usize,
    /// Bad rows skipped.
    pub skipped: usize,
    /// The first few skipped rows' errors.
    pub skipped_examples: Vec<RowError>,
}

impl std::fmt::Display for ReadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows read", self.rows)?;
        if self.skipped > 0 {
            write!(f, ", {} bad rows skipped", self.skipped)?;
            for example in &self.skipped_examples {
                write!(f, "\n  skipped {example}")?;
            }
            if self.skipped > self.skipped_examples.len() {
                write!(f, "\n  ... and {} more", self.skipped - self.skipped_examples.len())?;
            }
        }
        Ok(())
    }
}

/// Streams every row of `paths` to `visit`. A bad row stops reading with [`LogError::BadRow`] unless
/// `skip_bad_rows`, in which case it is counted in the summary. Fails if no row at all is usable.
pub fn read_logs<P: AsRef<Path>>(
    paths: &[P],
    skip_bad_rows: bool,
    mut visit: impl FnMut(LabelledRow),
) -> Result<ReadSummary, LogError> {
    let mut summary = ReadSummary::default();
    for path in paths {
        for item in LogReader::open(path.as_ref())? {
            match item {
                Ok(row) => {
                    summary.rows += 1;
                    visit(row);
                }
                Err(LogError::BadRow(bad)) if skip_bad_rows => {
                    summary.skipped += 1;
                    if summary.skipped_examples.len() < SKIPPED_EXAMPLES {
                        summary.skipped_examples.push(bad);
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }
    if summary.rows == 0 {
        let files: Vec<String> = paths.iter().map(|p| p.as_ref().display().to_string()).collect();
        let skipped =
            if summary.skipped > 0 { format!(" ({} bad rows skipped)", summary.skipped) } else { String::new() };
        return Err(LogError::NoRows { files: files.join(", "), skipped });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const GOOD: &str = "{\"prompt\": \"a\", \"model\": \"m\", \"score\": 1}\n";

    fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn plain_and_gzip_files_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("{GOOD}\n{GOOD}");
        let plain = write(dir.path(), "a.jsonl", body.as_bytes());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body.as_bytes()).unwrap();
        let gzip = write(dir.path(), "a.jsonl.gz", &gz.finish().unwrap());
        let mut rows = Vec::new();
        let summary = read_logs(&[plain, gzip], false, |r| rows.push(r)).unwrap();
        assert_eq!(summary.rows, 4);
        assert!(rows.iter().all(|r| r.prompt == "a"));
    }

    #[test]
    fn bad_rows_stop_or_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("{GOOD}{{\"prompt\": \"b\", \"model\": \"m\", \"score\": 2}}\nnot json\n\"caf\u{e9}\"\n");
        let mut bytes = body.into_bytes();
        bytes.extend_from_slice(b"{\"prompt\": \"\xff\"}\n");
        let path = write(dir.path(), "bad.jsonl", &bytes);

        let err = read_logs(&[&path], false, |_| {}).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:2:") && err.contains("[0, 1]") && err.contains("--skip-bad-rows"), "{err}");

        let summary = read_logs(&[&path], true, |_| {}).unwrap();
        assert_eq!((summary.rows, summary.skipped), (1, 4));
        let lines: Vec<usize> = summary.skipped_examples.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        assert!(summary.skipped_examples[3].message.contains("UTF-8"));
        assert!(summary.to_string().contains("4 bad rows skipped"));
    }

    #[test]
    fn empty_missing_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), "empty.jsonl", b"\n\n");
        assert!(matches!(read_logs(&[&empty], true, |_| {}), Err(LogError::NoRows { .. })));
        let missing = dir.path().join("nope.jsonl");
        let err = read_logs(&[&missing], true, |_| {}).unwrap_err().to_string();
        assert!(err.contains("nope.jsonl"), "{err}");
        let corrupt = write(dir.path(), "c.jsonl.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]);
        let err = read_logs(&[&corrupt], true, |_| {}).unwrap_err();
        assert!(matches!(err, LogError::Io { line: Some(1), .. }), "{err}");
    }
}
