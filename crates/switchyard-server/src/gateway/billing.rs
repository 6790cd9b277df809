//! What a gateway answer is charged. The usage the upstream reported, at catalog prices; an answer without
//! one (a whole answer with no usable `usage`, a stream that ended before its usage event) is charged an
//! estimate at [`switchyard_core::CHARS_PER_TOKEN`] characters a token: the request's text as input, the
//! generated text (content, reasoning and tool-call arguments) as output. Estimates are marked in the decision
//! log (`usage_estimated`) and, on whole answers, in the `x-switchyard-usage: estimated` header.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::Value;
use switchyard_core::ModelCard;
use switchyard_store::DecisionRecord;

use crate::cache::replay::Assembler;
use crate::cache::{ResponseCache, Ticket};
use crate::gateway::sse::SseTap;
use crate::gateway::usage::Usage;
use crate::limits::keys::Caller;
use crate::state::AppState;

/// The usage charged when the upstream reported none: `input` tokens of request text and the output tokens
/// of `generated_chars` characters.
pub(crate) fn estimate(input: u64, generated_chars: usize) -> Usage {
    Usage { input, output: (generated_chars as f64 / switchyard_core::CHARS_PER_TOKEN).ceil() as u64 }
}

/// The request's input tokens as estimated from its messages' text.
pub(crate) fn input_estimate(body: &Value) -> u64 {
    crate::gateway::usage::message_tokens(body).unwrap_or(0.0) as u64
}

/// Charges a whole (not streamed) answer: its reported usage or, without one, an estimate (marked in the
/// record and logged). Counts it here and in the shared state. Returns whether it was an estimate.
pub(crate) async fn charge_whole(
    state: &AppState,
    card: &ModelCard,
    caller: &Caller,
    record: &mut DecisionRecord,
    reported: Option<Usage>,
    estimated: impl FnOnce() -> Usage,
) -> bool {
    let usage = reported.unwrap_or_else(|| {
        let usage = estimated();
        tracing::info!(
            request = record.request_id,
            input = usage.input,
            output = usage.output,
            "the answer reported no usage; charging an estimate"
        );
        usage
    });
    record.usage_estimated = reported.is_none();
    let (tokens, cost) = count_usage(state, card, caller, record, usage);
    if let (Some(shared), Some(key)) = (&state.shared, &caller.0) {
        shared.charge(key, tokens, cost, switchyard_store::now_ms()).await;
    }
    record.usage_estimated
}

/// Counts tokens, and their cost at catalog prices, in the metrics, the record and the caller's key (this
/// replica's count; the caller charges the shared state). Returns the tokens and the cost.
pub(crate) fn count_usage(
    state: &AppState,
    card: &ModelCard,
    caller: &Caller,
    record: &mut DecisionRecord,
    usage: Usage,
) -> (u64, f64) {
    let cost = card.cost_usd(usage.input as f64, usage.output as f64);
    state.metrics.tokens(&card.name, usage.input, usage.output, cost);
    if let Some(key) = &caller.0 {
        key.charge(usage.input + usage.output, cost, Instant::now(), switchyard_store::now_ms());
        state.metrics.key_usage(&key.name, usage.input, usage.output, cost);
    }
    record.input_tokens = Some(usage.input);
    record.output_tokens = Some(usage.output);
    record.cost_usd = Some(cost);
    (usage.input + usage.output, cost)
}

/// A streamed answer on its way: its usage is read (and, when the client did not ask for it, taken out) as
/// it passes; when the stream ends or the client goes away, the usage is counted and the request logged.
pub(crate) struct StreamEnd {
    /// The server.
    pub state: Arc<AppState>,
    /// The model that answers.
    pub card: ModelCard,
    /// Who asked, charged for the answer.
    pub caller: Caller,
    /// The request's log record, logged when the stream ends.
    pub record: Option<DecisionRecord>,
    /// Reads the stream as it passes.
    pub tap: SseTap,
    /// When the request arrived.
    pub started: Instant,
    /// The request's input tokens as estimated from its text, charged when the stream ends before its usage.
    pub input_estimate: u64,
    /// Online learning's inputs for the decision, to judge the streamed answer when it completes.
    pub learned: Option<crate::routing::stages::Learned>,
    /// Whether the caller set `max_tokens`.
    pub capped: bool,
    /// The stream's answer, assembled for the decision log and the response cache (none when neither keeps it).
    pub answer: Option<StreamAnswer>,
}

/// Most bytes of a stream assembled into its answer (a longer one is neither logged nor cached).
const MAX_ASSEMBLED: usize = 8 * 1024 * 1024;

/// A stream's answer, assembled from its chunks as they pass: for the decision log (`log.responses`) and,
/// with a ticket, the response cache.
pub(crate) struct StreamAnswer {
    assembler: Assembler,
    cache: Option<(Arc<ResponseCache>, Ticket)>,
}

impl StreamAnswer {
    /// An assembler for a stream whose answer the log keeps (`log`) or the cache (`cache`); none if neither.
    pub fn new(log: bool, cache: Option<(Arc<ResponseCache>, Ticket)>) -> Option<Self> {
        (log || cache.is_some()).then(|| Self { assembler: Assembler::new(MAX_ASSEMBLED), cache })
    }
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else { return };
        // A stream cut before its usage event (the client left, the upstream broke off) is charged an estimate:
        // the request's text and what was generated, at four characters a token.
        let usage = self.tap.usage.unwrap_or_else(|| {
            let usage = estimate(self.input_estimate, self.tap.generated_chars);
            tracing::info!(
                request = record.request_id,
                input = usage.input,
                output = usage.output,
                "the stream ended without reporting usage; charging an estimate"
            );
            record.usage_estimated = true;
            usage
        });
        let (tokens, cost) = count_usage(&self.state, &self.card, &self.caller, &mut record, usage);
        // The stream has ended: the shared charge goes on in the background.
        if let (Some(shared), Some(key), Ok(runtime)) =
            (self.state.shared.clone(), self.caller.0.clone(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move { shared.charge(&key, tokens, cost, switchyard_store::now_ms()).await });
        }
        // A stream that completed (it reported a finish_reason) is judged like a whole answer.
        if let Some(finish) = self.tap.finish_reason.as_deref() {
            let answer = Some((self.tap.head.as_str(), Some(finish), self.capped));
            self.state.learn(&record.request_id, self.learned.as_ref(), &self.card.name, answer);
        }
        // A completed stream's answer is logged and cached (an unfinished one assembles to nothing).
        if let Some(StreamAnswer { assembler, cache }) = self.answer.take() {
            if let Some(answer) = assembler.answer() {
                let log = &self.state.config.log;
                record.set_response(&answer, log.response_logging(), log.max_response_chars);
                if let Some((cache, ticket)) = cache {
                    cache.store(ticket, answer, &self.card.name, cost);
                }
            }
        }
        record.latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        self.state.log_request(record);
    }
}

impl StreamEnd {
    /// Puts the tap on the response's body.
    pub(crate) fn attach(self, response: Response) -> Response {
        let (parts, body) = response.into_parts();
        let end = std::sync::Arc::new(std::sync::Mutex::new(self));
        let tail = end.clone();
        let chunks = body.into_data_stream().map(move |chunk| {
            chunk.map(|bytes| {
                end.lock().map_or_else(
                    |_| bytes.clone(),
                    |mut e| {
                        if let Some(a) = e.answer.as_mut() {
                            a.assembler.feed(&bytes);
                        }
                        e.tap.feed(bytes.clone())
                    },
                )
            })
        });
        // The end of the stream: what the tap still holds (a last line without its newline), then the
        // record is logged as the tap drops.
        let rest = futures_util::stream::once(async move {
            let bytes = tail.lock().map(|mut e| e.tap.finish()).unwrap_or_default();
            Ok::<_, axum::Error>(bytes)
        });
        Response::from_parts(parts, Body::from_stream(chunks.chain(rest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_rounds_generated_characters_up_to_tokens() {
        assert_eq!(estimate(7, 18), Usage { input: 7, output: 5 });
        assert_eq!(estimate(7, 0), Usage { input: 7, output: 0 });
        assert_eq!(estimate(0, 4), Usage { input: 0, output: 1 });
    }
}
