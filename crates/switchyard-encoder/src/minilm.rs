//! all-MiniLM-L6-v2 on candle: BERT forward, masked mean pooling over the last hidden state, L2 normalisation.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, HiddenAct};

use crate::error::{EncoderError, Result};
use crate::fast::{FastBert, Shape};
use crate::files::{ModelFiles, MODEL_ID, WEIGHTS_SHA256};
use crate::locate::ModelLocator;
use crate::tokenize::{PromptTokenizer, TokenizedText};
use crate::Encoder;

/// The default truncation point, in tokens (special tokens included).
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Settings of the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderOptions {
    /// Texts longer than this many tokens (special tokens included) are truncated; at most the model's
    /// position limit (512 for MiniLM).
    pub max_tokens: usize,
    /// Which implementation of the forward pass runs (both give the same embeddings to within 1e-5).
    pub backend: Backend,
    /// Threads of the fast backend (default: `RAYON_NUM_THREADS` if set, else every core).
    pub threads: Option<usize>,
    /// The arithmetic of the fast backend's matrix multiplies.
    pub precision: Precision,
}

/// `RAYON_NUM_THREADS` (which `--threads` sets) if set, else the number of cores.
fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self { max_tokens: DEFAULT_MAX_TOKENS, backend: Backend::Fast, threads: None, precision: Precision::F32 }
    }
}

impl EncoderOptions {
    /// The defaults with this truncation point.
    pub fn with_max_tokens(max_tokens: usize) -> Self {
        Self { max_tokens, ..Self::default() }
    }
}

/// The implementation of the BERT forward pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// switchyard's own CPU path: packed weights, fused QKV, no padding (the default).
    #[default]
    Fast,
    /// candle-transformers' stock `BertModel` (the reference the fast path is checked and benchmarked
    /// against).
    Candle,
}

/// The arithmetic of the fast backend's matrix multiplies (layer norm, softmax, GELU and pooling stay f32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout: the reference (the default).
    #[default]
    F32,
    /// Weights and activations quantised to 8 bits in blocks of 32 inputs, products summed in integers:
    /// about half the f32 time per prompt, embeddings within a cosine of about 0.999 of f32's.
    Int8,
}

impl Precision {
    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }

    /// The arithmetic in enough detail to key caches of embeddings: a change of quantisation scheme changes
    /// int8 embeddings, so it must change this too.
    pub fn scheme(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8: 8-bit weights and activations, symmetric, blocks of 32 inputs",
        }
    }

    /// The name a router's manifest records: none for f32, the reference, as routers trained before
    /// precisions existed have none.
    pub fn manifest_name(self) -> Option<String> {
        (self != Precision::F32).then(|| self.as_str().to_string())
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            other => Err(format!("unknown encoder precision {other:?}: use \"f32\" or \"int8\"")),
        }
    }
}

enum Engine {
    Fast(FastBert),
    Candle(Box<BertModel>),
}

/// The sentence-transformers all-MiniLM-L6-v2 encoder (CPU, f32 or int8), producing 384-d unit vectors.
pub struct MiniLm {
    engine: Engine,
    precision: Precision,
    tokenizer: PromptTokenizer,
    device: Device,
    dim: usize,
    id: String,
    files_digest: String,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").field("id", &self.id).field("tokenizer", &self.tokenizer).finish_non_exhaustive()
    }
}

impl MiniLm {
    /// Locates (fetching if needed) and loads the model.
    pub fn from_locator(locator: &ModelLocator, options: EncoderOptions) -> Result<Self> {
        Self::load(&locator.locate()?, options)
    }

    /// Loads the model from its three files, verifying the weights' SHA-256.
    pub fn load(files: &ModelFiles, options: EncoderOptions) -> Result<Self> {
        files.check()?;
        let invalid = |path: &std::path::Path, message: String| EncoderError::InvalidFile {
            path: path.to_path_buf(),
            message,
            fix: files.fix.clone(),
        };
        let config_text = std::fs::read_to_string(&files.config).map_err(|e| EncoderError::io(&files.config, e))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| invalid(&files.config, e.to_string()))?;
        if options.max_tokens > config.max_position_embeddings {
            return Err(EncoderError::InvalidOption(format!(
                "max tokens {} exceeds the model's {} positions; use at most that",
                options.max_tokens, config.max_position_embeddings
            )));
        }

        let tokenizer = PromptTokenizer::from_file(&files.tokenizer, options.max_tokens, &files.fix)?;
        let device = Device::Cpu;
        let engine = match options.backend {
            Backend::Fast => {
                if config.hidden_act != HiddenAct::Gelu {
                    return Err(invalid(
                        &files.config,
                        "the fast encoder implements BERT with exact GELU only; use the candle backend".into(),
                    ));
                }
                let shape = Shape {
                    hidden: config.hidden_size,
                    heads: config.num_attention_heads,
                    intermediate: config.intermediate_size,
                    layers: config.num_hidden_layers,
                    vocab: config.vocab_size,
                    positions: config.max_position_embeddings,
                    eps: config.layer_norm_eps as f32,
                };
                let threads = options.threads.unwrap_or_else(default_threads);
                Engine::Fast(load_fast(files, shape, threads, options.precision)?)
            }
            Backend::Candle if options.precision != Precision::F32 => {
                return Err(EncoderError::InvalidOption(format!(
                    "precision {} runs on the fast backend only; use precision f32 with the candle backend",
                    options.precision
                )));
            }
            Backend::Candle => {
                let weights = files.read_verified_weights()?;
                let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
                    .map_err(|e| invalid(&files.weights, e.to_string()))?;
                Engine::Candle(Box::new(
                    BertModel::load(vb, &config).map_err(|e| invalid(&files.weights, e.to_string()))?,
                ))
            }
        };
        tracing::debug!(source = %files.source, weights = %files.weights.display(), "encoder loaded");
        Ok(Self {
            engine,
            precision: options.precision,
            tokenizer,
            device,
            dim: config.hidden_size,
            id: format!("{MODEL_ID}@sha256:{WEIGHTS_SHA256}"),
            files_digest: files_digest(&files.tokenizer, &files.config, &files.fix)?,
        })
    }

    /// The tokenizer this encoder uses (with its truncation setting).
    pub fn tokenizer(&self) -> &PromptTokenizer {
        &self.tokenizer
    }

    /// Runs one forward pass over already tokenized texts.
    pub fn embed_tokenized(&self, batch: &[TokenizedText]) -> Result<Vec<Vec<f32>>> {
        match &self.engine {
            Engine::Fast(bert) => {
                let ids: Vec<&[u32]> = batch.iter().map(|t| t.ids.as_slice()).collect();
                bert.embed(&ids).map_err(EncoderError::InvalidOption)
            }
            Engine::Candle(bert) => self.embed_candle(bert, batch),
        }
    }

    /// The stock candle path: pad to the longest text, mask, forward, pool.
    fn embed_candle(&self, bert: &BertModel, batch: &[TokenizedText]) -> Result<Vec<Vec<f32>>> {
        let Some(longest) = batch.iter().map(|t| t.ids.len()).max() else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for text in batch {
            let pad = longest - text.ids.len();
            ids.extend_from_slice(&text.ids);
            ids.extend(std::iter::repeat_n(0u32, pad));
            mask.extend(std::iter::repeat_n(1f32, text.ids.len()));
            mask.extend(std::iter::repeat_n(0f32, pad));
        }
        let shape = (batch.len(), longest);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let type_ids = ids.zeros_like()?;
        let hidden = bert.forward(&ids, &type_ids, Some(&mask))?;
        Ok(pool_and_normalize(&hidden, &mask)?.to_vec2::<f32>()?)
    }
}

/// The fast backend's weights, read from `model.safetensors` while a second thread checks its digest.
fn load_fast(files: &ModelFiles, shape: Shape, threads: usize, precision: Precision) -> Result<FastBert> {
    // The digest is checked on a second thread while the weights are read and packed, both through
    // one handle (so a rename or replacement of the path meanwhile cannot split them; rewriting
    // the file in place during the load could). A wrong digest is reported before anything the
    // load found, since it explains it. Without a second thread, the check runs after the load.
    let file = files.open_weights()?;
    let (verified, loaded) = std::thread::scope(|scope| {
        let verify = std::thread::Builder::new()
            .name("switchyard-digest".into())
            .spawn_scoped(scope, || files.verify_open_weights(&file));
        let loaded = FastBert::from_file(&file, shape, threads, precision);
        let verified = match verify {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                let stopped = std::io::Error::other("the thread checking its digest stopped");
                Err(EncoderError::io(&files.weights, stopped))
            }),
            Err(_) => files.verify_open_weights(&file),
        };
        (verified, loaded)
    });
    verified?;
    loaded.map_err(|message| EncoderError::InvalidFile { path: files.weights.clone(), message, fix: files.fix.clone() })
}

/// Masked mean over the sequence axis, then L2 normalisation: `[b, l, h]` and `[b, l]` → `[b, h]`.
pub fn pool_and_normalize(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    mean.broadcast_div(&norms)
}

impl Encoder for MiniLm {
    fn id(&self) -> &str {
        &self.id
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn files_digest(&self) -> Option<&str> {
        Some(&self.files_digest)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn max_tokens(&self) -> usize {
        self.tokenizer.max_tokens()
    }

    fn tokenize(&self, text: &str) -> Result<TokenizedText> {
        self.tokenizer.encode(text)
    }

    fn embed_tokens(&self, batch: &[TokenizedText]) -> Result<Vec<Vec<f32>>> {
        self.embed_tokenized(batch)
    }
}

/// SHA-256 of the tokenizer and config files as canonical JSON (keys sorted, no whitespace), so copies that
/// differ only in formatting agree and any change in content does not.
fn files_digest(tokenizer: &std::path::Path, config: &std::path::Path, fix: &str) -> Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for path in [tokenizer, config] {
        let text = std::fs::read_to_string(path).map_err(|source| EncoderError::io(path, source))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| EncoderError::InvalidFile {
            path: path.to_path_buf(),
            message: format!("not valid JSON: {e}"),
            fix: fix.to_string(),
        })?;
        let mut canonical = String::new();
        write_canonical(&value, &mut canonical);
        hasher.update(canonical.as_bytes());
        hasher.update([0u8]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `value` as JSON with every object's keys sorted, so that equal values give equal text whatever their
/// keys' order (what fingerprints and cache keys hash).
pub fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding_and_normalises() {
        // Two sequences of length 3; the second has one padded position holding garbage.
        let hidden =
            Tensor::new(&[[[1f32, 0.], [3., 0.], [0., 4.]], [[2f32, 2.], [0., 0.], [100., -100.]]], &Device::Cpu)
                .unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1.], [1., 1., 0.]], &Device::Cpu).unwrap();
        let out = pool_and_normalize(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        // mean of first = (4/3, 4/3) → normalised (1/√2, 1/√2); second = (1, 1) → same.
        let s = std::f32::consts::FRAC_1_SQRT_2;
        for row in out {
            assert!((row[0] - s).abs() < 1e-6 && (row[1] - s).abs() < 1e-6, "{row:?}");
        }
    }
}
