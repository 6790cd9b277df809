//! The dashboard's data and sign-in, in-process: `GET /admin/stats` behind an admin key or a session cookie
//! from `POST /ui/login`, its numbers against the requests sent through the gateway, bad queries refused by
//! name, and the page's security headers. The page in a real browser is tested in the `switchyard` crate.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard_testkit::replicas::{call, header};
use switchyard_testkit::upstream;
use tower::ServiceExt;

const ADMIN: &str = "admin-key-for-the-dashboard";

/// A gateway on the stand-in upstream (every model at $1 / $2 per million tokens) with two client keys,
/// `admin`'s admin keys and the decision log in `dir`.
async fn server(dir: &std::path::Path, admin: &str) -> std::sync::Arc<switchyard_server::AppState> {
    let (addr, _fake) = upstream::start().await;
    switchyard_testkit::app::state(&format!(
        "[log]\npath = {:?}\n[server]\nadmin_keys = [{admin}]\n\
         [[keys]]\nname = \"team-a\"\nkey_sha256 = \"{}\"\nbudget_usd = 5.0\nrpm = 100\n\
         [[keys]]\nname = \"team-b\"\nkey_sha256 = \"{}\"\ntpm = 100000\n{}",
        dir.join("decisions.sqlite").display().to_string(),
        sha256("key-a"),
        sha256("key-b"),
        upstream::catalog(addr)
    ))
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A request to the app with `headers` and a raw `body`: status, headers, body.
async fn raw(
    state: &std::sync::Arc<switchyard_server::AppState>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = switchyard_server::app(state.clone())
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).to_string())
}

fn chat(text: &str) -> Value {
    json!({"model": "switchyard", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn stats_need_an_admin_key_or_a_session_from_the_sign_in_form() {
    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), &format!("{ADMIN:?}")).await;
    let (status, _, body) = raw(&state, "GET", "/admin/stats", &[], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = raw(&state, "GET", "/admin/stats", &[("authorization", "Bearer key-a")], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a client key is not an admin key");
    let (status, _, _) = raw(&state, "GET", "/admin/stats", &[("authorization", &format!("Bearer {ADMIN}"))], "").await;
    assert_eq!(status, StatusCode::OK);

    // The page without a session is the sign-in form; a wrong key is told so.
    let (status, h, body) = raw(&state, "GET", "/ui", &[], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("action=\"/ui/login\"") && !body.contains("/ui/app.js"), "{body}");
    assert!(header(&h, "content-security-policy").contains("script-src 'self'"));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let (status, h, body) = raw(&state, "POST", "/ui/login", &form, "key=key-a").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("not one of server.admin_keys") && h.get("set-cookie").is_none(), "{body}");

    // The admin key becomes an HttpOnly, SameSite=Strict cookie, which opens the page and its data.
    let (status, h, _) = raw(&state, "POST", "/ui/login", &form, &format!("key={ADMIN}")).await;
    assert_eq!((status, header(&h, "location").as_str()), (StatusCode::SEE_OTHER, "/ui"));
    let cookie = header(&h, "set-cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(ADMIN), "the cookie never holds the key");
    let session = cookie.split(';').next().unwrap().to_string();
    let (status, h, body) = raw(&state, "GET", "/ui", &[("cookie", &session)], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<script src=\"/ui/app.js\" defer></script>") && !body.contains(ADMIN));
    assert!(header(&h, "content-security-policy").contains("frame-ancestors 'none'"));
    let (status, _, body) = raw(&state, "GET", "/admin/stats", &[("cookie", &session)], "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A forged or altered cookie is not a session.
    let forged = format!("{}0", session);
    let (status, _, _) = raw(&state, "GET", "/admin/stats", &[("cookie", &forged)], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, h, _) = raw(&state, "POST", "/ui/logout", &[("cookie", &session)], "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(header(&h, "set-cookie").contains("Max-Age=0"));
}

#[tokio::test]
async fn without_admin_keys_the_dashboard_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), "").await;
    let (status, _, body) = raw(&state, "GET", "/ui", &[], "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("set server.admin_keys"), "{body}");
    let (status, _, body) = raw(&state, "GET", "/admin/stats", &[], "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("admin_disabled"), "{body}");
}

#[tokio::test]
async fn stats_sum_the_gateway_traffic_and_refuse_bad_queries_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), &format!("{ADMIN:?}")).await;
    let mut ids = Vec::new();
    for (key, text) in [("key-a", "Say hello."), ("key-a", "What is 2 + 2?"), ("key-b", "Name a colour.")] {
        let (status, h, body) = call(&state, "POST", "/v1/chat/completions", key, &[], chat(text)).await;
        assert_eq!(status, 200, "{body}");
        ids.push(header(&h, "x-switchyard-request-id"));
    }
    let (status, _, body) =
        call(&state, "POST", "/v1/feedback", "key-a", &[], json!({"request_id": ids[0], "score": 1.0})).await;
    assert_eq!(status, 200, "{body}");
    state.log.as_ref().unwrap().flush();
    let admin = format!("Bearer {ADMIN}");
    let (status, _, body) =
        raw(&state, "GET", "/admin/stats?from=1h&recent=10", &[("authorization", &admin)], "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["totals"]["requests"], 3);
    assert_eq!(stats["totals"]["gateway"], 3);
    assert_eq!(stats["totals"]["scored"], 1);
    // The stand-in reports 5 + 3 tokens a call: $0.000011 at $1 / $2 per million, and so at any reference here.
    let spend = stats["totals"]["spend_usd"].as_f64().unwrap();
    assert!((spend - 3.0 * 0.000011).abs() < 1e-12, "{spend}");
    assert!(stats["savings"]["saved_usd"].as_f64().unwrap().abs() < 1e-12, "every model has the same price");
    assert_eq!(stats["log"], json!({"backend": "sqlite", "prompts": "full"}));
    let recent: Vec<&str> =
        stats["recent"].as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(recent, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()], "newest first");
    assert!(stats["recent"][0]["ranking"].as_array().unwrap().len() > 1, "the whole ranking");
    // Keys: the log's requests and spend, the server's limits and use.
    let keys = stats["keys"].as_array().unwrap();
    let a = keys.iter().find(|k| k["name"] == "team-a").unwrap();
    assert_eq!((a["requests"].as_u64(), a["rpm"]["limit"].as_u64()), (Some(2), Some(100)));
    assert!(a["rpm"]["used"].as_u64().unwrap() >= 2, "{a}");
    assert_eq!(a["budget"]["usd"], 5.0);
    assert!((a["budget"]["spent_usd"].as_f64().unwrap() - 2.0 * 0.000011).abs() < 1e-12);
    let b = keys.iter().find(|k| k["name"] == "team-b").unwrap();
    assert_eq!(
        (b["tpm"]["limit"].as_u64(), b["tpm"]["used"].as_u64(), &b["budget"]),
        (Some(100_000), Some(8), &Value::Null)
    );
    // No key's secret, and no admin key, in the data.
    for secret in ["key-a", "key-b", ADMIN] {
        assert!(!body.contains(secret), "{secret} in /admin/stats");
    }

    for (query, names) in [
        ("from=yesterday", "`from`"),
        ("bucket=weekly", "`bucket`"),
        ("from=30d&bucket=1m", "widen `bucket`"),
        ("recent=9999", "`recent`"),
        ("reference=no-such-model", "`reference`"),
        ("colour=blue", "unknown field `colour`"),
    ] {
        let (status, _, body) =
            raw(&state, "GET", &format!("/admin/stats?{query}"), &[("authorization", &admin)], "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.contains(names), "{query}: {body}");
    }
}

#[tokio::test]
async fn an_admin_key_given_by_digest_signs_in_and_its_digest_alone_makes_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _fake) = upstream::start().await;
    let state = switchyard_testkit::app::state(&format!(
        "[log]\npath = {:?}\n[server]\nadmin_keys_sha256 = [\"{}\"]\n{}",
        dir.path().join("decisions.sqlite").display().to_string(),
        sha256(ADMIN),
        upstream::catalog(addr)
    ));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let (status, h, _) = raw(&state, "POST", "/ui/login", &form, &format!("key={ADMIN}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let session = header(&h, "set-cookie").split(';').next().unwrap().to_string();
    let (status, _, _) = raw(&state, "GET", "/admin/stats", &[("cookie", &session)], "").await;
    assert_eq!(status, StatusCode::OK);
    // Whoever reads the digest from the config cannot sign a session with it: the server's secret signs them.
    let (status, _, body) = raw(&state, "POST", "/ui/login", &form, &format!("key={}", sha256(ADMIN))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let expires = switchyard_store::now_ms() + 3_600_000;
    let forged = format!("switchyard_ui={expires}.{}", sha256(&format!("{}{expires}", sha256(ADMIN))));
    let (status, _, _) = raw(&state, "GET", "/admin/stats", &[("cookie", &forged)], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
