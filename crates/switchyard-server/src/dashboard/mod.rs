//! The dashboard's data (`GET /admin/stats`): the decision log's view of a range, from the store, with what
//! only this server knows filled in: catalog prices for the savings, keys' budgets and per-minute use,
//! deployments in cooldown, and whether prompts may be shown. The page itself is [`crate::http::ui`]; the
//! JSON is documented in `docs/admin-stats.md`.
//!
//! The log is read on a blocking thread through one connection kept for the purpose (a PostgreSQL client must
//! not run on an async thread), never through the writer's.

pub(crate) mod params;
pub(crate) mod session;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use switchyard_store::{Budget, Dashboard, DashboardQuery, Database, DeploymentRow, KeyRow, Limit, Pricing};

use crate::state::AppState;

/// Why the view cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A query parameter is wrong: the message names it and what is accepted.
    #[error("{0}")]
    BadQuery(String),
    /// The decision log is off, so there is nothing to show.
    #[error("the decision log is off (log.enabled = false): the dashboard reads it; turn it on and restart")]
    LogOff,
    /// The decision log cannot be read.
    #[error("cannot read the decision log: {0}")]
    Log(String),
}

/// The connection the dashboard reads the log through, opened on first use.
#[derive(Default)]
pub struct Reader(Mutex<Option<Database>>);

/// The view of the range `params` asks for.
pub async fn view(state: &Arc<AppState>, params: &params::StatsParams) -> Result<Dashboard, DashboardError> {
    if !state.config.log.enabled {
        return Err(DashboardError::LogOff);
    }
    let now = switchyard_store::now_ms();
    let query = params.query(now).map_err(DashboardError::BadQuery)?;
    let prices = prices(state);
    if let Some(reference) = &params.reference {
        if !prices.contains_key(reference) {
            let known: Vec<&str> = prices.keys().map(String::as_str).collect();
            return Err(DashboardError::BadQuery(format!(
                "`reference` {reference:?} has no price in the catalog; pick one of: {}",
                known.join(", ")
            )));
        }
    }
    let reference = params.reference.clone();
    let worker = state.clone();
    let mut dashboard = tokio::task::spawn_blocking(move || read(&worker, &query, &prices, reference))
        .await
        .map_err(|e| DashboardError::Log(format!("the reading thread failed: {e}")))??;
    fill_live(state, &mut dashboard, now);
    Ok(dashboard)
}

/// Reads the view on a blocking thread, opening the reader the first time (and again after an error).
fn read(
    state: &AppState,
    query: &DashboardQuery,
    prices: &BTreeMap<String, (f64, f64)>,
    reference: Option<String>,
) -> Result<Dashboard, DashboardError> {
    let mut reader = state.dashboard.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if reader.is_none() {
        let db = Database::open(&state.config.log.location()).map_err(|e| DashboardError::Log(e.to_string()))?;
        *reader = Some(db);
    }
    let price = |m: &str| prices.get(m).copied();
    let pricing = Pricing { price: &price, candidates: prices.keys().cloned().collect(), reference };
    let result = match reader.as_mut() {
        Some(db) => db.dashboard(query, &pricing).map_err(|e| DashboardError::Log(e.to_string())),
        None => Err(DashboardError::Log("no reader".into())),
    };
    if result.is_err() {
        // A lost connection or a replaced file: open afresh next time.
        *reader = None;
    }
    result
}

/// Every model's price, USD per million input and output tokens: the config's catalog, else the router's
/// profiles.
fn prices(state: &AppState) -> BTreeMap<String, (f64, f64)> {
    let mut prices: BTreeMap<String, (f64, f64)> = state
        .routers()
        .main
        .profiles()
        .into_iter()
        .map(|p| (p.model, (p.input_usd_per_mtok, p.output_usd_per_mtok)))
        .collect();
    for card in &state.config.models {
        prices.insert(card.name.clone(), (card.input_usd_per_mtok, card.output_usd_per_mtok));
    }
    prices
}

/// What only this server knows: keys' limits and use, deployments' cooldowns, whether prompts may be shown.
fn fill_live(state: &AppState, dashboard: &mut Dashboard, now_ms: i64) {
    dashboard.log.prompts = Some(match state.config.log.prompts {
        switchyard_store::PromptLogging::Full => "full".into(),
        switchyard_store::PromptLogging::Hash => "hash".into(),
    });
    if state.config.log.prompts == switchyard_store::PromptLogging::Hash {
        dashboard.hide_prompts();
    }
    let now = std::time::Instant::now();
    for key in state.keys.all() {
        let row = match dashboard.keys.iter().position(|k| k.name == key.name) {
            Some(i) => &mut dashboard.keys[i],
            None => {
                dashboard.keys.push(KeyRow {
                    name: key.name.clone(),
                    requests: 0,
                    spend_usd: 0.0,
                    budget: None,
                    rpm: None,
                    tpm: None,
                });
                let last = dashboard.keys.len() - 1;
                &mut dashboard.keys[last]
            }
        };
        let (requests, tokens) = key.minute_use(now);
        row.budget = key.budget().map(|usd| Budget {
            usd,
            period: key.budget_period().word().to_string(),
            spent_usd: key.spend_at(now_ms),
        });
        row.rpm = key.rpm().map(|limit| Limit { limit: u64::from(limit), used: requests });
        row.tpm = key.tpm().map(|limit| Limit { limit, used: tokens });
    }
    for up in state.deployments.all() {
        match dashboard.deployments.iter_mut().find(|d| d.deployment == up.name) {
            Some(row) => row.cooling = state.health.cooling(&up.name),
            None => dashboard.deployments.push(DeploymentRow {
                deployment: up.name.clone(),
                model: up.model.clone(),
                calls: 0,
                failures: 0,
                upstream_ms: None,
                cooling: state.health.cooling(&up.name),
            }),
        }
    }
}

/// The dashboard as one static HTML file (`switchyard logs report`): the page with its script and stylesheet
/// inlined and `dashboard` embedded as JSON, so it opens anywhere without a server.
pub fn report_html(dashboard: &Dashboard) -> Result<String, serde_json::Error> {
    // `<` escaped, so no value (a prompt, a model name) can close the script element.
    let data = serde_json::to_string(dashboard)?.replace('<', "\\u003c");
    let ui = crate::http::ui::INDEX_HTML;
    Ok(ui
        .replace(
            "<link rel=\"stylesheet\" href=\"/ui/app.css\">",
            &format!("<style>\n{}\n</style>", crate::http::ui::APP_CSS),
        )
        .replace(
            "<script src=\"/ui/app.js\" defer></script>",
            &format!("<script>\n{}\n</script>", crate::http::ui::APP_JS.replace("</script", "<\\/script")),
        )
        .replace("<!--DATA-->", &format!("<script type=\"application/json\" id=\"data\">{data}</script>")))
}
