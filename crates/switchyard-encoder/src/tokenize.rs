//! Turning prompt text into token ids: the model's own `tokenizer.json`, with its fixed padding turned off and
//! truncation done here, so that a prompt's ids never depend on the batch it is in and truncation is reported.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{EncoderError, Result};

/// Bytes of text looked at per allowed token before the full text is tokenized (see [`PromptTokenizer::encode`]).
const BYTES_PER_TOKEN_BUDGET: usize = 32;

/// Bytes of content (whitespace aside) per allowed token past which a text is never read: the safe factor of
/// the cut made before tokenizing. Real text averages four to six bytes a token; a window of `max_tokens`
/// tokens that spans more than 64 bytes each is made of words over 100 characters (one `[UNK]` each).
pub const MAX_CONTENT_BYTES_PER_TOKEN: usize = 64;

/// Where to cut `text` so that it keeps `content` bytes of non-whitespace characters (a char boundary; the
/// whole text when it has no more).
fn content_cut(text: &str, content: usize) -> usize {
    if text.len() <= content {
        return text.len();
    }
    let mut seen = 0;
    for (at, c) in text.char_indices() {
        if !c.is_whitespace() {
            seen += c.len_utf8();
            if seen > content {
                return at;
            }
        }
    }
    text.len()
}

/// One text's token ids, ready for the model: `[CLS] … [SEP]`, at most the tokenizer's maximum long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedText {
    /// Token ids including the special tokens.
    pub ids: Vec<u32>,
    /// Whether tokens were dropped to fit the maximum.
    pub truncated: bool,
}

/// A BERT WordPiece tokenizer that truncates at a maximum number of tokens and never pads.
#[derive(Clone)]
pub struct PromptTokenizer {
    inner: Tokenizer,
    max_tokens: usize,
}

impl std::fmt::Debug for PromptTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTokenizer").field("max_tokens", &self.max_tokens).finish_non_exhaustive()
    }
}

impl PromptTokenizer {
    /// Loads `tokenizer.json`; `max_tokens` counts the special tokens and must be at least 2.
    pub fn from_file(path: &Path, max_tokens: usize, fix: &str) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EncoderError::io(path, e))?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| EncoderError::InvalidFile {
            path: path.to_path_buf(),
            message: e.to_string(),
            fix: fix.to_string(),
        })?;
        Self::new(inner, max_tokens)
    }

    /// Wraps a loaded tokenizer, turning off its own padding and truncation.
    pub fn new(mut inner: Tokenizer, max_tokens: usize) -> Result<Self> {
        if max_tokens < 2 {
            return Err(EncoderError::InvalidOption(format!(
                "max tokens must be at least 2 (room for [CLS] and [SEP]), got {max_tokens}"
            )));
        }
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(Self { inner, max_tokens })
    }

    /// The most tokens (special tokens included) one text is given to the model.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenizes one text, keeping the first `max_tokens - 2` word pieces between `[CLS]` and `[SEP]`.
    ///
    /// A huge text is not tokenized whole: a prefix with room for many more tokens than are kept is tokenized
    /// first, and its result is used when every kept token lies before the prefix's last word (the only word
    /// the cut can change). Otherwise the whole text is tokenized. Either way the ids are exactly those of
    /// the whole text, truncated.
    ///
    /// Before any of that, the text is cut after `max_tokens` x [`MAX_CONTENT_BYTES_PER_TOKEN`] bytes of content
    /// (whitespace, which makes no tokens, does not count), so a huge prompt costs no more than a long one. A
    /// cut text is reported as truncated.
    pub fn encode(&self, text: &str) -> Result<TokenizedText> {
        let cut = content_cut(text, self.max_tokens.saturating_mul(MAX_CONTENT_BYTES_PER_TOKEN));
        let mut tokens = self.encode_capped(&text[..cut])?;
        tokens.truncated |= text[cut..].chars().any(|c| !c.is_whitespace());
        Ok(tokens)
    }

    fn encode_capped(&self, text: &str) -> Result<TokenizedText> {
        let budget = self.max_tokens.saturating_mul(BYTES_PER_TOKEN_BUDGET);
        if text.len() > budget {
            let mut cut = budget;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Some(done) = self.encode_prefix(&text[..cut])? {
                return Ok(done);
            }
        }
        let encoding = self.inner.encode_fast(text, true).map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(self.truncate(encoding.get_ids()))
    }

    fn encode_prefix(&self, prefix: &str) -> Result<Option<TokenizedText>> {
        let encoding = self.inner.encode_fast(prefix, true).map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        let words = encoding.get_word_ids();
        // Content tokens sit between [CLS] (index 0) and [SEP] (last); `words` is None for the special tokens.
        let last_kept = self.max_tokens - 2;
        if words.len() < self.max_tokens + 1 {
            return Ok(None);
        }
        let last_word = words.iter().rev().find_map(|w| *w);
        match (words[last_kept], last_word) {
            (Some(kept), Some(last)) if kept < last => Ok(Some(self.truncate(encoding.get_ids()))),
            _ => Ok(None),
        }
    }

    fn truncate(&self, ids: &[u32]) -> TokenizedText {
        if ids.len() <= self.max_tokens {
            return TokenizedText { ids: ids.to_vec(), truncated: false };
        }
        let mut kept = Vec::with_capacity(self.max_tokens);
        kept.extend_from_slice(&ids[..self.max_tokens - 1]);
        kept.extend_from_slice(&ids[ids.len() - 1..]);
        TokenizedText { ids: kept, truncated: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_counts_content_not_whitespace() {
        assert_eq!(content_cut("short", 10), 5);
        assert_eq!(content_cut("abc def ghi", 6), 8, "six bytes of content: the cut comes before `ghi`");
        let spaced = format!("{}abc", " ".repeat(1000));
        assert_eq!(content_cut(&spaced, 3), spaced.len(), "whitespace is free");
        // A cut never splits a character.
        let wide = "é".repeat(10);
        let at = content_cut(&wide, 5);
        assert!(wide.is_char_boundary(at) && at == 4, "{at}");
    }
}
