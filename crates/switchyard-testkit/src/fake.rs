//! The stand-in upstream's state: how it answers for each model ([`Mode`]) and what it received ([`Fake`]),
//! shared by its OpenAI side ([`crate::upstream`]) and its Anthropic side ([`crate::anthropic`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How the fake upstream answers for one model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Answers at once ("hello from MODEL", 5 prompt and 3 completion tokens), whole or streamed.
    Ok,
    /// 500.
    Fail500,
    /// 429.
    Fail429,
    /// 402: the account needs credit.
    PaymentRequired,
    /// 400 whose body says the quota is spent.
    QuotaExhausted,
    /// Answers after 3 s.
    Slow,
    /// Answers after 150 ms.
    Delayed,
    /// 400, the client's error (`upstream_says_no`).
    BadRequest,
    /// Streams two chunks (and usage, when asked), then resets the connection.
    DropMidStream,
    /// 401: the provider refused the key.
    Unauthorized,
    /// 403: the key may not use the model.
    Forbidden,
    /// 404: the provider does not know the model.
    NotFound,
    /// Never answers (within any test's limits).
    Silent,
    /// Sends the stream's headers and keep-alive comments, but no event.
    SilentStream,
    /// Streams this many chunks, this many milliseconds apart.
    LongStream(usize, u64),
    /// Streams this many chunks, then goes silent without ending the stream.
    StallAfter(usize),
    /// Answers, but with a refusal (whole, or streamed to a `finish_reason` of "stop").
    Refuse,
    /// Answers without `usage` (whole), or streams without a usage event even when asked for one.
    NoUsage,
    /// Answers 200 with an HTML page instead of JSON.
    NotJson,
    /// Answers 307, redirecting to `/v1/moved/chat/completions` (which counts its calls in `Fake::moved`).
    Redirect,
    /// Streams [`HUGE_HEAD`] bytes of long comment lines before its first event, then a normal stream.
    HugeHead,
    /// Streams a first event, a [`JUNK_LINE`]-byte comment line, a second event and `[DONE]`, without usage.
    JunkStream,
    /// A whole answer of [`LARGE_ANSWER`] bytes of text.
    Large,
}

/// Bytes of comment lines [`Mode::HugeHead`] sends before its first event.
pub const HUGE_HEAD: usize = 8 * 1024 * 1024;

/// Bytes of the comment line [`Mode::JunkStream`] sends between its events.
pub const JUNK_LINE: usize = 1024 * 1024;

/// The length of a [`Mode::Large`] answer: far more than a loopback connection's buffers hold.
pub const LARGE_ANSWER: usize = 16 * 1024 * 1024;

/// The fake upstream's behaviour per model, and how many calls each model received.
#[derive(Default)]
pub struct Fake {
    /// How each model answers (default: Ok).
    pub modes: Mutex<HashMap<String, Mode>>,
    /// Calls received per model.
    pub calls: Mutex<HashMap<String, usize>>,
    /// The `x-api-key` of each call to the Anthropic side (empty when there was none).
    pub anthropic_keys: Mutex<Vec<String>>,
    /// Calls that reached the target of [`Mode::Redirect`].
    pub moved: std::sync::atomic::AtomicUsize,
    /// Every request body the OpenAI side received, in order.
    pub bodies: Mutex<Vec<serde_json::Value>>,
}

impl Fake {
    /// Calls received so far, all models together.
    pub fn total_calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    /// Waits until at least `n` calls have reached the upstream in all (a request is in flight there), for up
    /// to 60 s.
    pub async fn until_calls(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.total_calls() < n {
            assert!(std::time::Instant::now() < deadline, "the upstream never received {n} calls in 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
