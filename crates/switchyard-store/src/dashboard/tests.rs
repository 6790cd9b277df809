use super::*;
use crate::db::tests::record;
use crate::record::{Attempt, DecisionRecord, Estimate, Feedback};
use crate::Store;

const HOUR: i64 = 3_600_000;

/// Prices: a dear model and a cheap one, USD per million tokens.
fn price(model: &str) -> Option<(f64, f64)> {
    match model {
        "big" => Some((10.0, 30.0)),
        "small" => Some((0.5, 1.5)),
        _ => None,
    }
}

fn pricing(reference: Option<&str>) -> Pricing<'static> {
    Pricing { price: &price, candidates: vec!["big".into(), "small".into()], reference: reference.map(Into::into) }
}

fn routed(id: &str, ts: i64, model: &str, tokens: (u64, u64), domain: &str, complexity: f64) -> DecisionRecord {
    let mut r = record(id, ts, model);
    r.input_tokens = Some(tokens.0);
    r.output_tokens = Some(tokens.1);
    r.cost_usd = price(model).map(|(i, o)| (tokens.0 as f64 * i + tokens.1 as f64 * o) / 1e6);
    r.estimates = vec![
        Estimate { model: "big".into(), p: 0.9, cost_usd: 0.01 },
        Estimate { model: "small".into(), p: 0.7, cost_usd: 0.001 },
    ];
    r.decided_model = Some(model.into());
    (r.domain, r.complexity) = (Some(domain.into()), Some(complexity));
    r
}

/// A log of five requests over three hours: routed answers of both models (one after a fallback from a failed
/// deployment), a `/v1/route` decision, and a cache hit; two scored.
fn sample() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
    let mut fell_back = routed("c", 2 * HOUR + 5, "small", (2_000, 1_000), "code", 0.9);
    fell_back.decided_model = Some("big".into());
    fell_back.attempts = vec![
        Attempt {
            model: "big".into(),
            deployment: Some("big-eu".into()),
            status: Some(503),
            latency_ms: 5.0,
            error: Some("503".into()),
        },
        Attempt {
            model: "small".into(),
            deployment: Some("small-us".into()),
            status: Some(200),
            latency_ms: 30.0,
            error: None,
        },
    ];
    fell_back.api_key = Some("team-a".into());
    let mut decision = routed("d", 2 * HOUR + 6, "big", (0, 0), "math", 0.2);
    (decision.endpoint, decision.input_tokens, decision.output_tokens, decision.cost_usd) =
        ("route".into(), None, None, None);
    decision.attempts.clear();
    let mut hit = routed("e", 2 * HOUR + 7, "small", (500, 100), "chat", 0.1);
    (hit.cache_hit, hit.cost_usd, hit.cache_saved_usd) = (true, Some(0.0), Some(0.002));
    store
        .insert(&[
            routed("a", 5, "big", (1_000, 500), "math", 0.8),
            routed("b", HOUR + 1, "small", (4_000, 2_000), "chat", 0.1),
            fell_back,
            decision,
            hit,
        ])
        .unwrap();
    let fb = |id: &str, score| Feedback { request_id: id.into(), api_key: None, score, comment: None, ts_ms: 1 };
    store.feedback(&fb("a", 1.0)).unwrap();
    store.feedback(&fb("b", 0.0)).unwrap();
    store.feedback(&fb("b", 0.5)).unwrap();
    (dir, store)
}

#[test]
fn the_savings_price_the_same_tokens_at_the_reference() {
    let (_dir, store) = sample();
    let query = DashboardQuery::new(0, 3 * HOUR, HOUR, 10).unwrap();
    let d = store.dashboard(&query, &pricing(None)).unwrap();
    // By hand: the three priced answers (not the decision, not the cache hit) hold 7,000 input and 3,500
    // output tokens; at big's prices that is 0.07 + 0.105 = 0.175. They cost 0.025 (big) + 0.005 + 0.0025.
    let s = &d.savings;
    let reference = s.reference.as_ref().unwrap();
    assert_eq!((reference.model.as_str(), reference.picked), ("big", "default"), "the dearest model routed to");
    assert_eq!((s.priced_requests, s.unpriced_requests), (3, 2));
    assert!((s.reference_usd - 0.175).abs() < 1e-12, "{s:?}");
    assert!((s.spend_usd - 0.0325).abs() < 1e-12, "{s:?}");
    assert!((s.saved_usd - 0.1425).abs() < 1e-12);
    assert!((s.saved_share.unwrap() - 0.1425 / 0.175).abs() < 1e-12);
    // Priced at the cheap model, routing cost more than sending everything there.
    let cheap = store.dashboard(&query, &pricing(Some("small"))).unwrap().savings;
    assert_eq!(cheap.reference.as_ref().map(|r| r.picked), Some("request"));
    assert!(cheap.saved_usd < 0.0);
}

#[test]
fn totals_series_and_panels_follow_the_rows() {
    let (_dir, store) = sample();
    let d = store.dashboard(&DashboardQuery::new(0, 3 * HOUR, HOUR, 2).unwrap(), &pricing(None)).unwrap();
    assert_eq!((d.totals.requests, d.totals.routed, d.totals.gateway), (5, 5, 4));
    assert_eq!(d.range.buckets, [0, HOUR, 2 * HOUR]);
    let small = d.series.iter().find(|s| s.model == "small").unwrap();
    assert_eq!(small.requests, [0, 1, 2]);
    let feedback = d.totals.feedback.unwrap();
    assert_eq!((d.totals.scored, feedback.mean), (2, 0.75), "the latest score of each request");
    let big = d.models.iter().find(|m| m.model == "big").unwrap();
    assert_eq!((big.requests, big.scored, big.predicted), (2, 1, Some(0.9)));
    let small = d.models.iter().find(|m| m.model == "small").unwrap();
    assert_eq!((small.requests, small.fallbacks, small.predicted), (3, 1, Some(0.7)));
    let math = d.traffic.iter().filter(|t| t.domain == "math").map(|t| (t.model.as_str(), t.band)).collect::<Vec<_>>();
    assert_eq!(math, [("big", "high"), ("big", "low")]);
    // The failed call counts against its deployment; the answering one has its latency.
    let eu = d.deployments.iter().find(|x| x.deployment == "big-eu").unwrap();
    assert_eq!((eu.model.as_str(), eu.calls, eu.failures, eu.upstream_ms), ("big", 1, 1, None));
    let us = d.deployments.iter().find(|x| x.deployment == "small-us").unwrap();
    assert_eq!((us.calls, us.failures, us.upstream_ms), (1, 0, Some(30.0)));
    assert_eq!((d.cache.hits, d.cache.saved_usd), (1, 0.002));
    assert_eq!(d.cache.hit_rate.unwrap().n, 4, "over gateway requests");
    let keys: Vec<(&str, u64)> = d.keys.iter().map(|k| (k.name.as_str(), k.requests)).collect();
    assert_eq!(keys, [("-", 4), ("team-a", 1)]);
    // The newest two, newest first, with the whole ranking and why.
    let recent: Vec<(&str, &str)> = d.recent.iter().map(|r| (r.request_id.as_str(), r.reason.as_str())).collect();
    assert_eq!(recent, [("e", "cache"), ("d", "policy")]);
    assert_eq!(d.recent[1].ranking.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(), ["big", "small"]);
}

#[test]
fn a_range_holds_only_its_rows() {
    let (_dir, store) = sample();
    let d = store.dashboard(&DashboardQuery::new(HOUR, 2 * HOUR, HOUR, 50).unwrap(), &pricing(None)).unwrap();
    assert_eq!(d.totals.requests, 1);
    assert_eq!(d.recent.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["b"]);
    let empty = store.dashboard(&DashboardQuery::new(10 * HOUR, 11 * HOUR, HOUR, 50).unwrap(), &pricing(None)).unwrap();
    assert_eq!((empty.totals.requests, empty.savings.saved_share, empty.recent.len()), (0, None, 0));
    assert!(empty.savings.reference.is_none(), "no model routed to: no default reference");
}

#[test]
fn the_scan_reads_the_covering_index_alone() {
    let (_dir, store) = sample();
    let plan: Vec<String> = store
        .conn()
        .prepare(&format!("EXPLAIN QUERY PLAN SELECT {STAT_COLUMNS} FROM decisions INDEXED BY decisions_stats WHERE ts_ms >= 0 AND ts_ms < 1"))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(plan.iter().any(|p| p.contains("USING COVERING INDEX decisions_stats")), "{plan:?}");
}

#[test]
fn a_log_of_schema_8_gets_its_columns_filled_on_open() {
    let (dir, store) = sample();
    let path = store.path().to_path_buf();
    store
        .conn()
        .execute_batch(
            "DROP INDEX decisions_stats;
             UPDATE decisions SET chosen_p = NULL, attempts_n = NULL, deployment = NULL, upstream_ms = NULL,
             failed_deployments = NULL, score = NULL;
             PRAGMA user_version = 8;",
        )
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let d = store.dashboard(&DashboardQuery::new(0, 3 * HOUR, HOUR, 0).unwrap(), &pricing(None)).unwrap();
    assert_eq!((d.totals.scored, d.deployments.len()), (2, 4), "scores and calls back");
    assert_eq!(d.models.iter().find(|m| m.model == "small").unwrap().fallbacks, 1);
    drop(dir);
}

#[test]
fn bad_queries_say_what_to_change() {
    assert!(DashboardQuery::new(5, 5, HOUR, 1).unwrap_err().contains("before"));
    assert!(DashboardQuery::new(0, 5, 0, 1).unwrap_err().contains("positive"));
    assert!(DashboardQuery::new(0, 30 * 24 * HOUR, 60_000, 1).unwrap_err().contains("widen `bucket`"));
    assert!(DashboardQuery::new(0, HOUR, HOUR, 501).unwrap_err().contains("at most 500"));
    assert!(DashboardQuery::new(i64::MIN, HOUR, HOUR, 1).unwrap_err().contains("`from`"));
    assert!(DashboardQuery::new(0, i64::MAX, i64::MAX, 1).unwrap_err().contains("`to`"));
    assert_eq!(DashboardQuery::auto_bucket(i64::MIN, i64::MAX, 120), 43_200 * 60_000, "no overflow");
    assert_eq!(DashboardQuery::auto_bucket(0, 24 * HOUR, 120), 15 * 60_000);
    assert_eq!(DashboardQuery::auto_bucket(0, 30 * 24 * HOUR, 120), 6 * HOUR);
    assert_eq!(BAND_EDGES, switchyard_core::COMPLEXITY_BAND_EDGES, "the bands of `logs failures`");
    assert_eq!(band(0.1), "low");
    assert_eq!((band(0.5), band(2.0 / 3.0)), ("mid", "high"));
}

#[test]
fn a_large_old_log_is_filled_in_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let mut store = Store::open(&path).unwrap();
    let rows: Vec<DecisionRecord> =
        (0..12_001).map(|i| routed(&format!("r{i:05}"), i, "small", (10, 5), "chat", 0.5)).collect();
    store.insert(&rows).unwrap();
    store
        .conn()
        .execute_batch("UPDATE decisions SET attempts_n = NULL, deployment = NULL; PRAGMA user_version = 8;")
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let unfilled: i64 =
        store.conn().query_row("SELECT COUNT(*) FROM decisions WHERE attempts_n IS NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(unfilled, 0, "every batch, the last partial one too");
    let d = store.dashboard(&DashboardQuery::new(0, HOUR, HOUR, 0).unwrap(), &pricing(None)).unwrap();
    assert_eq!(d.deployments.iter().map(|x| x.calls).sum::<u64>(), 12_001);
}
