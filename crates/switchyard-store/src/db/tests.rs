use super::*;
use crate::record::PromptLogging;
use FeedbackOutcome::Recorded;

pub(crate) fn record(id: &str, ts_ms: i64, model: &str) -> DecisionRecord {
    let mut r = DecisionRecord {
        request_id: id.into(),
        ts_ms,
        endpoint: "chat".into(),
        messages_count: 1,
        chosen_model: Some(model.into()),
        decided_model: Some(model.into()),
        status: 200,
        latency_ms: 12.5,
        estimates: vec![Estimate { model: model.into(), p: 0.8, cost_usd: 0.001 }],
        attempts: vec![Attempt {
            model: model.into(),
            deployment: None,
            status: Some(200),
            latency_ms: 10.0,
            error: None,
        }],
        ..DecisionRecord::default()
    };
    r.set_prompt(&format!("prompt of {id}"), PromptLogging::Full);
    r
}

#[test]
fn records_round_trip_with_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("sub/log.sqlite")).unwrap();
    let mut a = record("a", 1000, "m1");
    a.arm = Some("treatment".into());
    a.experiment = Some("tone".into());
    (a.domain, a.complexity) = (Some("math".into()), Some(0.625));
    a.policy = Some(serde_json::json!({"knob": {"min_quality": 0.7}}));
    store.insert(&[a.clone(), record("b", 2000, "m2")]).unwrap();
    let fb = |id: &str, score| Feedback { request_id: id.into(), api_key: None, score, comment: None, ts_ms: 1 };
    let first = store.feedback(&fb("a", 0.25)).unwrap();
    assert_eq!((first.outcome, first.endpoint.as_str(), first.answered_upstream()), (Recorded, "chat", true));
    assert_eq!(first.arm, Some(("tone".into(), "treatment".into())), "the receipt names the request's arm");
    assert_eq!(store.feedback(&fb("a", 1.0)).unwrap().outcome, FeedbackOutcome::Replaced(2));
    assert!(matches!(store.feedback(&fb("zzz", 1.0)), Err(StoreError::UnknownRequest(id)) if id == "zzz"));
    assert!(matches!(store.feedback(&fb("a", 1.5)), Err(StoreError::BadScore(_))));

    let mut rows = Vec::new();
    store.for_each(0, |r| rows.push(r)).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].record, a);
    assert_eq!(rows[0].feedback, Some(1.0), "the latest feedback wins");
    assert_eq!(rows[1].feedback, None);
    let mut later = Vec::new();
    store.for_each(1500, |r| later.push(r.record.request_id)).unwrap();
    assert_eq!(later, ["b"]);
}

#[test]
fn feedback_finds_only_requests_of_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
    let mut keyed = record("keyed", 1000, "m");
    keyed.api_key = Some("team-a".into());
    store.insert(&[keyed, record("open", 1000, "m")]).unwrap();
    let fb = |id: &str, key: Option<&str>| Feedback {
        request_id: id.into(),
        api_key: key.map(str::to_string),
        score: 0.0,
        comment: None,
        ts_ms: 1,
    };
    let unknown = |r: Result<FeedbackReceipt, StoreError>| matches!(r, Err(StoreError::UnknownRequest(_)));
    // Another key, or no key, finds nothing, exactly as for an id never issued (the same error and text).
    assert!(unknown(store.feedback(&fb("keyed", Some("team-b")))));
    assert!(unknown(store.feedback(&fb("keyed", None))));
    assert!(unknown(store.feedback(&fb("open", Some("team-a")))));
    let other = store.feedback(&fb("keyed", Some("team-b"))).unwrap_err().to_string();
    let never = store.feedback(&fb("never", Some("team-b"))).unwrap_err().to_string();
    assert_eq!(other.replace("keyed", "ID"), never.replace("never", "ID"));
    assert_eq!(store.feedback(&fb("keyed", Some("team-a"))).unwrap().outcome, Recorded);
    assert_eq!(store.feedback(&fb("open", None)).unwrap().outcome, Recorded);
    let mut scored = Vec::new();
    store.for_each(0, |r| scored.push(r.feedback)).unwrap();
    assert_eq!(scored, [Some(0.0), Some(0.0)], "the refused feedback stored nothing");
}

#[test]
fn retention_deletes_old_requests_and_their_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
    store.insert(&[record("old", 1000, "m"), record("new", 5000, "m")]).unwrap();
    store.feedback(&Feedback { request_id: "old".into(), api_key: None, score: 1.0, comment: None, ts_ms: 1 }).unwrap();
    assert_eq!(store.prune(3000).unwrap(), 1);
    assert_eq!(store.count().unwrap(), 1);
    let orphans: i64 = store.conn.query_row("SELECT COUNT(*) FROM feedback", [], |r| r.get(0)).unwrap();
    assert_eq!(orphans, 0);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = Store::open(&path).err().unwrap().to_string();
    assert!(err.contains("log.sqlite") && err.contains("not a switchyard decision log"), "{err}");
}

#[test]
fn a_version_1_file_gains_the_later_columns_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    {
        // The version 1 schema: the same table without api_key.
        let conn = Connection::open(&path).unwrap();
        let v1 = SCHEMA
            .replace(",\n    api_key TEXT,\n    session TEXT,\n    propensity REAL,\n    explored INTEGER", "")
            .replace(",\n    usage_estimated INTEGER,\n    cache_hit INTEGER,\n    cache_saved_usd REAL", "")
            .replace(
                ",\n    response TEXT,\n    response_sha256 TEXT,\n    response_truncated INTEGER,\n    finish_reason \
                 TEXT,\n    tool_calls TEXT\n",
                "\n",
            );
        assert!(!v1.contains("api_key"));
        conn.execute_batch(&v1).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1; INSERT INTO decisions (request_id, ts_ms, endpoint, prompt_sha256,
             messages_count, estimates, attempts, status, latency_ms, stream, cost_usd)
             VALUES ('old', 1000, 'chat', 'x', 1, '[]', '[]', 200, 5.0, 0, 0.5);",
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let mut keyed = record("new", 2000, "m");
    keyed.api_key = Some("team-a".into());
    keyed.session = Some(serde_json::json!({"id": "c-1", "turn": 2, "model": "m", "action": "kept"}));
    keyed.cost_usd = Some(0.25);
    keyed.propensity = Some(0.04);
    keyed.explored = true;
    keyed.usage_estimated = true;
    keyed.cache_hit = true;
    keyed.cache_saved_usd = Some(0.125);
    keyed.set_response(
        &serde_json::json!({"choices": [{"message": {"content": "four", "tool_calls": [{"id": "c"}]},
            "finish_reason": "stop"}]}),
        crate::ResponseLogging::Full,
        100,
    );
    store.insert(&[keyed.clone()]).unwrap();
    let mut rows = Vec::new();
    store.for_each(0, |r| rows.push(r.record)).unwrap();
    assert_eq!((rows[0].request_id.as_str(), rows[0].api_key.as_deref()), ("old", None));
    assert_eq!((rows[0].propensity, rows[0].explored, rows[0].usage_estimated), (None, false, false));
    assert_eq!(rows[1], keyed);
    assert_eq!(store.spend_of("team-a", 0).unwrap(), 0.25);
    assert_eq!(store.spend_of("team-a", 2001).unwrap(), 0.0);
    assert_eq!(store.spend_of("team-b", 0).unwrap(), 0.0);
    let version: i64 = store.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn wal_mode_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("log.sqlite")).unwrap();
    let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    store.integrity_check().unwrap();
}
