//! Online learning with real processes: a `switchyard serve` with `[learning] online = true` in front of a real
//! (loopback) upstream. A model whose math answers start getting feedback 0 loses the math traffic it had and
//! keeps its other traffic; what was learned survives a restart (SIGTERM, then a new process on the same state
//! file); when its math feedback recovers, the traffic comes back.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

const CHEAP: &str = "llama-3.1-8b-instruct";
const DEAR: &str = "gpt-4o";

const MATH: [&str; 10] = [
    "What is 17 * 23?",
    "Solve for x: 3x + 7 = 22.",
    "What is the derivative of x^3 * sin(x)?",
    "Integrate 2x * e^(x^2) dx.",
    "How many primes are there below 50?",
    "What is the sum of the first 100 positive integers?",
    "Factor x^2 - 5x + 6.",
    "What is 2 to the power of 20?",
    "Find the roots of x^2 + 4x + 5 = 0.",
    "What is the least common multiple of 12 and 18?",
];

const CHAT: [&str; 10] = [
    "Write a haiku about rain.",
    "Suggest a name for a friendly cat.",
    "Write a short birthday message for a colleague.",
    "Give me a fun fact about octopuses.",
    "Write a limerick about a sleepy dog.",
    "What is a good title for a blog post about gardening?",
    "Recommend a board game for a family evening.",
    "Write a two-line poem about the sea.",
    "Suggest three names for a bakery.",
    "Write a thank-you note to a neighbour.",
];

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// Sends a routed chat request; returns the request id and the model that answered.
    async fn chat(&self, prompt: &str, min_quality: f64, allowed: &[&str]) -> (String, String) {
        let body = json!({
            "model": "switchyard",
            "messages": [{"role": "user", "content": prompt}],
            "metadata": {"min_quality": min_quality.to_string(), "allowed_models": allowed.join(",")},
        });
        let r = self.http.post(format!("{}/v1/chat/completions", self.base)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let header = |name: &str| r.headers()[name].to_str().unwrap().to_string();
        (header("x-switchyard-request-id"), header("x-switchyard-model"))
    }

    async fn feedback(&self, id: &str, score: f64) {
        let r = self
            .http
            .post(format!("{}/v1/feedback", self.base))
            .json(&json!({"request_id": id, "score": score}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    /// The router's P(success) for `model` on `prompt`, as `/v1/route` reports it (online shift included).
    async fn p(&self, prompt: &str, model: &str) -> f64 {
        let r: Value = self
            .http
            .post(format!("{}/v1/route", self.base))
            .json(&json!({"prompt": prompt}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let models = r["models"].as_array().unwrap_or_else(|| panic!("{r}"));
        models.iter().find(|m| m["model"] == model).unwrap()["p_success"].as_f64().unwrap()
    }

    async fn metric(&self, name: &str, model: &str, domain: &str) -> f64 {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        let prefix = format!("{name}{{model=\"{model}\",domain=\"{domain}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix}in\n{text}"))
            .parse()
            .unwrap()
    }
}

/// Each prompt's quality bar: a little under the cheap model's P(success) for it before anything was learned,
/// so that it answers every prompt at first, and stops when its P falls by more than [`MARGIN`].
struct Bars {
    math: Vec<f64>,
    chat: Vec<f64>,
}

/// How far the cheap model's P(success) must fall for a prompt to move to the dear model.
const MARGIN: f64 = 0.1;

/// Rounds of one math and one chat request with feedback: math answers of `CHEAP` score `math_score`,
/// everything else 1. Returns how many of the last `tail` math and chat requests `CHEAP` answered.
async fn rounds(c: &Client, n: usize, q: &Bars, math_score: f64, tail: usize) -> (usize, usize) {
    let (mut math, mut chat) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (id, model) = c.chat(MATH[i % MATH.len()], q.math[i % MATH.len()], &[CHEAP, DEAR]).await;
        c.feedback(&id, if model == CHEAP { math_score } else { 1.0 }).await;
        math.push(model == CHEAP);
        let (id, model) = c.chat(CHAT[i % CHAT.len()], q.chat[i % CHAT.len()], &[CHEAP, DEAR]).await;
        c.feedback(&id, 1.0).await;
        chat.push(model == CHEAP);
    }
    let last = |v: &[bool]| v[v.len().saturating_sub(tail)..].iter().filter(|x| **x).count();
    (last(&math), last(&chat))
}

/// A server learning online with `prior_strength = 5` and `half_life = 50`, not the defaults (20 and 200): the
/// README states the "within 200 requests" figure with these settings.
async fn start(state: &std::path::Path, upstream: std::net::SocketAddr) -> switchyard_testkit::serve::ServeProcess {
    let tables = format!(
        "[learning]\nonline = true\nstate_file = {:?}\nprior_strength = 5\nhalf_life = 50\n",
        state.join("online.json")
    );
    switchyard_testkit::serve::spawn_with(crate::BIN, "", &tables, upstream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_failing_one_domain_loses_it_keeps_the_rest_and_wins_it_back() {
    let (upstream, _fake) = switchyard_testkit::upstream::start().await;
    let state = tempfile::tempdir().unwrap();
    let server = start(state.path(), upstream).await;
    let c = Client { http: reqwest::Client::new(), base: server.base.clone() };

    // Per prompt, a quality bar a little under the cheap model's P(success), so that it answers everything.
    let mut q = Bars { math: Vec::new(), chat: Vec::new() };
    for prompt in MATH {
        q.math.push(c.p(prompt, CHEAP).await - MARGIN);
    }
    for prompt in CHAT {
        q.chat.push(c.p(prompt, CHEAP).await - MARGIN);
    }
    let (math, chat) = rounds(&c, 5, &q, 1.0, 5).await;
    assert_eq!((math, chat), (5, 5), "the cheap model answers everything at first");

    // Its math answers start failing: within 200 requests it loses most of math and keeps the chat traffic.
    let (math, chat) = rounds(&c, 100, &q, 0.0, 25).await;
    assert!(math <= 5, "the cheap model still answered {math} of the last 25 math requests (it had all 25)");
    assert!(chat >= 23, "the cheap model answered only {chat} of the last 25 chat requests");
    // The metrics show the drift in math, and none in writing.
    let observed = c.metric("switchyard_observed_success", CHEAP, "math").await;
    let predicted = c.metric("switchyard_predicted_success", CHEAP, "math").await;
    assert!(observed < predicted - 0.25, "math: observed {observed} vs predicted {predicted}");
    assert!(c.metric("switchyard_online_weight", CHEAP, "math").await > 0.5);
    let observed = c.metric("switchyard_observed_success", CHEAP, "writing").await;
    let predicted = c.metric("switchyard_predicted_success", CHEAP, "writing").await;
    assert!(observed > predicted, "writing: observed {observed} vs predicted {predicted}");

    // A restart keeps what was learned: SIGTERM writes the state file, a new process reads it.
    let status = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(status.success());
    let mut server = server;
    assert!(server.exited_within(Duration::from_secs(60)).await.is_some(), "no exit after SIGTERM:\n{}", server.log());
    assert!(state.path().join("online.json").is_file(), "{}", server.log());
    drop(server);
    let server = start(state.path(), upstream).await;
    let c = Client { http: reqwest::Client::new(), base: server.base.clone() };
    let (math, chat) = rounds(&c, 10, &q, 0.0, 10).await;
    assert!(math <= 3 && chat >= 9, "after the restart: math {math}/10 (10/10 had nothing survived), chat {chat}/10");

    // Its math answers recover (seen on the slice of traffic that may use only it); math traffic comes back.
    for i in 0..40 {
        let (id, model) = c.chat(MATH[i % MATH.len()], 0.0, &[CHEAP]).await;
        assert_eq!(model, CHEAP);
        c.feedback(&id, 1.0).await;
    }
    let (math, chat) = rounds(&c, 20, &q, 1.0, 20).await;
    assert!(math >= 17 && chat >= 19, "after recovering: math {math}/20, chat {chat}/20");
}

/// Quality signals need no feedback: a model whose answers (whole or streamed) are refusals loses the traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_count_as_failures_without_feedback() {
    let (upstream, fake) = switchyard_testkit::upstream::start().await;
    let state = tempfile::tempdir().unwrap();
    let server = start(state.path(), upstream).await;
    let c = Client { http: reqwest::Client::new(), base: server.base.clone() };
    let q = c.p(MATH[0], CHEAP).await - MARGIN;
    let (_, model) = c.chat(MATH[0], q, &[CHEAP, DEAR]).await;
    assert_eq!(model, CHEAP);
    fake.modes.lock().unwrap().insert(CHEAP.to_string(), switchyard_testkit::upstream::Mode::Refuse);
    let refusals = |text: &str| -> f64 {
        let prefix = "switchyard_online_updates_total{source=\"refusal\"} ";
        text.lines().find_map(|l| l.strip_prefix(prefix)).unwrap().parse().unwrap()
    };
    let mut answered = Vec::new();
    for i in 0..40 {
        // The first is streamed, and judged when its stream completes; the second goes to CHEAP whatever it has
        // learned (one refusal may already have moved the traffic), so a whole answer's refusal is judged too.
        let stream = i % 2 == 0;
        let allowed = if i == 1 { CHEAP.to_string() } else { format!("{CHEAP},{DEAR}") };
        let body = json!({
            "model": "switchyard",
            "stream": stream,
            "messages": [{"role": "user", "content": MATH[0]}],
            "metadata": {"min_quality": q.to_string(), "allowed_models": allowed},
        });
        let r = c.http.post(format!("{}/v1/chat/completions", c.base)).json(&body).send().await.unwrap();
        assert!(r.status().is_success());
        answered.push(r.headers()["x-switchyard-model"].to_str().unwrap().to_string());
        r.bytes().await.unwrap();
        if i == 0 {
            assert_eq!(answered[0], CHEAP);
            // The stream's record (and judgement) is done when the body is dropped, just after the last byte.
            let mut counted = 0.0;
            for _ in 0..3000 {
                let text = c.http.get(format!("{}/metrics", c.base)).send().await.unwrap().text().await.unwrap();
                counted = refusals(&text);
                if counted > 0.0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert_eq!(counted, 1.0, "the streamed refusal was not counted");
        }
    }
    let last: Vec<&String> = answered.iter().rev().take(10).collect();
    assert!(last.iter().all(|m| *m == DEAR), "refusals did not move the traffic: {answered:?}");
    let text = c.http.get(format!("{}/metrics", c.base)).send().await.unwrap().text().await.unwrap();
    assert!(refusals(&text) >= 2.0, "{}", refusals(&text));
    assert!(text.contains("switchyard_online_updates_total{source=\"feedback\"} 0"), "no feedback was sent");
}
