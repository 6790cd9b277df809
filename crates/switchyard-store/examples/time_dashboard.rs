//! Times the dashboard's view of a SQLite decision log in-process (no HTTP): `Store::dashboard` over the last
//! `--days` days of the log, `--calls` times; prints each call's time and the median. `scripts/dashboard-bench.sh`
//! times the same through `GET /admin/stats`.
//!
//!     cargo run --release -p switchyard-store --example time_dashboard -- --db target/dashboard-bench/decisions.sqlite

use std::path::PathBuf;

use switchyard_store::{DashboardQuery, Pricing, Store};

/// Reads `--name value` from the arguments.
fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Opens the log and times the calls.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = PathBuf::from(arg("--db").ok_or("--db FILE is required")?);
    let days: i64 = arg("--days").map_or(Ok(30), |d| d.parse())?;
    let calls: usize = arg("--calls").map_or(Ok(7), |c| c.parse())?;
    let store = Store::open_read_only(&db)?;
    let last: i64 = store.newest_ts()?.ok_or("the log is empty")?;
    let to = last + 1;
    let from = to - days * 86_400_000;
    let query = DashboardQuery::new(from, to, DashboardQuery::auto_bucket(from, to, 120), 50)?;
    let price = |m: &str| Some((m.len() as f64, 2.0 * m.len() as f64));
    let pricing = Pricing { price: &price, candidates: Vec::new(), reference: None };
    let mut times = Vec::new();
    for call in 1..=calls {
        let started = std::time::Instant::now();
        let view = store.dashboard(&query, &pricing)?;
        let seconds = started.elapsed().as_secs_f64();
        println!("call {call}: {seconds:.3} s, {} requests", view.totals.requests);
        times.push(seconds);
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.3} s over {calls} calls of the last {days} days", times[times.len() / 2]);
    Ok(())
}
