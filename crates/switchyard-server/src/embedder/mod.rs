//! Prompt embedding for the server: a cache of recent prompts, tokenizing on the request's own task, and
//! one dedicated inference thread fed by a bounded queue. The thread takes whatever is queued when it is
//! free, up to a token budget, and embeds it in one forward pass: an idle server runs each prompt alone
//! at once (no added wait), a loaded one batches. A full queue is refused at once (429) rather than letting
//! latency grow without bound.

mod cache;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use switchyard_encoder::{Embedding, Encoder, TokenizedText};

use crate::embedder::cache::Lru;

/// Prompts longer than this (in bytes) are tokenized on a blocking thread rather than the async one.
const INLINE_TOKENIZE_BYTES: usize = 16 * 1024;

/// Settings of the embedder (from `[encoder]`).
#[derive(Debug, Clone, Copy)]
pub struct EmbedderOptions {
    /// Most tokens embedded in one forward pass.
    pub batch_tokens: usize,
    /// Prompts waiting for the inference thread before new ones are refused.
    pub queue_capacity: usize,
    /// Recent prompts whose embeddings are kept (0: no cache).
    pub cache_entries: usize,
    /// Under load, how long a pass may wait for the queue to refill to the previous pass's size.
    pub batch_wait: Duration,
}

/// Why a prompt could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The queue to the inference thread is full.
    #[error("the encoder queue is full ({0} prompts waiting, encoder.queue_capacity); retry shortly")]
    Busy(usize),
    /// The encoder failed or its thread stopped.
    #[error("encoder failed: {0}")]
    Failed(String),
}

/// What embedding one prompt took.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbedTiming {
    /// Tokenizing (zero for a cache hit).
    pub tokenize: Duration,
    /// Waiting in the queue for the inference thread.
    pub queue: Duration,
    /// The forward pass of the batch the prompt was in.
    pub inference: Duration,
    /// Prompts in that batch.
    pub batch_size: usize,
    /// Whether the embedding came from the cache.
    pub cached: bool,
}

struct Pending {
    tokens: TokenizedText,
    enqueued: Instant,
    reply: tokio::sync::oneshot::Sender<Result<(Vec<f32>, EmbedTiming), String>>,
}

/// Counters of the embedder, for metrics.
#[derive(Debug, Default)]
pub struct EmbedderStats {
    /// Forward passes run.
    pub batches: AtomicU64,
    /// Prompts embedded by them.
    pub prompts: AtomicU64,
    /// Prompts answered from the cache.
    pub cache_hits: AtomicU64,
    /// Prompts that missed the cache.
    pub cache_misses: AtomicU64,
    /// Prompts refused because the queue was full.
    pub rejected: AtomicU64,
    /// Prompts waiting now.
    pub queued: AtomicU64,
    /// Times the inference thread was restarted after a panic.
    pub restarts: AtomicU64,
    /// The inference thread is down (between a panic and its restart).
    pub down: AtomicBool,
}

/// The first wait before restarting a panicked inference thread; it doubles on each panic that follows
/// within a minute, up to [`MAX_RESTART_DELAY`].
const RESTART_DELAY: Duration = Duration::from_millis(200);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(5);

/// Marks the inference thread down when dropped by a panic's unwinding, before the batch's replies are
/// dropped: a client that sees its request fail then also sees `/readyz` fail.
struct DownOnPanic<'a>(&'a AtomicBool);

impl Drop for DownOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// The server's embedder.
pub struct Embedder {
    encoder: Arc<dyn Encoder>,
    queue: SyncSender<Pending>,
    capacity: usize,
    cache: Mutex<Lru<[u8; 32], Embedding>>,
    stats: Arc<EmbedderStats>,
}

impl Embedder {
    /// Starts the inference thread.
    pub fn start(encoder: Arc<dyn Encoder>, options: EmbedderOptions) -> std::io::Result<Self> {
        let (queue, rx) = mpsc::sync_channel(options.queue_capacity.max(1));
        let stats = Arc::new(EmbedderStats::default());
        let (thread_encoder, thread_stats) = (encoder.clone(), stats.clone());
        let budget = options.batch_tokens.max(1);
        std::thread::Builder::new().name("switchyard-inference".into()).spawn(move || {
            let batcher = Batcher { rx, budget, wait: options.batch_wait };
            supervise(|| batcher.run(thread_encoder.as_ref(), &thread_stats), &thread_stats);
        })?;
        Ok(Self {
            encoder,
            queue,
            capacity: options.queue_capacity,
            cache: Mutex::new(Lru::new(options.cache_entries)),
            stats,
        })
    }

    /// The embedder's counters.
    pub fn stats(&self) -> &EmbedderStats {
        &self.stats
    }

    /// Whether the inference thread is running (not between a panic and its restart).
    pub fn is_up(&self) -> bool {
        !self.stats.down.load(Ordering::SeqCst)
    }

    /// Prompts in the cache now.
    pub fn cached(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.len())
    }

    /// Embeds one prompt: from the cache, or tokenized here and queued for the inference thread.
    pub async fn embed(&self, prompt: &str) -> Result<(Embedding, EmbedTiming), EmbedError> {
        let key: [u8; 32] = Sha256::digest(prompt.as_bytes()).into();
        let hit = self.cache.lock().ok().and_then(|mut c| c.get(&key));
        if let Some(embedding) = hit {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((embedding, EmbedTiming { cached: true, ..EmbedTiming::default() }));
        }
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);

        let start = Instant::now();
        let tokens = if prompt.len() <= INLINE_TOKENIZE_BYTES {
            self.encoder.tokenize(prompt)
        } else {
            let (encoder, text) = (self.encoder.clone(), prompt.to_string());
            tokio::task::spawn_blocking(move || encoder.tokenize(&text))
                .await
                .map_err(|e| EmbedError::Failed(format!("tokenizer task failed: {e}")))?
        }
        .map_err(|e| EmbedError::Failed(e.to_string()))?;
        let tokenize = start.elapsed();
        let (count, truncated) = (tokens.ids.len(), tokens.truncated);

        let (reply, answer) = tokio::sync::oneshot::channel();
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.queue.try_send(Pending { tokens, enqueued: Instant::now(), reply }) {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                TrySendError::Full(_) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    EmbedError::Busy(self.capacity)
                }
                TrySendError::Disconnected(_) => EmbedError::Failed("the inference thread stopped".into()),
            });
        }
        let (vector, mut timing) = answer
            .await
            .map_err(|_| EmbedError::Failed("the inference thread stopped".into()))?
            .map_err(EmbedError::Failed)?;
        timing.tokenize = tokenize;
        let embedding = Embedding { vector, tokens: count, truncated };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, embedding.clone());
        }
        Ok((embedding, timing))
    }
}

/// Runs the inference loop, restarting it after a panic: the queue survives, so prompts waiting in it are
/// answered after the restart; only the batch that panicked fails. Restarts are counted and logged.
fn supervise(run: impl Fn(), stats: &EmbedderStats) {
    let mut delay = RESTART_DELAY;
    let mut last_panic: Option<Instant> = None;
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&run)) {
            Ok(()) => return,
            Err(panic) => {
                stats.down.store(true, Ordering::SeqCst);
                stats.restarts.fetch_add(1, Ordering::Relaxed);
                if last_panic.is_some_and(|t| t.elapsed() > Duration::from_secs(60)) {
                    delay = RESTART_DELAY;
                }
                last_panic = Some(Instant::now());
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!("the inference thread panicked ({what}); restarting it in {delay:?}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(MAX_RESTART_DELAY);
                stats.down.store(false, Ordering::SeqCst);
                tracing::info!("the inference thread is running again");
            }
        }
    }
}

/// How the inference thread forms batches.
struct Batcher {
    rx: Receiver<Pending>,
    /// Most tokens in one pass.
    budget: usize,
    /// Longest wait for a batch to refill.
    wait: Duration,
}

impl Batcher {
    /// Takes what is queued (up to the token budget), runs one forward pass, answers; until the server stops.
    ///
    /// Under load a pass also waits, up to `wait`, until as many prompts are queued as the previous pass
    /// had. Without that, a busy server falls into running many tiny passes: while the encoder's threads
    /// hold both cores, the requests that would fill the next pass cannot even be read, so each pass
    /// starts with the few that got through, at a fraction of a full batch's throughput. An idle server
    /// (previous pass: one prompt) never waits.
    fn run(&self, encoder: &dyn Encoder, stats: &EmbedderStats) {
        let mut carried: Option<Pending> = None;
        let mut previous = 1;
        loop {
            let first = match carried.take() {
                Some(p) => p,
                None => match self.rx.recv() {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let mut tokens = first.tokens.ids.len();
            let mut batch = vec![first];
            let deadline = Instant::now() + self.wait;
            while tokens < self.budget {
                let next = match self.rx.try_recv() {
                    Ok(p) => Some(p),
                    Err(_) if batch.len() < previous => {
                        self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
                    }
                    Err(_) => None,
                };
                match next {
                    Some(p) if tokens + p.tokens.ids.len() > self.budget => {
                        carried = Some(p);
                        break;
                    }
                    Some(p) => {
                        tokens += p.tokens.ids.len();
                        batch.push(p);
                    }
                    None => break,
                }
            }
            previous = batch.len();
            answer(encoder, batch, stats);
        }
    }
}

/// Embeds one batch and sends each prompt its result.
fn answer(encoder: &dyn Encoder, mut batch: Vec<Pending>, stats: &EmbedderStats) {
    stats.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
    // Clients that went away need no answer.
    batch.retain(|p| !p.reply.is_closed());
    if batch.is_empty() {
        return;
    }
    let started = Instant::now();
    let (inputs, waiting): (Vec<TokenizedText>, Vec<_>) =
        batch.into_iter().map(|p| (p.tokens, (p.enqueued, p.reply))).unzip();
    // Declared after `waiting`, so a panic drops it first.
    let _down = DownOnPanic(&stats.down);
    let result = encoder.embed_tokens(&inputs);
    let inference = started.elapsed();
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.prompts.fetch_add(inputs.len() as u64, Ordering::Relaxed);
    match result {
        Ok(vectors) if vectors.len() == waiting.len() => {
            for (vector, (enqueued, reply)) in vectors.into_iter().zip(waiting) {
                let timing = EmbedTiming {
                    queue: started.saturating_duration_since(enqueued),
                    inference,
                    batch_size: inputs.len(),
                    ..EmbedTiming::default()
                };
                let _ = reply.send(Ok((vector, timing)));
            }
        }
        Ok(vectors) => {
            let message = format!("the encoder returned {} embeddings for {} prompts", vectors.len(), waiting.len());
            for (_, reply) in waiting {
                let _ = reply.send(Err(message.clone()));
            }
        }
        Err(e) => {
            for (_, reply) in waiting {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use switchyard_encoder::{EncoderOptions, MiniLm};

    type Reply = tokio::sync::oneshot::Receiver<Result<(Vec<f32>, EmbedTiming), String>>;

    fn queue(encoder: &MiniLm, tx: &SyncSender<Pending>, prompt: &str) -> Reply {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let tokens = encoder.tokenize(prompt).unwrap();
        tx.send(Pending { tokens, enqueued: Instant::now(), reply }).unwrap();
        answer
    }

    fn timing(answer: Reply) -> EmbedTiming {
        answer.blocking_recv().unwrap().unwrap().1
    }

    /// `encoder.batch_wait_ms`, made deterministic by filling the queue before the inference thread starts:
    /// the first pass takes all five queued prompts at once; the next pass waits (here 800 ms) for as many
    /// as that one had, gets none and runs its one prompt alone; after a pass of one, nothing waits. The
    /// margins are hundreds of milliseconds against passes of a few: this checks when the batcher waits,
    /// not how fast the encoder is.
    #[test]
    fn an_idle_batcher_never_waits_and_a_busy_one_waits_to_refill() {
        // The test model, fetched outside the source tree and shared by every test binary.
        let files = switchyard_testkit::model_files();
        let encoder = Arc::new(MiniLm::load(files, EncoderOptions::default()).unwrap());
        let (tx, rx) = mpsc::sync_channel(16);
        let burst: Vec<Reply> =
            (0..5).map(|i| queue(&encoder, &tx, &format!("Question {i}: which model answers this?"))).collect();

        let wait = Duration::from_millis(800);
        let (thread_encoder, stats) = (encoder.clone(), Arc::new(EmbedderStats::default()));
        let thread_stats = stats.clone();
        let inference =
            std::thread::spawn(move || Batcher { rx, budget: 4096, wait }.run(thread_encoder.as_ref(), &thread_stats));

        for answer in burst {
            assert_eq!(timing(answer).batch_size, 5, "the queued prompts were not taken in one pass");
        }
        let waited = timing(queue(&encoder, &tx, "A lone prompt after a busy pass."));
        assert_eq!(waited.batch_size, 1);
        assert!(waited.queue >= wait, "the pass after a batch of five did not wait ({:?})", waited.queue);
        let lone = timing(queue(&encoder, &tx, "A lone prompt after a lone pass."));
        assert_eq!(lone.batch_size, 1);
        assert!(lone.queue < wait / 2, "a prompt after a lone pass waited {:?}", lone.queue);
        assert_eq!(stats.batches.load(Ordering::Relaxed), 3);

        drop(tx);
        inference.join().unwrap();
    }
}
