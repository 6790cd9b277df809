//! Turning prompt text into token ids: the model's own `tokenizer.json`, with its fixed padding turned off and
//! truncation done here, so that a prompt's ids never depend on the batch it is in and truncation is reported.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{EncoderError, Result};

/// Bytes of text looked at per allowed token before the full text is tokenized (see [`PromptTokenizer::encode`]).
const BYTES_PER_TOKEN_BUDGET: usize = 32;

/// Bytes per allowed token (runs of whitespace counted as one) past which a text is never read: the safe factor
/// of the cut made before tokenizing. Real text averages four to six bytes a token; a window of `max_tokens`
/// tokens that spans more than 64 bytes each is mostly words over 100 characters (one `[UNK]` each).
pub const MAX_CONTENT_BYTES_PER_TOKEN: usize = 64;

/// `text` with every run of ASCII whitespace made one space (the same word pieces: whitespace only separates
/// words), cut after `limit` bytes; and whether anything but whitespace was cut off.
fn squeeze(text: &str, limit: usize) -> (std::borrow::Cow<'_, str>, bool) {
    let ascii_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let bytes = text.as_bytes();
    let doubled = bytes.windows(2).any(|w| ascii_space(w[0]) && ascii_space(w[1]) || w[0] != b' ' && ascii_space(w[0]));
    if text.len() <= limit && !doubled {
        return (std::borrow::Cow::Borrowed(text), false);
    }
    let mut out = String::with_capacity(limit.min(text.len()) + 4);
    let mut space = false;
    for c in text.chars() {
        if c.is_ascii() && ascii_space(c as u8) {
            space = true;
            continue;
        }
        if out.len() + usize::from(space) + c.len_utf8() > limit {
            return (std::borrow::Cow::Owned(out), true);
        }
        if std::mem::take(&mut space) {
            out.push(' ');
        }
        out.push(c);
    }
    (std::borrow::Cow::Owned(out), false)
}

/// `text` cut after `limit` bytes (at a character boundary), for tokenizers whose whitespace may be a token;
/// and whether anything was cut off.
fn cut(text: &str, limit: usize) -> (std::borrow::Cow<'_, str>, bool) {
    if text.len() <= limit {
        return (std::borrow::Cow::Borrowed(text), false);
    }
    let mut at = limit;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    (std::borrow::Cow::Borrowed(&text[..at]), true)
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
    /// A BERT normalizer and pre-tokenizer: whitespace only separates words, so runs of it can be squeezed.
    bert: bool,
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
        let bert = matches!(inner.get_normalizer(), Some(tokenizers::NormalizerWrapper::BertNormalizer(_)))
            && matches!(inner.get_pre_tokenizer(), Some(tokenizers::PreTokenizerWrapper::BertPreTokenizer(_)));
        Ok(Self { inner, max_tokens, bert })
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
    /// Before any of that, runs of whitespace are made one space (with a BERT tokenizer, where they only separate
    /// words) and the text is cut
    /// after `max_tokens` x [`MAX_CONTENT_BYTES_PER_TOKEN`] bytes, so a huge prompt costs no more than a long one.
    /// A cut text is reported as truncated.
    pub fn encode(&self, text: &str) -> Result<TokenizedText> {
        let limit = self.max_tokens.saturating_mul(MAX_CONTENT_BYTES_PER_TOKEN);
        let (text, cut) = if self.bert { squeeze(text, limit) } else { cut(text, limit) };
        let mut tokens = self.encode_capped(&text)?;
        tokens.truncated |= cut;
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
    fn whitespace_runs_count_once_and_the_cut_keeps_whole_characters() {
        let squeezed = |t: &str, n: usize| {
            let (text, cut) = squeeze(t, n);
            (text.into_owned(), cut)
        };
        assert_eq!(squeezed("short", 10), ("short".into(), false));
        assert_eq!(squeezed("abc \n\t def", 100), ("abc def".into(), false));
        assert_eq!(squeezed("abc def ghi", 7), ("abc def".into(), true));
        assert_eq!(squeezed(&format!("{}abc  ", " ".repeat(100_000)), 5), (" abc".into(), false));
        assert_eq!(squeezed(&"é".repeat(10), 5), ("éé".into(), true), "a cut never splits a character");
    }
}
