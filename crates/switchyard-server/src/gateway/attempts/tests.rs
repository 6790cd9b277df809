//! The attempt loop against a stand-in provider: a real HTTP server in this process whose answer each
//! deployment picks by its path (`/ok`, `/fail`, `/refuse`, `/html`), counting the calls it gets.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use switchyard_core::Catalog;

use super::*;
use crate::config::server::KeyLabels;

/// Calls per behaviour.
#[derive(Default)]
struct Calls(Mutex<HashMap<String, usize>>);

impl Calls {
    fn of(&self, behaviour: &str) -> usize {
        self.0.lock().unwrap().get(behaviour).copied().unwrap_or(0)
    }
}

async fn provider(State(calls): State<Arc<Calls>>, Path(behaviour): Path<String>) -> axum::response::Response {
    *calls.0.lock().unwrap().entry(behaviour.clone()).or_default() += 1;
    match behaviour.as_str() {
        "ok" => axum::Json(json!({
            "choices": [{"message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1}
        }))
        .into_response(),
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "refuse" => {
            (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "bad temperature"}}))).into_response()
        }
        _ => ([("content-type", "text/html")], "<html>a proxy's page</html>").into_response(),
    }
}

/// The stand-in provider, serving on a listener this test holds, and its address.
async fn stand_in() -> (String, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let app = axum::Router::new()
        .route("/{behaviour}/chat/completions", axum::routing::post(provider))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), calls)
}

/// A catalog whose models' deployments point at the stand-in's behaviours, e.g. `("a", &["fail", "ok"])`.
fn catalog(base: &str, models: &[(&str, &[&str])]) -> Vec<ModelCard> {
    let mut text = String::new();
    for (name, deployments) in models {
        text.push_str(&format!("[[models]]\nname = \"{name}\"\n"));
        for (i, behaviour) in deployments.iter().enumerate() {
            text.push_str(&format!(
                "[[models.deployments]]\nname = \"{name}-{i}-{behaviour}\"\nbase_url = \"{base}/{behaviour}\"\n"
            ));
        }
    }
    let catalog: Catalog = toml::from_str(&text).unwrap();
    catalog.models
}

struct Rig {
    http: reqwest::Client,
    deployments: Deployments,
    health: Health,
    metrics: Metrics,
    server: ServerConfig,
    cards: Vec<ModelCard>,
}

impl Rig {
    fn new(cards: Vec<ModelCard>, server: ServerConfig) -> Self {
        Self {
            http: reqwest::Client::new(),
            deployments: Deployments::new(&cards),
            health: Health::default(),
            metrics: Metrics::new(KeyLabels::default()),
            server,
            cards,
        }
    }

    async fn attempt(&self, stream: bool) -> (Result<Answered<'_>, GatewayError>, Vec<Attempt>) {
        let gateway = Gateway {
            http: &self.http,
            deployments: &self.deployments,
            health: &self.health,
            metrics: &self.metrics,
            shared: None,
            server: &self.server,
        };
        let cards: Vec<&ModelCard> = self.cards.iter().collect();
        let mut body = json!({"model": "switchyard", "messages": [{"role": "user", "content": "2+2?"}]});
        let mut attempts = Vec::new();
        let result = gateway.attempt(&cards, &mut body, stream, &mut attempts, "sy-test").await;
        (result, attempts)
    }
}

fn tries(attempts: &[Attempt]) -> Vec<(String, Option<u16>)> {
    attempts.iter().map(|a| (a.deployment.clone().unwrap_or_default(), a.status)).collect()
}

#[tokio::test]
async fn a_failing_deployment_falls_back_to_the_next_model() {
    let (base, calls) = stand_in().await;
    let rig = Rig::new(catalog(&base, &[("a", &["fail"]), ("b", &["html"]), ("c", &["ok"])]), ServerConfig::default());
    let (result, attempts) = rig.attempt(false).await;
    let answered = result.ok().unwrap();
    assert_eq!((answered.card.name.as_str(), answered.upstream.name.as_str()), ("c", "c-0-ok"));
    assert_eq!(answered.fallbacks, 2);
    let Reply::Forwarded(forwarded) = answered.reply else { panic!("the answer is a success") };
    assert_eq!(forwarded.usage.map(|u| (u.input, u.output)), Some((12, 1)));
    assert_eq!(
        tries(&attempts),
        [("a-0-fail".to_string(), Some(500)), ("b-0-html".to_string(), Some(200)), ("c-0-ok".to_string(), Some(200))]
    );
    assert!(attempts[1].error.as_deref().is_some_and(|e| e.contains("not JSON")), "{:?}", attempts[1].error);
    assert_eq!((calls.of("fail"), calls.of("html"), calls.of("ok")), (1, 1, 1));
    let metrics = rig.metrics.render();
    assert!(metrics.contains("switchyard_fallbacks_total 2"), "{metrics}");
}

#[tokio::test]
async fn a_client_error_is_passed_on_without_falling_back() {
    let (base, calls) = stand_in().await;
    let rig = Rig::new(catalog(&base, &[("a", &["refuse"]), ("b", &["ok"])]), ServerConfig::default());
    let (result, attempts) = rig.attempt(false).await;
    let answered = result.ok().unwrap();
    let Reply::ClientError(response) = answered.reply else { panic!("the upstream's 400 is passed on") };
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!((answered.card.name.as_str(), answered.fallbacks), ("a", 0));
    assert_eq!(tries(&attempts), [("a-0-refuse".to_string(), Some(400))]);
    assert_eq!(calls.of("ok"), 0, "the request's own error is not retried elsewhere");
    assert!(!rig.health.cooling("a-0-refuse"), "a client error says nothing against the upstream");
}

#[tokio::test]
async fn tries_stop_at_max_attempts_and_say_why_each_failed() {
    let (base, calls) = stand_in().await;
    let server = ServerConfig { max_attempts: 2, ..ServerConfig::default() };
    let rig = Rig::new(catalog(&base, &[("a", &["fail", "html"]), ("b", &["ok"])]), server);
    let (result, attempts) = rig.attempt(false).await;
    let Err(GatewayError::UpstreamsFailed(failures)) = result else { panic!("two failed tries end the loop") };
    assert_eq!(failures, ["a-0-fail: HTTP 500", "a-1-html: HTTP 200 with a body that is not JSON"]);
    assert_eq!(attempts.len(), 2);
    assert_eq!(calls.of("ok"), 0);
}

#[tokio::test]
async fn a_deployment_in_cooldown_is_skipped_unless_every_one_is() {
    let (base, calls) = stand_in().await;
    let server = ServerConfig { cooldown_failures: 1, cooldown_ms: 3_600_000, ..ServerConfig::default() };
    let rig = Rig::new(catalog(&base, &[("a", &["fail"]), ("b", &["ok"])]), server);
    let (first, _) = rig.attempt(false).await;
    assert_eq!(first.ok().map(|a| a.card.name.clone()).as_deref(), Some("b"));
    assert!(rig.health.cooling("a-0-fail"));
    assert!(rig.metrics.render().contains("switchyard_cooldowns_total 1"));
    let (second, attempts) = rig.attempt(false).await;
    assert_eq!(
        (second.ok().map(|a| a.fallbacks), tries(&attempts)),
        (Some(0), vec![("b-0-ok".to_string(), Some(200))])
    );
    assert_eq!(calls.of("fail"), 1, "the cooling deployment was not called again");

    // When every candidate is cooling, they are tried anyway.
    let only = Rig::new(catalog(&base, &[("a", &["fail"])]), rig.server.clone());
    let _ = only.attempt(false).await;
    assert!(only.health.cooling("a-0-fail"));
    let (again, attempts) = only.attempt(false).await;
    assert!(matches!(again, Err(GatewayError::UpstreamsFailed(_))));
    assert_eq!(attempts.len(), 1);
    assert_eq!(calls.of("fail"), 3);
}
