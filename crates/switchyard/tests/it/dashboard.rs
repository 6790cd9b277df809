//! The dashboard in a real browser: `switchyard serve` with two client keys and an admin key, real traffic
//! through the gateway to the stand-in upstream (with feedback and a `/v1/route` decision), then headless
//! Chromium over WebDriver signs in at `/ui` and reads the rendered page: its numbers against those computed
//! here from the decision log, the savings against a hand computation, the recent decisions, and a decision's
//! ranking. The screenshot is saved under the target folder (and to `docs/dashboard.png` with
//! `SWITCHYARD_DOCS_SCREENSHOT=1`). A second test checks that the page and its data are refused without a key
//! and that no secret reaches them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use switchyard_testkit::serve::ServeProcess;
use switchyard_testkit::upstream;

const ADMIN: &str = "admin-2f9c1e7b5d3a";
const KEY_A: &str = "client-a-8e4d2c6f1b";
const KEY_B: &str = "client-b-5a7e9c3d2f";
const UPSTREAM_SECRET: &str = "sk-upstream-7d1f3b9e6c";

fn sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The default router's models at their profile prices (USD per million input and output tokens).
fn prices() -> BTreeMap<String, (f64, f64)> {
    let router = switchyard_core::Router::load(&switchyard_testkit::default_router()).unwrap();
    router.profiles().into_iter().map(|p| (p.model, (p.input_usd_per_mtok, p.output_usd_per_mtok))).collect()
}

/// `switchyard serve` with an admin key, two client keys, and every model on the stand-in upstream at its
/// profile price, with an upstream API key from the environment.
async fn serve(upstream: std::net::SocketAddr) -> ServeProcess {
    let mut tables = format!(
        "[[keys]]\nname = \"team-a\"\nkey_sha256 = \"{}\"\nbudget_usd = 2.0\nrpm = 600\n\
         [[keys]]\nname = \"team-b\"\nkey_sha256 = \"{}\"\ntpm = 200000\n",
        sha256(KEY_A),
        sha256(KEY_B)
    );
    for (model, (input, output)) in prices() {
        tables.push_str(&format!(
            "[[models]]\nname = \"{model}\"\nbase_url = \"http://{upstream}/v1\"\napi_key_env = \"DASHBOARD_TEST_UPSTREAM_KEY\"\n\
             input_usd_per_mtok = {input}\noutput_usd_per_mtok = {output}\n"
        ));
    }
    let server = format!("admin_keys = [\"{ADMIN}\"]");
    let env = [("DASHBOARD_TEST_UPSTREAM_KEY", UPSTREAM_SECRET)];
    switchyard_testkit::serve::spawn_with_env(crate::BIN, &server, &tables, upstream, &env).await
}

/// Prompts of every kind, so the router sends them to different models.
const PROMPTS: [(&str, &str); 9] = [
    (KEY_A, "hi there"),
    (KEY_A, "Prove that there are infinitely many prime numbers, step by step."),
    (KEY_A, "Write a CUDA kernel for tiled matrix multiplication using shared memory, and explain bank conflicts."),
    (KEY_B, "Translate 'good morning' into French."),
    (KEY_B, "Derive the Einstein field equations from the Einstein-Hilbert action."),
    (KEY_A, "What is the capital of Italy?"),
    (KEY_B, "Implement a lock-free multi-producer queue in C++ and prove it linearizable."),
    (KEY_B, "Give me a synonym for happy."),
    (KEY_A, "<img src=x onerror=\"document.title='pwned'\"><b>bold</b> What is 7 times 8?"),
];

/// Sends the traffic: the prompts through the gateway, feedback on three, and one `/v1/route` decision.
/// Returns the request ids.
async fn traffic(base: &str) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for (key, prompt) in PROMPTS {
        let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": prompt}]});
        let r = client.post(format!("{base}/v1/chat/completions")).bearer_auth(key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        ids.push(r.headers()["x-switchyard-request-id"].to_str().unwrap().to_string());
    }
    for (i, score) in [(0, 1.0), (1, 0.0), (4, 1.0)] {
        let key = PROMPTS[i].0;
        let body = json!({"request_id": ids[i], "score": score});
        let r = client.post(format!("{base}/v1/feedback")).bearer_auth(key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let body = json!({"prompt": "Summarise the causes of the French Revolution."});
    let r = client.post(format!("{base}/v1/route")).bearer_auth(KEY_A).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let route: Value = r.json().await.unwrap();
    ids.push(route["request_id"].as_str().unwrap().to_string());
    ids
}

/// The decision log's rows once all `n` requests and their feedback are in it.
async fn logged(server: &ServeProcess, n: usize, scored: usize) -> Vec<switchyard_store::LoggedRequest> {
    let path = server.dir.path().join("decisions.sqlite");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut rows = Vec::new();
        if let Ok(store) = switchyard_store::Store::open_read_only(&path) {
            store.for_each(i64::MIN, |r| rows.push(r)).unwrap();
        }
        if rows.len() == n && rows.iter().filter(|r| r.feedback.is_some()).count() == scored {
            return rows;
        }
        assert!(Instant::now() < deadline, "the log holds {} of {n} requests", rows.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every request is in the recent decisions, a prompt holding HTML is shown as text, and a click shows a
/// decision's whole ranking with the model that answered marked.
async fn recent_decisions(client: &Client, ids: &[String], rows: &[switchyard_store::LoggedRequest], models: usize) {
    let listed: BTreeSet<String> = {
        let mut listed = BTreeSet::new();
        for row in client.find_all(Locator::Css("#recent tbody tr[data-request-id]")).await.unwrap() {
            listed.insert(row.attr("data-request-id").await.unwrap().unwrap());
        }
        listed
    };
    assert_eq!(listed, ids.iter().cloned().collect::<BTreeSet<_>>());
    // A prompt holding HTML is shown as text: no element of it reaches the page.
    assert!(client.find_all(Locator::Css("#recent img, #recent b")).await.unwrap().is_empty(), "markup from a prompt");
    assert_ne!(client.title().await.unwrap(), "pwned");
    let markup = client
        .find(Locator::Css(&format!("#recent tr[data-request-id='{}'] td[data-field='prompt']", ids[8])))
        .await
        .unwrap();
    assert!(markup.text().await.unwrap().contains("<b>bold</b>"), "the prompt's text, as text");
    let hard = &ids[1];
    client.find(Locator::Css(&format!("#recent tr[data-request-id='{hard}']"))).await.unwrap().click().await.unwrap();
    let shown = client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#decision-id")).await.unwrap();
    assert_eq!(shown.text().await.unwrap().trim(), hard.as_str());
    let ranked = client.find_all(Locator::Css("#ranking tbody tr[data-model]")).await.unwrap();
    assert_eq!(ranked.len(), models, "every model of the decision's ranking");
    let chosen = client.find(Locator::Css("#ranking tr.chosen")).await.unwrap();
    let logged_model = rows.iter().find(|r| &r.record.request_id == hard).unwrap().record.chosen_model.clone();
    assert_eq!(chosen.attr("data-model").await.unwrap(), logged_model);
}

/// What the page should show, computed here from the decision log's rows.
struct Expected {
    spend: f64,
    /// The dearest model the router sent a request to.
    reference: String,
    /// The gateway's answers at the reference's prices.
    at_reference: f64,
    saved: f64,
    models: BTreeSet<String>,
}

/// Totals by hand, and the savings against the dearest model the router routed to.
fn by_hand(rows: &[switchyard_store::LoggedRequest]) -> Expected {
    let prices = prices();
    let spend: f64 = rows.iter().filter_map(|r| r.record.cost_usd).sum();
    let reference = rows
        .iter()
        .filter(|r| r.record.complexity.is_some())
        .filter_map(|r| r.record.chosen_model.clone())
        .max_by(|a, b| {
            let total = |m: &str| prices[m].0 + prices[m].1;
            total(a).total_cmp(&total(b)).then_with(|| b.cmp(a))
        })
        .unwrap();
    let (ri, ro) = prices[&reference];
    let priced: Vec<_> = rows.iter().filter(|r| r.record.endpoint == "chat" && r.record.complexity.is_some()).collect();
    let at_reference: f64 = priced
        .iter()
        .map(|r| (r.record.input_tokens.unwrap() as f64 * ri + r.record.output_tokens.unwrap() as f64 * ro) / 1e6)
        .sum();
    let saved = at_reference - priced.iter().filter_map(|r| r.record.cost_usd).sum::<f64>();
    let models = rows.iter().filter_map(|r| r.record.chosen_model.clone()).collect();
    eprintln!("routed to {models:?}; reference {reference}; saved {saved} of {at_reference}");
    Expected { spend, reference, at_reference, saved, models }
}

/// An element's `data-value`.
async fn value(client: &Client, css: &str) -> String {
    let element = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    element.attr("data-value").await.unwrap().unwrap_or_else(|| panic!("{css} has no data-value"))
}

async fn number(client: &Client, css: &str) -> f64 {
    value(client, css).await.parse().unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Signs in at `/ui` with `key` through the form.
async fn sign_in(client: &Client, base: &str, key: &str) {
    client.goto(&format!("{base}/ui")).await.unwrap();
    let field = client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#key")).await.unwrap();
    field.send_keys(key).await.unwrap();
    client.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
}

#[tokio::test]
async fn the_dashboard_shows_what_the_log_holds_and_what_routing_saved() {
    let (addr, _fake) = upstream::start().await;
    let server = serve(addr).await;
    let ids = traffic(&server.base).await;
    let rows = logged(&server, ids.len(), 3).await;

    let expect = by_hand(&rows);
    let prices = prices();
    let models = &expect.models;
    let (spend, reference, at_reference, saved) = (expect.spend, &expect.reference, expect.at_reference, expect.saved);

    let browser = switchyard_testkit::browser::start(1400, 2000).await;
    let client = &browser.client;
    sign_in(client, &server.base, ADMIN).await;
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("body[data-state='ready']"))
        .await
        .unwrap_or_else(|e| panic!("the page did not render: {e}"));

    assert_eq!(number(client, "#kpi-requests").await as usize, ids.len());
    assert!((number(client, "#kpi-spend").await - spend).abs() < 1e-12, "spend");
    assert_eq!(&value(client, "#kpi-reference-model").await, reference);
    assert!((number(client, "#kpi-reference-usd").await - at_reference).abs() < 1e-12);
    assert!((number(client, "#kpi-saved").await - saved).abs() < 1e-12, "saved");
    if at_reference > 0.0 {
        assert!((number(client, "#kpi-saved-share").await - saved / at_reference).abs() < 1e-9);
    }
    // Per model and per key, as the log has them.
    for model in models {
        let n = rows.iter().filter(|r| r.record.chosen_model.as_ref() == Some(model)).count();
        let css = format!("#models tr[data-model='{model}'] td[data-field='requests']");
        assert_eq!(number(client, &css).await as usize, n, "{model}");
    }
    for (name, key) in [("team-a", KEY_A), ("team-b", KEY_B)] {
        let n = PROMPTS.iter().filter(|(k, _)| *k == key).count() + usize::from(name == "team-a");
        let css = format!("#keys tr[data-key='{name}'] td[data-field='requests']");
        assert_eq!(number(client, &css).await as usize, n, "{name}");
    }
    assert_eq!(number(client, "#keys tr[data-key='team-a'] td[data-field='budget_usd']").await, 2.0);

    recent_decisions(client, &ids, &rows, prices.len()).await;

    // The screenshot, from the top of the page.
    client.execute("window.scrollTo(0, 0); document.getElementById('decision-close')?.click();", vec![]).await.unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = switchyard_testkit::target_dir().join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    if std::env::var_os("SWITCHYARD_DOCS_SCREENSHOT").is_some() {
        std::fs::write(switchyard_testkit::workspace_root().join("docs/dashboard.png"), &png).unwrap();
    }
    eprintln!("screenshot: {}", path.display());

    let page = client.source().await.unwrap();
    for secret in [ADMIN, KEY_A, KEY_B, UPSTREAM_SECRET] {
        assert!(!page.contains(secret), "a secret in the page");
    }
    report(client, &server, ids.len(), &expect).await;
    browser.close().await;
}

/// `switchyard logs report` writes the same view as one file, which opens in the browser without a server;
/// bad arguments are refused by name.
async fn report(client: &Client, server: &ServeProcess, requests: usize, expect: &Expected) {
    let config = server.dir.path().join("switchyard.toml");
    let out = server.dir.path().join("report.html");
    let run = |extra: &[&str]| {
        let mut args = vec!["logs", "report", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        switchyard_testkit::cli(crate::BIN).args(&args).output().unwrap()
    };
    let done = run(&["--since", "1d"]);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{requests} requests")), "{stderr}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<script type=\"application/json\" id=\"data\">") && !html.contains("src=\"/ui/app.js\""));
    client.goto(&format!("file://{}", out.display())).await.unwrap();
    client.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("body[data-state='ready']")).await.unwrap();
    assert_eq!(number(client, "#kpi-requests").await as usize, requests);
    assert!((number(client, "#kpi-saved").await - expect.saved).abs() < 1e-12, "the report's saving");
    for (bad, named) in
        [(&["--reference", "no-such-model"][..], "--reference"), (&["--bucket", "weekly"][..], "--bucket")]
    {
        let refused = run(bad);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && stderr.contains(named), "{stderr}");
    }
}

#[tokio::test]
async fn without_an_admin_key_the_page_and_its_data_are_refused_and_no_secret_shows() {
    let (addr, _fake) = upstream::start().await;
    let server = serve(addr).await;
    let ids = traffic(&server.base).await;
    logged(&server, ids.len(), 3).await;
    let http = reqwest::Client::new();
    let base = &server.base;
    assert_eq!(http.get(format!("{base}/admin/stats")).send().await.unwrap().status(), 401);
    let r = http.get(format!("{base}/admin/stats")).bearer_auth(KEY_A).send().await.unwrap();
    assert_eq!(r.status(), 401, "a client key is not an admin key");
    let ui = http.get(format!("{base}/ui")).send().await.unwrap();
    assert_eq!(ui.status(), 401);

    // In the browser: the sign-in form, no data; a client key is refused with a message.
    let browser = switchyard_testkit::browser::start(1000, 800).await;
    let client = &browser.client;
    sign_in(client, base, KEY_B).await;
    let error = client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#login-error")).await.unwrap();
    assert!(error.text().await.unwrap().contains("not one of server.admin_keys"));
    assert!(client.find_all(Locator::Css("#kpi-requests")).await.unwrap().is_empty(), "no dashboard");
    let cookies = client.get_all_cookies().await.unwrap();
    assert!(cookies.iter().all(|c| c.name() != "switchyard_ui"), "no session for a client key");
    // A fetch of the data from the page, without a session, is refused too.
    let status = client.execute_async("fetch('/admin/stats').then(r => arguments[0](r.status))", vec![]).await.unwrap();
    assert_eq!(status, json!(401));
    let login_page = client.source().await.unwrap();

    // Signed in: neither the page nor its JSON holds a key or the upstream's secret.
    sign_in(client, base, ADMIN).await;
    client.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("body[data-state='ready']")).await.unwrap();
    let page = client.source().await.unwrap();
    let data = client
        .execute_async("fetch('/admin/stats').then(r => r.text()).then(t => arguments[0](t))", vec![])
        .await
        .unwrap();
    let data = data.as_str().unwrap().to_string();
    assert!(data.contains("\"totals\""), "{data}");
    for text in [&login_page, &page, &data] {
        for secret in [ADMIN, KEY_A, KEY_B, UPSTREAM_SECRET] {
            assert!(!text.contains(secret), "a secret in the page or its data");
        }
    }
    let session = client.get_named_cookie("switchyard_ui").await.unwrap();
    assert_eq!(session.http_only(), Some(true));
    browser.close().await;
}
