//! Steering and closing the loop, in-process with the default router and the real encoder: rules (header,
//! metadata, keywords, regex, length) firing before the learned policy, sticky A/B arms with their own
//! routers and knobs, feedback on logged requests, arm statistics, and hot reloads through the admin endpoint.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

struct Setup {
    state: Arc<AppState>,
    dir: tempfile::TempDir,
}

fn setup(extra: &str) -> Setup {
    setup_logging(extra, true)
}

fn setup_logging(extra: &str, log_enabled: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.sqlite");
    let router_path = switchyard_testkit::default_router();
    let text = format!("[log]\nenabled = {log_enabled}\npath = {log:?}\n[router]\npath = {router_path:?}\n{extra}");
    let config = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    let router = Router::load(&router_path).unwrap();
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    Setup { state: Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap()), dir }
}

async fn call(s: &Setup, uri: &str, headers: &[(&str, &str)], body: Value) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::post(uri).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app(s.state.clone()).oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn metrics(s: &Setup) -> String {
    let response = app(s.state.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

const RULES: &str = r#"
[tiers]
budget = ["gemini-1.5-flash", "gemini-2.0-flash"]

[[rules]]
name = "enterprise"
when = { header = "x-customer-tier", equals = "enterprise" }
then = { model = "gpt-4o" }

[[rules]]
name = "legal"
when = { keywords = ["contract", "lawsuit"] }
then = { min_quality = 0.95 }

[[rules]]
name = "free-plan"
when = { metadata = "plan", equals = "free" }
then = { tier = "budget" }

[[rules]]
name = "proofs"
when = { regex = '(?i)\bprove\b', max_chars = 200 }
then = { model = "o1-mini" }
"#;

#[tokio::test]
async fn rules_fire_before_the_learned_policy_and_say_so() {
    let s = setup(RULES);
    let route = |headers: &'static [(&'static str, &'static str)], body: Value| {
        let s = &s;
        async move { call(s, "/v1/route", headers, body).await }
    };

    let (status, h, v) = route(&[("x-customer-tier", "Enterprise")], json!({"prompt": "Say hello to the team."})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["model"].as_str(), v["rule"].as_str()), (Some("gpt-4o"), Some("enterprise")));
    assert_eq!(v["ranking"][0], "gpt-4o");
    assert!(v["reason"].as_str().unwrap().contains("rule \"enterprise\""), "{v}");
    assert_eq!(header(&h, "x-switchyard-rule"), "enterprise");

    let (_, _, v) = route(&[], json!({"prompt": "Review this contract for risky clauses."})).await;
    assert_eq!(v["rule"], "legal");
    assert_eq!(v["policy"]["knob"]["min_quality"], 0.95);

    let (_, _, v) = route(&[], json!({"prompt": "Write a poem about autumn.", "metadata": {"plan": "free"}})).await;
    assert_eq!(v["rule"], "free-plan");
    assert!(["gemini-1.5-flash", "gemini-2.0-flash"].contains(&v["model"].as_str().unwrap()), "{v}");
    assert_eq!(v["ranking"].as_array().unwrap().len(), 2, "{v}");

    let (_, _, v) = route(&[], json!({"prompt": "Prove that there are infinitely many primes."})).await;
    assert_eq!((v["rule"].as_str(), v["model"].as_str()), (Some("proofs"), Some("o1-mini")));
    let long = format!("Prove it. {}", "Some context. ".repeat(30));
    let (_, _, v) = route(&[], json!({"prompt": long})).await;
    assert!(v["rule"].is_null(), "max_chars keeps the rule off long prompts: {v}");

    // No rule: the learned policy alone.
    let (_, h, v) = route(&[], json!({"prompt": "Write a poem about autumn."})).await;
    assert!(v["rule"].is_null() && header(&h, "x-switchyard-rule").is_empty());

    // The rule is in the decision log and the metrics.
    s.state.log.as_ref().unwrap().flush();
    let store = switchyard_store::Store::open(&s.dir.path().join("decisions.sqlite")).unwrap();
    let mut rules = Vec::new();
    store.for_each(i64::MIN, |r| rules.push(r.record.rule)).unwrap();
    assert_eq!(
        rules,
        [Some("enterprise"), Some("legal"), Some("free-plan"), Some("proofs"), None, None].map(|r| r.map(String::from))
    );
    let text = metrics(&s).await;
    assert!(text.contains("switchyard_rule_matches_total{rule=\"enterprise\"} 1"), "{text}");
}

#[test]
fn rules_naming_unknown_models_or_tiers_are_refused_at_start() {
    for (extra, needle) in [
        ("[[rules]]\nname = \"x\"\nwhen = { min_chars = 1 }\nthen = { model = \"gpt-9\" }\n", "gpt-9"),
        ("[tiers]\ncheap = [\"nope\"]\n", "nope"),
    ] {
        let config =
            Config::parse(&format!("[log]\nenabled = false\n{extra}"), std::path::Path::new("t.toml")).unwrap();
        let router = Router::load(&switchyard_testkit::default_router()).unwrap();
        let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
        let err = AppState::new(router, Arc::new(encoder), config).err().unwrap().to_string();
        assert!(err.contains(needle) && err.contains("neither in [[models]] nor in the router"), "{err}");
    }
}

/// Of the users `user-0` to `user-119`, those the hash puts in the frugal arm of "frugal-test".
const FRUGAL_USERS: usize = 59;

#[tokio::test]
async fn experiment_arms_are_sticky_weighted_and_compared() {
    let arm_router = switchyard_testkit::default_router();
    let s = setup(&format!(
        "[experiment]\nname = \"frugal-test\"\nkey = \"user\"\n\
         [[experiment.arms]]\nname = \"control\"\nweight = 1\n\
         [[experiment.arms]]\nname = \"frugal\"\nweight = 1\nmin_quality = 0.0\nrouter = {arm_router:?}\n"
    ));
    // A prompt the default knob sends to a dearer model than the frugal arm's bar of 0 does.
    let prompt = "Derive the Schwarzschild metric from the vacuum Einstein equations.";
    let mut arm_of: HashMap<String, String> = HashMap::new();
    let mut ids: Vec<(String, String)> = Vec::new();
    for user in 0..120 {
        let user_id = format!("user-{user}");
        // Two requests per user, by header and by body: the same arm both times.
        for how in 0..2 {
            let (headers, body): (Vec<(&str, &str)>, Value) = if how == 0 {
                (vec![("x-switchyard-user", user_id.as_str())], json!({"prompt": prompt}))
            } else {
                (vec![], json!({"prompt": prompt, "user": user_id}))
            };
            let (status, h, v) = call(&s, "/v1/route", &headers, body).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            let arm = header(&h, "x-switchyard-arm").to_string();
            assert_eq!(header(&h, "x-switchyard-experiment"), "frugal-test");
            assert_eq!(v["arm"], arm.as_str());
            let previous = arm_of.entry(user_id.clone()).or_insert_with(|| arm.clone());
            assert_eq!(previous, &arm, "{user_id} switched arms");
            if arm == "frugal" {
                assert_eq!(v["policy"]["knob"]["min_quality"], 0.0, "{v}");
            }
            ids.push((v["request_id"].as_str().unwrap().to_string(), arm));
        }
    }
    // Each user's arm is the documented hash: SHA-256 of the experiment name and the user id (a NUL between),
    // its first 53 bits read as a point in [0, 1), in the first arm's half or the second's. For these 120 users
    // that puts 59 in the frugal arm, whatever the machine.
    for (user, arm) in &arm_of {
        let digest = Sha256::digest(format!("frugal-test\u{0}{user}").as_bytes());
        let point = (u64::from_be_bytes(digest[..8].try_into().unwrap()) >> 11) as f64 / (1u64 << 53) as f64;
        assert_eq!(arm, if point < 0.5 { "control" } else { "frugal" }, "{user}");
    }
    let frugal = arm_of.values().filter(|a| *a == "frugal").count();
    assert_eq!(frugal, FRUGAL_USERS, "users in the frugal arm");

    // Feedback: the control arm does better. `logs stats` compares arms with intervals.
    for (id, arm) in &ids {
        let score = if arm == "control" { 1.0 } else { 0.0 };
        let (status, _, v) = call(&s, "/v1/feedback", &[], json!({"request_id": id, "score": score})).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let store = switchyard_store::Store::open(&s.dir.path().join("decisions.sqlite")).unwrap();
    let stats = switchyard_store::stats(&store, i64::MIN).unwrap();
    let arms: Vec<(&str, u64)> = stats.by_arm.iter().map(|a| (a.arm.as_str(), a.calls)).collect();
    assert_eq!(arms, [("control", (240 - 2 * frugal) as u64), ("frugal", 2 * frugal as u64)]);
    let diff = stats.by_arm[1].feedback_vs_first.unwrap();
    assert_eq!(diff.mean, -1.0);
    assert!(stats.by_arm[1].spend_per_call.unwrap().mean < stats.by_arm[0].spend_per_call.unwrap().mean);

    let text = metrics(&s).await;
    let label = format!("arm=\"frugal-test/frugal\"}} {}", 2 * frugal);
    assert!(text.lines().any(|l| l.starts_with("switchyard_requests_total") && l.ends_with(&label)), "{text}");
    let label = format!("switchyard_arm_requests_total{{experiment=\"frugal-test\",arm=\"frugal\"}} {}", 2 * frugal);
    assert!(text.contains(&label), "{text}");
}

#[tokio::test]
async fn feedback_is_attached_replaced_and_checked() {
    let s = setup("");
    let (_, h, v) = call(&s, "/v1/route", &[], json!({"prompt": "What is the capital of France?"})).await;
    let id = v["request_id"].as_str().unwrap().to_string();
    assert_eq!(header(&h, "x-switchyard-request-id"), id);

    let (status, _, v) = call(&s, "/v1/feedback", &[], json!({"request_id": id, "score": 0.25})).await;
    assert_eq!((status, v["status"].as_str()), (StatusCode::OK, Some("recorded")));
    let (status, _, v) =
        call(&s, "/v1/feedback", &[], json!({"request_id": id, "score": 1, "comment": "right answer"})).await;
    assert_eq!((status, v["status"].as_str(), v["updates"].as_u64()), (StatusCode::OK, Some("replaced"), Some(2)));

    for (body, status, code) in [
        (json!({"request_id": "sy-unknown", "score": 1}), StatusCode::NOT_FOUND, "unknown_request"),
        (json!({"request_id": id, "score": 7}), StatusCode::BAD_REQUEST, "invalid_score"),
        (json!({"request_id": id, "score": "good"}), StatusCode::BAD_REQUEST, "invalid_type"),
        (json!({"score": 1}), StatusCode::BAD_REQUEST, "missing_request_id"),
    ] {
        let (got, _, v) = call(&s, "/v1/feedback", &[], body.clone()).await;
        assert_eq!((got, v["error"]["code"].as_str()), (status, Some(code)), "{body}: {v}");
    }

    // The latest feedback is what export writes.
    let store = switchyard_store::Store::open(&s.dir.path().join("decisions.sqlite")).unwrap();
    let mut out = Vec::new();
    let summary = switchyard_store::export(&store, i64::MIN, &mut out).unwrap();
    assert_eq!(summary.written, 1);
    let row: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((row["score"].as_f64(), row["prompt"].as_str()), (Some(1.0), Some("What is the capital of France?")));

    // With the log off, feedback says why it cannot be stored.
    let off = setup_logging("", false);
    let (status, _, v) = call(&off, "/v1/feedback", &[], json!({"request_id": id, "score": 1})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("log_disabled")));
}

#[tokio::test]
async fn admin_reload_swaps_routers_and_keeps_them_on_failure() {
    // Admin endpoints are off without admin keys.
    let s = setup("");
    let (status, _, v) = call(&s, "/admin/reload", &[], json!({})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("admin_disabled")));

    // A router folder we can break.
    let dir = tempfile::tempdir().unwrap();
    let router_dir = dir.path().join("router");
    std::fs::create_dir(&router_dir).unwrap();
    for f in ["manifest.json", "router.safetensors"] {
        std::fs::copy(switchyard_testkit::default_router().join(f), router_dir.join(f)).unwrap();
    }
    let log = dir.path().join("decisions.sqlite");
    let text = format!("[log]\npath = {log:?}\n[router]\npath = {router_dir:?}\n[server]\nadmin_keys = [\"adm-1\"]\n");
    let config = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    let state = Arc::new(AppState::new(Router::load(&router_dir).unwrap(), Arc::new(encoder), config).unwrap());
    let s = Setup { state, dir };

    let (status, _, _) = call(&s, "/admin/reload", &[("authorization", "Bearer wrong")], json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let admin = [("authorization", "Bearer adm-1")];
    let (status, _, v) = call(&s, "/admin/reload", &admin, json!({})).await;
    assert_eq!((status, v["generation"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
    assert_eq!(v["models"].as_array().unwrap().len(), 15);

    std::fs::write(router_dir.join("router.safetensors"), b"not weights").unwrap();
    let (status, _, v) = call(&s, "/admin/reload", &admin, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("router.safetensors") && message.contains("unchanged"), "{message}");
    assert_eq!(s.state.routers().generation, 2);
    let (status, _, _) = call(&s, "/v1/route", &[], json!({"prompt": "Still routing?"})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics(&s).await.contains("switchyard_router_generation 2"));
}

/// The experiment comparison's counters after one scored `/v1/route` decision in `arm` (of experiment "e").
fn check_arm_counters(exported: &str, arm: &str) {
    // The experiment comparison: the scored request's arm has one score of 1.
    for line in [
        format!("switchyard_arm_feedback_total{{experiment=\"e\",arm=\"{arm}\"}} 1"),
        format!("switchyard_arm_feedback_score_total{{experiment=\"e\",arm=\"{arm}\"}} 1"),
        // A /v1/route decision has no answer, so no finish reason: it is not judged for cut answers.
        format!("switchyard_arm_judged_total{{experiment=\"e\",arm=\"{arm}\"}} 0"),
        format!("switchyard_arm_cut_total{{experiment=\"e\",arm=\"{arm}\"}} 0"),
    ] {
        assert!(exported.contains(&line), "{line} in\n{exported}");
    }
    let latency = format!("switchyard_arm_latency_seconds_total{{experiment=\"e\",arm=\"{arm}\"}} ");
    let seconds: f64 = exported.lines().find_map(|l| l.strip_prefix(&latency)).unwrap().parse().unwrap();
    assert!(seconds > 0.0 && seconds < 60.0, "{seconds}");
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_the_server_exports() {
    let learning = tempfile::tempdir().unwrap();
    let s = setup(&format!(
        "{RULES}\n[experiment]\nname = \"e\"\n[[experiment.arms]]\nname = \"a\"\nweight = 1\n\
         [[experiment.arms]]\nname = \"b\"\nweight = 1\n[learning]\nonline = true\nstate_file = {:?}\n",
        learning.path().join("online.json")
    ));
    let (status, headers, _) = call(&s, "/v1/route", &[], json!({"prompt": "Prove that 2 + 2 = 4."})).await;
    assert_eq!(status, StatusCode::OK);
    // One feedback score, so that the online-learning series have a sample.
    let id = headers["x-switchyard-request-id"].to_str().unwrap().to_string();
    let (status, _, _) = call(&s, "/v1/feedback", &[], json!({"request_id": id, "score": 1})).await;
    assert_eq!(status, StatusCode::OK);
    let exported = metrics(&s).await;
    check_arm_counters(&exported, headers["x-switchyard-arm"].to_str().unwrap());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/grafana.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut queried = std::collections::BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "duplicate panel id");
        assert!(!panel["title"].as_str().unwrap().is_empty());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("switchyard_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                assert!(exported.contains(&format!("# TYPE {family} ")), "{expr}: {family} is not exported");
                queried.insert(family.to_string());
            }
        }
    }
    // The issue's list: traffic and spend by model, decision and upstream latency, fallbacks, cooldowns, arms.
    for needed in [
        "switchyard_requests_total",
        "switchyard_cost_usd_total",
        "switchyard_decision_seconds",
        "switchyard_upstream_seconds",
        "switchyard_fallbacks_total",
        "switchyard_cooldowns_total",
        "switchyard_upstream_cooling",
        "switchyard_arm_requests_total",
        "switchyard_arm_cost_usd_total",
        "switchyard_arm_feedback_score_total",
        "switchyard_arm_feedback_total",
        "switchyard_arm_latency_seconds_total",
        "switchyard_arm_cut_total",
        "switchyard_arm_judged_total",
        "switchyard_predicted_success",
        "switchyard_observed_success",
    ] {
        assert!(queried.contains(needed), "the dashboard has no panel on {needed}");
    }
    // The alerting rules query only exported metrics too.
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/prometheus-rules.yml"),
    )
    .unwrap();
    for name in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("switchyard_"))
    {
        assert!(exported.contains(&format!("# TYPE {name} ")), "prometheus-rules.yml: {name} is not exported");
    }
}

/// The alerting rules are valid, and their unit tests pass: the drift alert fires for a model and domain
/// whose observed success falls 15 points below the router's prediction, and for no other.
#[test]
fn the_prometheus_rules_pass_promtool() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    for args in [["check", "rules", "prometheus-rules.yml"], ["test", "rules", "prometheus-rules.test.yml"]] {
        let out = std::process::Command::new("promtool").args(args).current_dir(&dir).output().unwrap_or_else(|e| {
            panic!("promtool is needed for this test ({e}): install the Debian package `prometheus`")
        });
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
