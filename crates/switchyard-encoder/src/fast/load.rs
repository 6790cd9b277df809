//! Reads the tensors of a `model.safetensors` file straight into the vectors the model keeps.
//!
//! The file is never held in memory whole: each tensor is read in chunks through one small reused buffer
//! and converted into its own `Vec<f32>`. Loading the model used to read the file into memory, copy it into
//! candle tensors and copy each tensor out again, about three times the file's 90 MB in freshly touched
//! pages before packing; on a virtual machine whose host hands back memory lazily, zeroing those pages
//! (the kernel's `clear_page`) took from 0.05 to 0.6 s of system time from one start to the next.

use std::collections::HashMap;
use std::fs::File;

use crate::files::read_at;

/// Bytes read per call while a tensor is copied out.
const CHUNK: usize = 1 << 20;

/// The largest header read (16 MiB; the format allows 100 MB, BERT checkpoints need tens of KB): anything
/// larger is refused before it is parsed.
const MAX_HEADER: u64 = 16 << 20;

/// Where one tensor's values lie in the file (checked to lie inside it, and to match its shape).
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    dtype: String,
    start: u64,
    end: u64,
}

/// An open safetensors file and its header: tensor names, types and byte ranges.
pub(super) struct SafetensorsFile<'a> {
    file: &'a File,
    tensors: HashMap<String, Entry>,
    chunk: Vec<u8>,
}

impl<'a> SafetensorsFile<'a> {
    /// Reads the header of the safetensors file open as `file` (read with positional reads only, so another
    /// thread may read the same handle). The error says what is wrong with the file.
    pub fn open(file: &'a File) -> Result<Self, String> {
        let length = file.metadata().map_err(|e| e.to_string())?.len();
        let mut size = [0u8; 8];
        read_at(file, &mut size, 0).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "the file is shorter than a safetensors header".to_string(),
            _ => format!("reading its header: {e}"),
        })?;
        let header_len = u64::from_le_bytes(size);
        if header_len > MAX_HEADER || header_len > length.saturating_sub(8) {
            return Err(format!("its header claims {header_len} bytes in a file of {length}; not a safetensors file"));
        }
        let mut header = vec![0u8; header_len as usize];
        read_at(file, &mut header, 8).map_err(|e| format!("reading its header: {e}"))?;
        let tensors = parse_header(&header, 8 + header_len, length)?;
        Ok(Self { file, tensors, chunk: vec![0u8; CHUNK] })
    }

    /// The values of the tensor `name`, in file order, as f32 (the file must store it as `F32`).
    pub fn read(&mut self, name: &str) -> Result<Vec<f32>, String> {
        let entry = self.tensors.get(name).ok_or_else(|| format!("tensor {name} is missing"))?;
        if entry.dtype != "F32" {
            return Err(format!("tensor {name} is stored as {}; the fast encoder reads F32 weights", entry.dtype));
        }
        // The entry's range was checked against the file's length, so this is at most the file's size.
        let Entry { start, end, .. } = *entry;
        let mut out = Vec::with_capacity(((end - start) / 4) as usize);
        let mut offset = start;
        while offset < end {
            let take = ((end - offset) as usize).min(self.chunk.len());
            let chunk = &mut self.chunk[..take];
            read_at(self.file, chunk, offset).map_err(|e| format!("tensor {name}: {e}"))?;
            out.extend(chunk.as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)));
            offset += take as u64;
        }
        Ok(out)
    }

    /// Takes `prefix` off every name when the file has no tensor called `marker` (Hugging Face's `BertForX`
    /// checkpoints name the encoder's tensors `bert.…`).
    pub fn strip_prefix(&mut self, marker: &str, prefix: &str) {
        if self.tensors.contains_key(marker) {
            return;
        }
        self.tensors = std::mem::take(&mut self.tensors)
            .into_iter()
            .map(|(k, v)| (k.strip_prefix(prefix).map(str::to_string).unwrap_or(k), v))
            .collect();
    }
}

/// The tensors a header lists, checked against the file: each range inside the data, its size matching its
/// shape and type.
fn parse_header(header: &[u8], data_start: u64, length: u64) -> Result<HashMap<String, Entry>, String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        dtype: String,
        shape: Vec<usize>,
        data_offsets: [u64; 2],
    }
    let raw: HashMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("its header is not valid JSON: {e}"))?;
    let mut tensors = HashMap::with_capacity(raw.len());
    for (name, value) in raw {
        if name == "__metadata__" {
            continue;
        }
        let t: Raw = serde_json::from_value(value).map_err(|e| format!("tensor {name}: {e}"))?;
        // Bytes per value; other types (8-bit ones) are listed as 1 and refused when read.
        let width: u64 = match t.dtype.as_str() {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            _ => 1,
        };
        let bytes = t.shape.iter().try_fold(width, |n, &d| n.checked_mul(d as u64));
        let [from, to] = t.data_offsets;
        let range = data_start.checked_add(from).zip(data_start.checked_add(to));
        match (bytes, range) {
            (Some(bytes), Some((start, end))) if from <= to && to - from == bytes && end <= length => {
                tensors.insert(name, Entry { dtype: t.dtype, start, end });
            }
            _ => {
                return Err(format!(
                    "tensor {name}: shape {:?} of {} does not match bytes {from}..{to} of a {length}-byte file",
                    t.shape, t.dtype
                ))
            }
        }
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file of the given (name, shape, values) tensors, all F32, in order.
    fn file_with(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> tempfile::NamedTempFile {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, shape, values) in tensors {
            let from = data.len();
            data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            header.insert(
                (*name).to_string(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [from, data.len()]}),
            );
        }
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let header = serde_json::to_vec(&header).unwrap();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header);
        bytes.extend(data);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    #[test]
    fn reads_tensors_across_chunks_and_strips_a_prefix() {
        let big: Vec<f32> = (0..(CHUNK / 4 * 2 + 7)).map(|i| i as f32 * 0.5 - 3.0).collect();
        let file = file_with(&[
            ("bert.a", vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, f32::MIN, 7.0]),
            ("bert.big", vec![big.len()], big.clone()),
        ]);
        let handle = File::open(file.path()).unwrap();
        let mut st = SafetensorsFile::open(&handle).unwrap();
        st.strip_prefix("a", "bert.");
        assert_eq!(st.read("a").unwrap(), vec![1.0, -2.0, 3.5, 0.0, f32::MIN, 7.0]);
        assert_eq!(st.read("big").unwrap(), big);
        assert_eq!(st.read("bert.a").unwrap_err(), "tensor bert.a is missing");
    }

    /// The error opening the file at `path`, or its tensor `read`'s error.
    fn error_of(path: &std::path::Path, read: Option<&str>) -> String {
        let handle = File::open(path).unwrap();
        match (SafetensorsFile::open(&handle), read) {
            (Err(e), _) => e,
            (Ok(mut st), Some(name)) => st.read(name).unwrap_err(),
            (Ok(_), None) => panic!("{} opened", path.display()),
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"abc").unwrap();
        let err = error_of(file.path(), None);
        assert!(err.contains("shorter than a safetensors header"), "{err}");

        std::fs::write(file.path(), u64::MAX.to_le_bytes()).unwrap();
        let err = error_of(file.path(), None);
        assert!(err.contains("not a safetensors file"), "{err}");

        let good = file_with(&[("w", vec![4], vec![1.0; 4])]);
        let mut bytes = std::fs::read(good.path()).unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(file.path(), &bytes).unwrap();
        let err = error_of(file.path(), None);
        assert!(err.contains("tensor w") && err.contains("does not match"), "{err}");

        // Sizes and offsets that overflow are refused, not trusted (2^62 values in a reversed range; an
        // offset at the end of u64).
        for header in [
            r#"{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[1,0]}}"#,
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551615,18446744073709551615]}}"#,
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}"#,
        ] {
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend(header.as_bytes());
            bytes.extend([0u8; 16]);
            std::fs::write(file.path(), &bytes).unwrap();
            let err = error_of(file.path(), None);
            assert!(err.contains("tensor w") && err.contains("does not match"), "{header}: {err}");
        }

        let header = br#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header);
        bytes.extend([0u8; 4]);
        std::fs::write(file.path(), &bytes).unwrap();
        let err = error_of(file.path(), Some("w"));
        assert!(err.contains("stored as F16") && err.contains("F32"), "{err}");
    }
}
