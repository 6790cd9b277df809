//! Writes a realistic decision log for benchmarks (`scripts/dashboard-bench.sh`): rows spread uniformly over
//! the last `--days` days, with the mix of a busy gateway (chat, messages and route requests, fallbacks,
//! errors, cache hits, experiments, feedback) and ~2 KB of prompt and answer text per row, as with
//! `log.prompts = "full"`. Deterministic for a seed (and `--now`, the end of the range; default: now):
//! `cargo run --release -p switchyard-store --example fill_log -- --out PATH --rows 1000000 --days 30 [--seed N] [--now MS]`.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use switchyard_store::{now_ms, prompt_hash, Attempt, DecisionRecord, Estimate, Feedback, PromptLogging, Store};

/// Rows per `Store::insert` call (one transaction).
const BATCH: usize = 10_000;

/// The models: name, USD per million input and output tokens (the default router's prices), the router's
/// share of decisions, and how good the model is (its P of success on an easy prompt).
const MODELS: [(&str, f64, f64, f64, f64); 8] = [
    ("gpt-4o-mini", 0.15, 0.6, 25.0, 0.80),
    ("gemini-2.0-flash", 0.1, 0.4, 15.0, 0.76),
    ("claude-3-haiku", 0.25, 1.25, 12.0, 0.74),
    ("gpt-4o", 2.5, 10.0, 12.0, 0.92),
    ("claude-3-5-sonnet", 3.0, 15.0, 10.0, 0.93),
    ("llama-3.1-8b-instruct", 0.22, 0.22, 10.0, 0.62),
    ("llama-3.1-70b-instruct", 0.88, 0.88, 8.0, 0.84),
    ("deepseek-v2.5", 0.14, 0.28, 8.0, 0.82),
];

/// Client key names.
const KEYS: [&str; 5] = ["web-app", "mobile", "batch-jobs", "internal-tools", "eval-harness"];

/// The router's domains that the prompts fall in.
const DOMAINS: [&str; 6] = ["code", "math", "writing", "knowledge", "reasoning", "translation"];

/// Two experiments of two arms each.
const ARMS: [(&str, &str); 4] = [("cache-ab", "control"), ("cache-ab", "cache"), ("knob", "q70"), ("knob", "q80")];

/// Text the prompts and answers are cut from (ASCII, so any byte range is a valid slice).
const CORPUS: &str = "Please explain why the function returns the wrong value when the table is empty. Prove that \
    the square root of 2 is irrational. Translate this sentence into French and German. Summarise the article on \
    quarterly revenue and the budget. Which of these two contracts gives the tenant more rights overall? What dose \
    is safe for a patient of 70 kg? Describe the history of the river and the orbit of the planet, its energy.";

/// A xorshift64* generator: tiny, fast and deterministic.
struct Rng(/** The state (never 0). */ u64);

impl Rng {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A model index drawn by the router's shares.
    fn model(&mut self) -> usize {
        let total: f64 = MODELS.iter().map(|m| m.3).sum();
        let mut at = self.unit() * total;
        for (i, m) in MODELS.iter().enumerate() {
            at -= m.3;
            if at < 0.0 {
                return i;
            }
        }
        0
    }

    /// Text of about `chars` characters (±20%): random pieces of the corpus.
    fn text(&mut self, chars: usize) -> String {
        let target = chars * 4 / 5 + self.below(chars * 2 / 5 + 1);
        let mut out = String::with_capacity(target + 48);
        while out.len() < target {
            let from = self.below(CORPUS.len() - 48);
            out.push_str(CORPUS.get(from..from + 8 + self.below(40)).unwrap_or("-"));
            out.push(' ');
        }
        out
    }
}

/// The command line.
struct Args {
    /// The log file to write (must not exist).
    out: PathBuf,
    /// How many rows.
    rows: u64,
    /// Over how many days before `now`.
    days: f64,
    /// The PRNG's seed.
    seed: u64,
    /// The end of the range, milliseconds since the epoch.
    now: i64,
}

/// How to call it.
const USAGE: &str = "usage: fill_log --out PATH --rows N --days D [--seed N] [--now MS]";

/// Reads the command line.
fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args { out: PathBuf::new(), rows: 1_000_000, days: 30.0, seed: 1, now: now_ms() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value),
            "--rows" => args.rows = value.parse()?,
            "--days" => args.days = value.parse()?,
            "--seed" => args.seed = value.parse()?,
            "--now" => args.now = value.parse()?,
            _ => return Err(format!("unknown flag {flag}; {USAGE}").into()),
        }
    }
    if args.out.as_os_str().is_empty() || args.rows == 0 || args.days <= 0.0 {
        return Err(format!("rows and days must be positive; {USAGE}").into());
    }
    if args.out.exists() {
        return Err(format!("{} exists: remove it (and its -wal, -shm) first", args.out.display()).into());
    }
    Ok(args)
}

/// Cost in USD of `input` and `output` tokens on model `m`.
fn price(m: usize, input: u64, output: u64) -> f64 {
    (input as f64 * MODELS[m].1 + output as f64 * MODELS[m].2) / 1e6
}

/// One upstream call to a deployment of model `m` (`@us-east` or `@eu-west`).
fn call(m: usize, east: bool, status: Option<u16>, latency_ms: f64) -> Attempt {
    let (name, region) = (MODELS[m].0, if east { "us-east" } else { "eu-west" });
    let error = match status {
        Some(200) => None,
        Some(s) => Some(format!("upstream answered {s}")),
        None => Some("no response within first_byte_timeout_ms".to_string()),
    };
    Attempt { model: name.into(), deployment: Some(format!("{name}@{region}")), status, latency_ms, error }
}

/// The decision: for a routed row, every model's estimate, the domain and complexity and the policy.
fn decide(rng: &mut Rng, r: &mut DecisionRecord, m: usize, input: u64) {
    r.decided_model = Some(MODELS[m].0.into());
    if r.endpoint != "route" && rng.unit() < 0.12 {
        return; // The client named its model: no decision to log.
    }
    let complexity = rng.unit().powf(1.3);
    r.estimates = (0..MODELS.len())
        .map(|i| {
            let good = MODELS[i].4;
            let p = (good - complexity * 0.6 * (1.0 - good) - 0.1 * complexity + 0.08 * (rng.unit() - 0.5))
                .clamp(0.01, 0.99);
            Estimate { model: MODELS[i].0.into(), p, cost_usd: price(i, input, 250) }
        })
        .collect();
    r.domain = Some(DOMAINS[rng.below(DOMAINS.len())].into());
    r.complexity = Some(complexity);
    r.propensity = Some(1.0);
    r.policy = Some(serde_json::json!({"min_quality": 0.7}));
    if rng.unit() < 0.225 {
        let (experiment, arm) = ARMS[rng.below(ARMS.len())];
        r.experiment = Some(experiment.into());
        r.arm = Some(arm.into());
    }
}

/// What happened upstream of a gateway request: an error (~2% of rows), a fallback (~3%), a cache hit (~5%)
/// or one answer.
fn outcome(rng: &mut Rng, r: &mut DecisionRecord, m: usize, input: u64) {
    let output = 40 + (rng.unit().powi(2) * 1200.0) as u64;
    let upstream = 250.0 + output as f64 * (4.0 + 10.0 * rng.unit());
    let decision = r.decision_ms.unwrap_or(0.0);
    let u = rng.unit();
    let answered = if u < 0.022 {
        r.status = 502;
        r.attempts = vec![call(m, true, Some(503), 40.0 + 200.0 * rng.unit()), call(m, false, None, 60_000.0)];
        r.latency_ms = decision + r.attempts.iter().map(|a| a.latency_ms).sum::<f64>();
        return;
    } else if u < 0.055 {
        let other = if rng.below(3) == 0 { (m + 1) % MODELS.len() } else { m };
        let failed = call(m, true, if rng.below(4) == 0 { None } else { Some(503) }, 30.0 + 900.0 * rng.unit());
        r.attempts = vec![failed, call(other, other != m, Some(200), upstream)];
        other
    } else if u < 0.111 {
        r.cache_hit = true;
        r.cost_usd = Some(0.0);
        r.cache_saved_usd = Some(price(m, input, output));
        r.latency_ms = decision + 2.0 + 10.0 * rng.unit();
        r.chosen_model = Some(MODELS[m].0.into());
        r.response = Some(rng.text(1000));
        return;
    } else {
        r.attempts = vec![call(m, rng.unit() < 0.7, Some(200), upstream)];
        m
    };
    r.status = 200;
    r.chosen_model = Some(MODELS[answered].0.into());
    r.input_tokens = Some(input);
    r.output_tokens = Some(output);
    r.cost_usd = Some(price(answered, input, output));
    r.latency_ms = decision + r.attempts.iter().map(|a| a.latency_ms).sum::<f64>() + 1.0;
    r.finish_reason = Some(if rng.below(30) == 0 { "length" } else { "stop" }.into());
    r.response = Some(rng.text(1000));
}

/// Row `i`, logged at `ts_ms`, and its feedback if the client sent some (~10% of rows).
fn record(rng: &mut Rng, i: u64, ts_ms: i64) -> (DecisionRecord, Option<Feedback>) {
    let endpoint = match rng.below(100) {
        0..=84 => "chat",
        85..=94 => "route",
        _ => "messages",
    };
    let mut r = DecisionRecord {
        request_id: format!("sy-{:x}-5eed{:04x}-{i:x}", ts_ms * 1_000_000 + rng.below(1_000_000) as i64, i % 65_536),
        ts_ms,
        endpoint: endpoint.into(),
        messages_count: 1 + rng.below(8) as u32,
        user: (rng.below(5) < 3).then(|| format!("user-{}", rng.below(5_000))),
        api_key: Some(KEYS[rng.below(KEYS.len())].into()),
        status: 200,
        decision_ms: Some(3.0 + 12.0 * rng.unit()),
        stream: rng.below(5) < 2,
        ..DecisionRecord::default()
    };
    r.set_prompt(&rng.text(600), PromptLogging::Full);
    let (input, m) = (60 + (rng.unit().powi(2) * 3000.0) as u64, rng.model());
    decide(rng, &mut r, m, input);
    if endpoint == "route" {
        r.chosen_model = r.decided_model.clone();
        r.latency_ms = r.decision_ms.unwrap_or(0.0) + 0.5;
    } else {
        outcome(rng, &mut r, m, input);
    }
    r.response_sha256 = r.response.as_deref().map(prompt_hash);
    let chosen = r.chosen_model.as_deref().and_then(|c| r.estimates.iter().find(|e| e.model == c));
    r.expected_cost_usd = chosen.map(|e| e.cost_usd);
    let feedback = (r.status < 400 && rng.unit() < 0.1).then(|| {
        let p = chosen.map_or(0.8, |e| e.p);
        Feedback {
            request_id: r.request_id.clone(),
            api_key: r.api_key.clone(),
            score: if rng.below(4) == 0 {
                (rng.unit() * 10.0).round() / 10.0
            } else {
                f64::from(u8::from(rng.unit() < p))
            },
            comment: (rng.below(10) == 0).then(|| rng.text(80)),
            ts_ms: ts_ms + 60_000,
        }
    });
    (r, feedback)
}

/// Writes the log, then prints its row count, file size and the time taken.
fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let started = Instant::now();
    let mut rng = Rng(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let span_ms = (args.days * 86_400_000.0) as i64;
    let (step, from) = (span_ms as f64 / args.rows as f64, args.now - span_ms);
    let mut store = Store::open(&args.out)?;
    let (mut done, mut scored) = (0u64, 0u64);
    println!("writing {} rows over {} days to {}", args.rows, args.days, args.out.display());
    while done < args.rows {
        let n = (args.rows - done).min(BATCH as u64);
        let mut batch = Vec::with_capacity(BATCH);
        let mut feedback = Vec::new();
        for i in done..done + n {
            let ts = from + (i as f64 * step + rng.unit() * step) as i64;
            let (record, fb) = record(&mut rng, i, ts.min(args.now - 1));
            batch.push(record);
            feedback.extend(fb);
        }
        store.insert(&batch)?;
        for fb in &feedback {
            store.feedback(fb)?;
        }
        scored += feedback.len() as u64;
        done += n;
        if done % 100_000 == 0 || done == args.rows {
            println!("  {done:>9} rows, {scored:>8} with feedback, {:6.1} s", started.elapsed().as_secs_f64());
        }
    }
    let rows = store.count()?;
    drop(store); // Closing the last connection checkpoints the WAL into the file.
    let (bytes, secs) = (std::fs::metadata(&args.out)?.len() as f64, started.elapsed().as_secs_f64());
    let (mb, per_row) = (bytes / 1e6, bytes / rows.max(1) as f64);
    println!("{rows} rows, {scored} with feedback, {mb:.1} MB ({per_row:.0} bytes/row), {secs:.1} s");
    Ok(())
}
