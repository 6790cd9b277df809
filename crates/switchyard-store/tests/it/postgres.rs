//! The decision log in a real PostgreSQL (a cluster made by initdb for each test, on a unix socket): a schema
//! newer than the binary and bad URLs are clear errors, a row PostgreSQL refuses is counted without holding the
//! others, an older table gains the new columns, feedback finds only requests made with the same key, and the dashboard reads the same view as from SQLite. (The
//! server writing there, through outages, is tested in switchyard-server; the CLI reading it, and a URL it
//! cannot read, in switchyard.)

use std::sync::atomic::Ordering::Relaxed;

use switchyard_testkit::pg::Postgres;

#[test]
fn a_schema_newer_than_the_binary_and_a_bad_url_are_clear_errors() {
    let pg = Postgres::start();
    let location = switchyard_store::Location::Postgres(pg.url.clone());
    drop(switchyard_store::Database::open(&location).unwrap());
    pg.sql("UPDATE switchyard_meta SET value = 99 WHERE key = 'schema_version'");
    let err = switchyard_store::Database::open(&location).err().unwrap().to_string();
    assert!(err.contains("schema version 99") && err.contains("upgrade switchyard"), "{err}");

    // A wrong password: the server says so, and the message names the setting without the password.
    let wrong = pg.url.replace(pg.password, "not-the-password");
    let err = switchyard_store::Database::open(&switchyard_store::Location::Postgres(wrong)).err().unwrap().to_string();
    assert!(err.contains("password authentication failed") && err.contains("check log.url"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    // Nobody listens at this socket (a folder no server uses): the error names the URL (without the password)
    // and what to check.
    let nobody = tempfile::tempdir().unwrap();
    let url = format!("postgres://app:hunter2@/log?host={}", nobody.path().display());
    let err = switchyard_store::Database::open(&switchyard_store::Location::Postgres(url)).err().unwrap().to_string();
    assert!(err.contains("app:***@/log") && !err.contains("hunter2") && err.contains("check log.url"), "{err}");
}

#[test]
fn a_row_postgres_refuses_is_counted_and_does_not_hold_the_others() {
    use switchyard_store::{DecisionRecord, LogWriter, PromptLogging, WriterOptions};
    let pg = Postgres::start();
    drop(switchyard_store::Database::open(&switchyard_store::Location::Postgres(pg.url.clone())).unwrap());
    // A rule the rows know nothing of (as a DBA might add): one row breaks it.
    pg.sql("ALTER TABLE decisions ADD CONSTRAINT test_refuses CHECK (user_id IS DISTINCT FROM 'refuse-me')");
    let dir = tempfile::tempdir().unwrap();
    let writer = LogWriter::start(&WriterOptions {
        path: dir.path().join("unused.sqlite"),
        url: Some(pg.url.clone()),
        spool: dir.path().join("spool.sqlite"),
        required: true,
        queue_capacity: 100,
        retention_days: None,
    })
    .unwrap();
    for i in 0..10 {
        let mut r = DecisionRecord {
            request_id: format!("r{i}"),
            ts_ms: switchyard_store::now_ms(),
            endpoint: "route".into(),
            status: 200,
            user: (i == 4).then(|| "refuse-me".to_string()),
            ..DecisionRecord::default()
        };
        r.set_prompt("hello", PromptLogging::Hash);
        assert!(writer.log(r));
    }
    writer.flush();
    let stats = writer.stats();
    let read = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    assert_eq!((read(&stats.written), read(&stats.failed), read(&stats.spooled)), (9, 1, 0));
    assert_eq!(pg.sql("SELECT COUNT(*) FROM decisions"), "9");
    assert_eq!(pg.sql("SELECT COUNT(*) FROM decisions WHERE request_id = 'r4'"), "0");
}

#[test]
fn a_version_2_table_gains_the_later_columns_and_keeps_its_rows() {
    use switchyard_store::{Database, DecisionRecord, Location, PromptLogging};
    let pg = Postgres::start();
    let location = Location::Postgres(pg.url.clone());
    let record = |id: &str| {
        let mut r = DecisionRecord {
            request_id: id.into(),
            ts_ms: switchyard_store::now_ms(),
            endpoint: "route".into(),
            status: 200,
            ..DecisionRecord::default()
        };
        r.set_prompt("hello", PromptLogging::Hash);
        r
    };
    let mut db = Database::open(&location).unwrap();
    db.insert(&[record("old")]).unwrap();
    drop(db);
    // The table as a version 2 build left it.
    pg.sql(
        "ALTER TABLE decisions DROP COLUMN propensity, DROP COLUMN explored, DROP COLUMN usage_estimated, \
         DROP COLUMN cache_hit, DROP COLUMN cache_saved_usd, DROP COLUMN response, DROP COLUMN response_sha256, \
         DROP COLUMN response_truncated, DROP COLUMN finish_reason, DROP COLUMN tool_calls; \
         UPDATE switchyard_meta SET value = 2 WHERE key = 'schema_version'",
    );
    let mut db = Database::open(&location).unwrap();
    let mut explored = record("new");
    (explored.propensity, explored.explored, explored.usage_estimated) = (Some(0.04), true, true);
    (explored.cache_hit, explored.cache_saved_usd) = (true, Some(0.5));
    let answer = serde_json::json!({"choices": [{"message": {"content": "an answer"}, "finish_reason": "stop"}]});
    explored.set_response(&answer, switchyard_store::ResponseLogging::Truncate, 2);
    let conversation =
        serde_json::json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]);
    (explored.domain, explored.complexity) = (Some("law".into()), Some(0.25));
    explored.set_messages(
        Some(&conversation),
        switchyard_store::PromptLogging::Full,
        switchyard_store::ResponseLogging::Full,
        100,
    );
    db.insert(&[explored]).unwrap();
    let rows = pg.sql(
        "SELECT request_id || '|' || COALESCE(propensity::text, '-') || '|' || COALESCE(explored::text, '-') \
         || '|' || COALESCE(usage_estimated::text, '-') FROM decisions ORDER BY request_id",
    );
    assert_eq!(rows.trim(), "new|0.04|true|true\nold|-|-|-");
    assert_eq!(pg.sql("SELECT value FROM switchyard_meta WHERE key = 'schema_version'").trim(), "9");
    let mut read = Vec::new();
    switchyard_store::LogRows::each_logged(&mut db, i64::MIN, &mut |r| read.push(r.record)).unwrap();
    let mut flags: Vec<(&str, bool, bool, Option<f64>)> =
        read.iter().map(|r| (r.request_id.as_str(), r.usage_estimated, r.cache_hit, r.cache_saved_usd)).collect();
    flags.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(flags, [("new", true, true, Some(0.5)), ("old", false, false, None)]);
    let new = read.iter().find(|r| r.request_id == "new").unwrap();
    assert_eq!(
        (new.response.as_deref(), new.response_truncated, new.finish_reason.as_deref()),
        (Some("an"), true, Some("stop"))
    );
    assert_eq!(new.messages.as_ref(), Some(&conversation), "the conversation survives the round trip");
    assert_eq!((new.domain.as_deref(), new.complexity), (Some("law"), Some(0.25)));
}

/// Feedback in PostgreSQL finds a request only with the key it was made with (`IS NOT DISTINCT FROM`: no key
/// finds only requests made without one); another key's id is answered as an unknown one.
#[test]
fn feedback_finds_only_requests_made_with_the_same_key() {
    use switchyard_store::{Database, DecisionRecord, Feedback, FeedbackOutcome, Location, StoreError};
    let pg = Postgres::start();
    let mut db = Database::open(&Location::Postgres(pg.url.clone())).unwrap();
    let record = |id: &str, key: Option<&str>, endpoint: &str| {
        let mut r = DecisionRecord {
            request_id: id.into(),
            ts_ms: 1_000,
            endpoint: endpoint.into(),
            api_key: key.map(str::to_string),
            chosen_model: Some("m".into()),
            status: 200,
            ..DecisionRecord::default()
        };
        r.set_prompt("hello", switchyard_store::PromptLogging::Full);
        r
    };
    let mut keyed = record("keyed", Some("team-a"), "chat");
    (keyed.experiment, keyed.arm) = (Some("tone".into()), Some("formal".into()));
    db.insert(&[keyed, record("open", None, "route")]).unwrap();
    let fb = |id: &str, key: Option<&str>| Feedback {
        request_id: id.into(),
        api_key: key.map(str::to_string),
        score: 0.0,
        comment: None,
        ts_ms: 2_000,
    };
    for (id, key) in [("keyed", Some("team-b")), ("keyed", None), ("open", Some("team-a")), ("never", None)] {
        let err = db.feedback(&fb(id, key)).unwrap_err();
        assert!(matches!(&err, StoreError::UnknownRequest(i) if i == id), "{id} {key:?}: {err}");
    }
    let stolen = db.feedback(&fb("keyed", Some("team-b"))).unwrap_err().to_string();
    let never = db.feedback(&fb("never", Some("team-b"))).unwrap_err().to_string();
    assert_eq!(stolen.replace("keyed", "ID"), never.replace("never", "ID"));
    assert_eq!(pg.sql("SELECT COUNT(*) FROM feedback").trim(), "0", "refused feedback stored nothing");
    let own = db.feedback(&fb("keyed", Some("team-a"))).unwrap();
    assert_eq!((own.outcome, own.answered_upstream()), (FeedbackOutcome::Recorded, true));
    assert_eq!(own.arm, Some(("tone".into(), "formal".into())), "the receipt names the request's arm");
    let open = db.feedback(&fb("open", None)).unwrap();
    assert_eq!((open.outcome, open.answered_upstream()), (FeedbackOutcome::Recorded, false), "a /v1/route decision");
    assert_eq!(db.feedback(&fb("open", None)).unwrap().outcome, FeedbackOutcome::Replaced(2));
}

/// Whether two JSON values are equal but for sums that may differ in the last bits (rows summed in another
/// order).
fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

/// Requests of two models over two hours: one fell back from a failed deployment, one is a `/v1/route`
/// decision, one a cache hit.
fn dashboard_records() -> Vec<switchyard_store::DecisionRecord> {
    use switchyard_store::{Attempt, DecisionRecord, Estimate, PromptLogging};
    let record = |id: &str, ts_ms: i64, model: &str, tokens: Option<(u64, u64)>, price: f64| {
        let attempt = |deployment: &str, status| Attempt {
            model: model.into(),
            deployment: Some(deployment.into()),
            status: Some(status),
            latency_ms: 20.0,
            error: None,
        };
        let mut r = DecisionRecord {
            request_id: id.into(),
            ts_ms,
            endpoint: if tokens.is_some() { "chat" } else { "route" }.into(),
            status: 200,
            chosen_model: Some(model.into()),
            decided_model: Some(model.into()),
            estimates: vec![
                Estimate { model: "big".into(), p: 0.9, cost_usd: 0.01 },
                Estimate { model: "small".into(), p: 0.6, cost_usd: 0.001 },
            ],
            attempts: tokens.map(|_| vec![attempt(&format!("{model}-1"), 200)]).unwrap_or_default(),
            input_tokens: tokens.map(|t| t.0),
            output_tokens: tokens.map(|t| t.1),
            cost_usd: tokens.map(|(i, o)| (i + o) as f64 * price / 1e6),
            latency_ms: 50.0,
            api_key: Some("team".into()),
            domain: Some("math".into()),
            complexity: Some(0.5),
            ..DecisionRecord::default()
        };
        r.set_prompt(id, PromptLogging::Full);
        r
    };
    let mut fell_back = record("c", 3_600_500, "small", Some((300, 100)), 1.0);
    fell_back.attempts.insert(
        0,
        Attempt {
            model: "big".into(),
            deployment: Some("big-1".into()),
            status: Some(503),
            latency_ms: 3.0,
            error: None,
        },
    );
    let mut hit = record("e", 3_600_700, "small", Some((50, 10)), 1.0);
    (hit.cache_hit, hit.cost_usd, hit.cache_saved_usd, hit.attempts) = (true, Some(0.0), Some(0.01), Vec::new());
    vec![
        record("a", 1_000, "big", Some((1_000, 500)), 10.0),
        record("b", 2_000, "small", Some((2_000, 800)), 1.0),
        fell_back,
        record("d", 3_600_600, "big", None, 10.0),
        hit,
    ]
}

/// The dashboard reads the same sums from PostgreSQL as from SQLite, and a table of schema 8 gets the derived
/// columns and feedback scores filled in when a build of schema 9 opens it.
#[test]
fn the_dashboard_reads_the_same_view_from_postgresql_as_from_sqlite() {
    use switchyard_store::{DashboardQuery, Database, Feedback, Location, Pricing, Store};
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = Store::open(&dir.path().join("log.sqlite")).unwrap();
    let mut postgres = Database::open(&Location::Postgres(pg.url.clone())).unwrap();
    let records = dashboard_records();
    sqlite.insert(&records).unwrap();
    postgres.insert(&records).unwrap();
    for (id, score) in [("a", 1.0), ("b", 0.0), ("c", 1.0)] {
        let fb = Feedback { request_id: id.into(), api_key: Some("team".into()), score, comment: None, ts_ms: 1 };
        sqlite.feedback(&fb).unwrap();
        postgres.feedback(&fb).unwrap();
    }
    let price = |m: &str| match m {
        "big" => Some((10.0, 10.0)),
        "small" => Some((1.0, 1.0)),
        _ => None,
    };
    let pricing = Pricing { price: &price, candidates: vec![], reference: None };
    let query = DashboardQuery::new(0, 7_200_000, 3_600_000, 10).unwrap();
    let comparable = |d: switchyard_store::Dashboard| {
        let mut v = serde_json::to_value(d).unwrap();
        for volatile in ["generated_ms", "query_ms", "log"] {
            v.as_object_mut().unwrap().remove(volatile);
        }
        v
    };
    let from_sqlite = comparable(sqlite.dashboard(&query, &pricing).unwrap());
    let from_postgres = comparable(postgres.dashboard(&query, &pricing).unwrap());
    assert_eq!(from_postgres["totals"]["requests"], 5);
    assert_eq!(from_postgres["totals"]["scored"], 3);
    assert_eq!(from_postgres["savings"]["priced_requests"], 3);
    assert!(close(&from_sqlite, &from_postgres), "the same view from either backend:\n{from_sqlite}\n{from_postgres}");

    // A table of schema 8: the derived columns and scores empty, no covering index.
    pg.sql(
        "DROP INDEX decisions_stats; UPDATE decisions SET chosen_p = NULL, attempts_n = NULL, deployment = NULL, \
         upstream_ms = NULL, failed_deployments = NULL, score = NULL; \
         UPDATE switchyard_meta SET value = 8 WHERE key = 'schema_version'",
    );
    drop(postgres);
    let mut postgres = Database::open(&Location::Postgres(pg.url.clone())).unwrap();
    assert!(close(&comparable(postgres.dashboard(&query, &pricing).unwrap()), &from_sqlite), "filled in on open");
    assert_eq!(pg.sql("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'decisions_stats'").trim(), "1");
}
