//! Gauges read at scrape time from the rest of the state: the supervised threads, key budgets, the decision
//! log's writer and the embedder.

use std::fmt::Write;

use super::{key_label, scalar};
use crate::config::server::KeyLabels;

/// Restarts of the supervised threads, and whether each is up.
pub fn render_supervision(
    out: &mut String,
    embedder: &crate::embedder::Embedder,
    log: Option<&switchyard_store::LogWriter>,
) {
    out.push_str("# HELP switchyard_restarts_total Restarts of a supervised thread after a panic, by component.\n");
    out.push_str("# TYPE switchyard_restarts_total counter\n");
    let inference = embedder.stats().restarts.load(std::sync::atomic::Ordering::Relaxed);
    let _ = writeln!(out, "switchyard_restarts_total{{component=\"inference\"}} {inference}");
    if let Some(log) = log {
        let writer = log.stats().restarts.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "switchyard_restarts_total{{component=\"log_writer\"}} {writer}");
    }
    out.push_str("# HELP switchyard_component_up Whether a supervised thread is running (1) or restarting (0).\n");
    out.push_str("# TYPE switchyard_component_up gauge\n");
    let _ = writeln!(out, "switchyard_component_up{{component=\"inference\"}} {}", u8::from(embedder.is_up()));
    if let Some(log) = log {
        let _ = writeln!(out, "switchyard_component_up{{component=\"log_writer\"}} {}", u8::from(log.is_up()));
        let retries = log.stats().retries.load(std::sync::atomic::Ordering::Relaxed);
        scalar(
            out,
            "switchyard_log_commit_retries_total",
            "counter",
            "Decision log commits tried again after failing.",
            retries,
        );
    }
}

/// Gauges of each key's budget: spend in the current period and the budget.
pub fn render_budgets(out: &mut String, keys: &crate::limits::keys::KeyRing, labels: KeyLabels) {
    out.push_str("# HELP switchyard_key_period_spend_usd Spend in the budget's current period, by client key.\n");
    out.push_str("# TYPE switchyard_key_period_spend_usd gauge\n");
    for k in keys.all() {
        let _ =
            writeln!(out, "switchyard_key_period_spend_usd{{key=\"{}\"}} {}", key_label(&k.name, labels), k.spend().0);
    }
    out.push_str("# HELP switchyard_key_budget_usd A client key's budget per period.\n");
    out.push_str("# TYPE switchyard_key_budget_usd gauge\n");
    for k in keys.all() {
        if let Some(b) = k.spend().1 {
            let _ = writeln!(out, "switchyard_key_budget_usd{{key=\"{}\"}} {b}", key_label(&k.name, labels));
        }
    }
}

pub fn render_log(out: &mut String, stats: &switchyard_store::WriterStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let counters = [
        ("written", "Rows committed to the decision log.", &stats.written),
        ("dropped", "Rows dropped because the log queue was full (requests were not slowed down).", &stats.dropped),
        ("failed", "Rows lost to failed writes (e.g. a full disk).", &stats.failed),
        ("pruned", "Requests deleted by retention.", &stats.pruned),
    ];
    for (name, help, value) in counters {
        scalar(out, &format!("switchyard_log_rows_{name}_total"), "counter", help, value.load(Relaxed));
    }
    scalar(out, "switchyard_log_queue_rows", "gauge", "Rows waiting to be written.", stats.queued.load(Relaxed));
    let spool = [
        (
            "switchyard_log_spool_rows",
            "gauge",
            "Rows in the local spool, waiting for PostgreSQL to answer.",
            &stats.spooled,
        ),
        ("switchyard_log_replayed_rows_total", "counter", "Spooled rows replayed into PostgreSQL.", &stats.replayed),
        (
            "switchyard_log_unreachable_total",
            "counter",
            "Writes to PostgreSQL that failed and sent their rows to the spool.",
            &stats.unreachable,
        ),
    ];
    for (name, kind, help, value) in spool {
        scalar(out, name, kind, help, value.load(Relaxed));
    }
}

/// Appends the embedder's counters: batches, prompts, cache hits and misses, refusals, queue depth.
pub fn render_embedder(out: &mut String, embedder: &crate::embedder::Embedder) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = embedder.stats();
    let counters = [
        ("switchyard_encode_batches_total", "Forward passes of the inference thread.", &stats.batches),
        ("switchyard_encode_batched_prompts_total", "Prompts embedded by those passes.", &stats.prompts),
        ("switchyard_encode_cache_hits_total", "Prompts answered from the embedding cache.", &stats.cache_hits),
        ("switchyard_encode_cache_misses_total", "Prompts that missed the embedding cache.", &stats.cache_misses),
        ("switchyard_encode_rejected_total", "Prompts refused with 429 because the queue was full.", &stats.rejected),
    ];
    for (name, help, value) in counters {
        scalar(out, name, "counter", help, value.load(Relaxed));
    }
    let depth = stats.queued.load(Relaxed);
    scalar(out, "switchyard_encode_queue_depth", "gauge", "Prompts waiting for the inference thread.", depth);
    scalar(out, "switchyard_encode_cache_entries", "gauge", "Prompts in the embedding cache.", embedder.cached());
}
