//! The decision log in a real PostgreSQL (a cluster made by initdb for each test, on a unix socket): a schema
//! newer than the binary and bad URLs are clear errors, a row PostgreSQL refuses is counted without holding the
//! others, an older table gains the new columns, and feedback finds only requests made with the same key. (The
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
    assert_eq!(pg.sql("SELECT value FROM switchyard_meta WHERE key = 'schema_version'").trim(), "8");
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
