//! The real all-MiniLM-L6-v2 encoder against an independent reference, batching, and truncation.
use switchyard_encoder::{embed_all, Encoder, EncoderError, EncoderOptions, MiniLm, PromptTokenizer};
use switchyard_testkit::{encoder, max_abs_diff, model_files};

#[derive(serde::Deserialize)]
struct Reference {
    text: String,
    tokens: usize,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm-l6-v2-reference.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn reproduces_the_reference_embeddings_and_token_counts() {
    let refs = references();
    assert_eq!(refs.len(), 6);
    for r in &refs {
        let got = encoder().embed_batch(&[r.text.as_str()]).unwrap().remove(0);
        assert_eq!(got.tokens, r.tokens, "token count for {:?}", r.text);
        assert!(!got.truncated);
        assert_eq!(got.vector.len(), 384);
        let diff = max_abs_diff(&got.vector, &r.embedding);
        assert!(diff <= 1e-4, "{:?}: max abs diff {diff}", r.text);
        let norm: f32 = got.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

#[test]
fn a_text_in_a_batch_equals_the_text_alone() {
    let long = "Route each prompt to the cheapest model that is likely to answer it well. ".repeat(12);
    let mut texts: Vec<String> = references().into_iter().map(|r| r.text).collect();
    texts.push(long);
    texts.push(String::new());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batched = encoder().embed_batch(&refs).unwrap();
    assert_eq!(batched.len(), texts.len());
    for (text, in_batch) in refs.iter().zip(&batched) {
        let alone = encoder().embed_batch(&[text]).unwrap().remove(0);
        assert_eq!(alone.tokens, in_batch.tokens);
        let diff = max_abs_diff(&alone.vector, &in_batch.vector);
        assert!(diff <= 1e-5, "{text:?}: batch vs alone differ by {diff}");
    }
    // embed_all regroups texts by length; order and values must survive.
    let regrouped = embed_all(encoder(), &refs, 3).unwrap();
    for (a, b) in regrouped.iter().zip(&batched) {
        assert!(max_abs_diff(&a.vector, &b.vector) <= 1e-5);
    }
}

#[test]
fn truncation_is_applied_and_reported() {
    let short = MiniLm::load(model_files(), EncoderOptions::with_max_tokens(16)).unwrap();
    let text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen";
    let cut = short.embed_batch(&[text, "hi"]).unwrap();
    assert_eq!((cut[0].tokens, cut[0].truncated), (16, true));
    assert_eq!((cut[1].tokens, cut[1].truncated), (3, false));
    // The truncated text embeds exactly as its first 14 word pieces would.
    let prefix = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
    let full = encoder().embed_batch(&[prefix]).unwrap().remove(0);
    assert_eq!(full.tokens, 16);
    assert!(max_abs_diff(&full.vector, &cut[0].vector) <= 1e-5);
    // The default maximum is 256 tokens.
    let long = "word ".repeat(1000);
    let e = encoder().embed_batch(&[long.as_str()]).unwrap().remove(0);
    assert_eq!((e.tokens, e.truncated), (256, true));
}

#[test]
fn max_tokens_is_validated() {
    for bad in [0, 1, 513] {
        let err = MiniLm::load(model_files(), EncoderOptions::with_max_tokens(bad)).unwrap_err();
        assert!(matches!(err, EncoderError::InvalidOption(_)), "{bad}: {err}");
    }
}

/// The tokenizer's shortcut for huge texts (tokenize a prefix) must give exactly the ids of tokenizing
/// everything and truncating, as long as the text fits the cut made before tokenizing (64 bytes a token, runs
/// of whitespace counted once); past it, the ids are those of the text up to the cut, reported as truncated.
#[test]
fn huge_texts_tokenize_exactly_like_whole_texts() {
    let path = &model_files().tokenizer;
    let raw = tokenizers::Tokenizer::from_file(path).unwrap();
    let tok = PromptTokenizer::from_file(path, 64, "").unwrap();
    let mut whole = raw.clone();
    whole.with_padding(None);
    whole.with_truncation(None).unwrap();
    let cases = [
        "antidisestablishmentarianism ".repeat(5000),
        format!("{}{}", "a ".repeat(1100), "supercalifragilistic".repeat(300)),
        format!("{}tail words here", " ".repeat(100_000)),
        "路由器🚀Ünïcödé ".repeat(3000),
        "x".repeat(50_000),
    ];
    for text in &cases {
        let ids = whole.encode(text.as_str(), true).unwrap().get_ids().to_vec();
        let expected: Vec<u32> =
            if ids.len() > 64 { ids[..63].iter().chain(ids.last()).copied().collect() } else { ids.clone() };
        let got = tok.encode(text).unwrap();
        assert_eq!(got.ids, expected, "text starting {:?}", text.chars().take(20).collect::<String>());
        // Cut before tokenizing: past 64 bytes a token (a run of spaces counts as one byte).
        let squeezed = text.split_ascii_whitespace().map(|w| w.len() + 1).sum::<usize>();
        assert_eq!(got.truncated, ids.len() > 64 || squeezed > 64 * 64 + 1, "{squeezed}");
    }
    // A megabyte of text is read up to the cut only: the same ids as its first 4,096 bytes.
    let huge = "Route this prompt to a model. ".repeat(35_000);
    let head: String = huge.chars().take(4096).collect();
    assert_eq!(tok.encode(&huge).unwrap().ids, tok.encode(&head).unwrap().ids);
    assert!(tok.encode(&huge).unwrap().truncated);
}

/// Token-id sequences of `len` tokens ([CLS] … [SEP]) with varied ids, deterministic.
fn sequence(len: usize, seed: u32) -> switchyard_encoder::TokenizedText {
    let mut ids = vec![101u32];
    ids.extend((1..len.saturating_sub(1)).map(|i| 1000 + (i as u32 * 7919 + seed * 104_729) % 28_000));
    if len > 1 {
        ids.push(102);
    }
    switchyard_encoder::TokenizedText { ids, truncated: false }
}

#[test]
fn the_fast_backend_matches_stock_candle_at_every_length_batch_and_thread_count() {
    use switchyard_encoder::Backend;
    let options = |backend, threads| EncoderOptions { max_tokens: 512, backend, threads, ..EncoderOptions::default() };
    let stock = MiniLm::load(model_files(), options(Backend::Candle, None)).unwrap();
    let lengths = [1, 2, 3, 7, 16, 33, 64, 127, 128, 255, 256, 511, 512];
    let singles: Vec<_> = lengths.iter().enumerate().map(|(i, &n)| sequence(n, i as u32)).collect();
    let want: Vec<Vec<f32>> =
        singles.iter().map(|s| stock.embed_tokenized(std::slice::from_ref(s)).unwrap().remove(0)).collect();
    // A batch of mixed lengths large enough to be dealt out by sequences; its first three alone, and a long
    // prompt with a short one (too uneven to deal out): one pass each, split by heads.
    let mixed: Vec<_> = (0..40).map(|i| sequence(5 + (i * 13) % 60, 100 + i as u32)).collect();
    let mixed_want: Vec<Vec<f32>> =
        mixed.iter().map(|s| stock.embed_tokenized(std::slice::from_ref(s)).unwrap().remove(0)).collect();
    for threads in [1, 2, 3] {
        let fast = MiniLm::load(model_files(), options(Backend::Fast, Some(threads))).unwrap();
        for (s, w) in singles.iter().zip(&want) {
            let got = fast.embed_tokenized(std::slice::from_ref(s)).unwrap().remove(0);
            let diff = max_abs_diff(&got, w);
            assert!(diff <= 1e-4, "{threads} threads, {} tokens: max abs diff {diff}", s.ids.len());
        }
        let all = fast.embed_tokenized(&singles).unwrap();
        for (got, w) in all.iter().zip(&want) {
            assert!(max_abs_diff(got, w) <= 1e-4, "{threads} threads, lengths 1 to 512 in one batch");
        }
        for (got, w) in fast.embed_tokenized(&mixed).unwrap().iter().zip(&mixed_want) {
            assert!(max_abs_diff(got, w) <= 1e-4, "{threads} threads, batch of 40 mixed lengths");
        }
        for (got, w) in fast.embed_tokenized(&mixed[..3]).unwrap().iter().zip(&mixed_want) {
            assert!(max_abs_diff(got, w) <= 1e-4, "{threads} threads, batch of 3 short prompts");
        }
        let uneven = [singles[9].clone(), singles[2].clone()];
        for (got, w) in fast.embed_tokenized(&uneven).unwrap().iter().zip([&want[9], &want[2]]) {
            assert!(max_abs_diff(got, w) <= 1e-4, "{threads} threads, 255 tokens with 3");
        }
    }
}
