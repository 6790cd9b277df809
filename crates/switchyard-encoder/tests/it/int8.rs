//! The int8 forward pass against the f32 one on the real weights: how close, and how little it depends on
//! the batch and the thread count.
use switchyard_encoder::{Backend, Encoder, EncoderError, EncoderOptions, MiniLm, Precision};
use switchyard_testkit::{max_abs_diff, model_files};

fn load(precision: Precision, threads: Option<usize>) -> MiniLm {
    MiniLm::load(model_files(), EncoderOptions { precision, threads, max_tokens: 512, ..EncoderOptions::default() })
        .unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

/// Everyday and hard prompts of 5 to about 500 tokens.
fn texts() -> Vec<String> {
    let mut texts: Vec<String> = [
        "hi",
        "What is the capital of France?",
        "Write a haiku about the sea in autumn.",
        "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain why this is open.",
        "Write a CUDA kernel that computes a tiled matrix multiply with shared memory and explain its occupancy.",
        "Translate into German: the meeting has been moved to Thursday afternoon, please confirm.",
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n# why is this slow and how do I fix it?",
        "Derive the Schwarzschild metric from the Einstein field equations in vacuum, step by step.",
    ]
    .map(str::to_string)
    .into();
    texts.push("Summarise the following contract clause by clause. ".repeat(12));
    texts.push("The quarterly report shows revenue growth across all regions, with costs held flat. ".repeat(30));
    texts
}

#[test]
fn int8_embeddings_are_within_a_stated_cosine_of_f32() {
    // Tolerance: every text's cosine to its f32 embedding at least 0.995, their mean at least 0.998. Measured
    // over 333 benchmark prompts of mixed length: min 0.9986, mean 0.9994.
    let (f32s, int8) = (load(Precision::F32, None), load(Precision::Int8, None));
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = f32s.embed_batch(&refs).unwrap();
    let got = int8.embed_batch(&refs).unwrap();
    let mut sum = 0.0;
    for ((text, w), g) in texts.iter().zip(&want).zip(&got) {
        let c = cosine(&w.vector, &g.vector);
        assert!(c >= 0.995, "{} tokens ({:?}...): cosine {c}", w.tokens, &text[..text.len().min(30)]);
        let norm: f32 = g.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        sum += c;
    }
    let mean = sum / texts.len() as f32;
    assert!(mean >= 0.998, "mean cosine {mean}");
    // And not merely a copy of f32: int8 arithmetic does change the numbers.
    assert!(want.iter().zip(&got).any(|(w, g)| max_abs_diff(&w.vector, &g.vector) > 1e-5));
}

#[test]
fn an_int8_embedding_does_not_depend_on_its_batch_and_barely_on_the_thread_count() {
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let one = load(Precision::Int8, Some(1));
    let alone: Vec<Vec<f32>> = refs.iter().map(|t| one.embed_batch(&[t]).unwrap().remove(0).vector).collect();
    // On one thread a text's rows are computed alike in any batch: the same bits.
    let many: Vec<&str> = refs.iter().cycle().take(40).copied().collect();
    for (got, want) in one.embed_batch(&many).unwrap().iter().zip(alone.iter().cycle()) {
        assert_eq!(&got.vector, want, "one thread, in a batch of 40");
    }
    // Split across threads, partial sums are added in another order, and a last-bit difference can move an
    // activation across a rounding boundary of the next layer's quantisation: a step of 1/127 of its block.
    // Tolerance: cosine at least 0.9995 (measured over 333 benchmark prompts, 1 against 2 threads: min 0.99984).
    for threads in [2, 3, 4] {
        let int8 = load(Precision::Int8, Some(threads));
        let mut got: Vec<Vec<f32>> = refs.iter().map(|t| int8.embed_batch(&[t]).unwrap().remove(0).vector).collect();
        got.extend(int8.embed_batch(&many).unwrap().into_iter().map(|e| e.vector));
        for (g, want) in got.iter().zip(alone.iter().chain(alone.iter().cycle())) {
            let c = cosine(g, want);
            assert!(c >= 0.9995, "{threads} threads: cosine {c} to one thread's");
        }
        // And the same call twice gives the same bits.
        assert_eq!(int8.embed_batch(&refs[..3]).unwrap(), int8.embed_batch(&refs[..3]).unwrap());
    }
}

#[test]
fn int8_runs_on_the_fast_backend_only_and_names_are_checked() {
    let options = EncoderOptions { backend: Backend::Candle, precision: Precision::Int8, ..EncoderOptions::default() };
    match MiniLm::load(model_files(), options) {
        Err(EncoderError::InvalidOption(message)) => {
            assert!(message.contains("fast backend") && message.contains("f32"), "{message}")
        }
        other => panic!("candle with int8 must be refused, got {:?}", other.map(|_| ())),
    }
    assert_eq!("int8".parse::<Precision>(), Ok(Precision::Int8));
    assert_eq!("f32".parse::<Precision>(), Ok(Precision::F32));
    let err = "fp16".parse::<Precision>().unwrap_err();
    assert!(err.contains("\"fp16\"") && err.contains("\"f32\" or \"int8\""), "{err}");
    assert_eq!(load(Precision::Int8, Some(1)).precision(), Precision::Int8);
}
