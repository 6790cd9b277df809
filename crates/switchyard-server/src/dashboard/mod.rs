//! The dashboard's data (`GET /admin/stats`): the query read from the request, the decision log's view of the
//! range through a connection kept for the purpose (never the writer's; used from a blocking thread, as a
//! PostgreSQL client must be), and what only the running server knows filled in ([`Live`]: keys' budgets and
//! per-minute use, deployments in cooldown, whether prompts may be shown). The sign-in session is in
//! [`session`]; the page in [`crate::ui`]; the handler that gathers it all from the server's state in
//! `crate::http`. The JSON is documented in `docs/admin-stats.md`.

pub(crate) mod params;
pub(crate) mod session;

use std::collections::BTreeMap;
use std::sync::Mutex;

use switchyard_store::{Budget, Dashboard, DashboardQuery, Database, DeploymentRow, KeyRow, Limit, Location, Pricing};

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

impl Reader {
    /// The view of `query`'s range of the log at `location`, prices from `prices`, savings against
    /// `reference` (or the default); on a blocking thread. The connection is opened the first time (and again
    /// after an error).
    pub fn read(
        &self,
        location: &Location,
        query: &DashboardQuery,
        prices: &BTreeMap<String, (f64, f64)>,
        reference: Option<String>,
    ) -> Result<Dashboard, DashboardError> {
        let mut reader = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if reader.is_none() {
            *reader = Some(Database::open(location).map_err(|e| DashboardError::Log(e.to_string()))?);
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
}

impl Drop for Reader {
    /// A PostgreSQL client closes by running its own small runtime, which must not happen on an async thread
    /// (the server's state may be dropped on one): the connection is closed on a plain thread.
    fn drop(&mut self) {
        let held = self.0.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(db) = held {
            let _ = std::thread::spawn(move || drop(db)).join();
        }
    }
}

/// Every model's price, USD per million input and output tokens: the router's profiles, overridden by the
/// catalog's cards (what the gateway charges).
pub fn prices(
    router: &switchyard_core::Router,
    catalog: &[switchyard_core::ModelCard],
) -> BTreeMap<String, (f64, f64)> {
    let mut prices: BTreeMap<String, (f64, f64)> =
        router.profiles().into_iter().map(|p| (p.model, (p.input_usd_per_mtok, p.output_usd_per_mtok))).collect();
    for card in catalog {
        prices.insert(card.name.clone(), (card.input_usd_per_mtok, card.output_usd_per_mtok));
    }
    prices
}

/// Refuses a reference model without a price, naming the option (`what`) and the models that have one.
pub fn check_reference(
    prices: &BTreeMap<String, (f64, f64)>,
    reference: Option<&str>,
    what: &str,
) -> Result<(), String> {
    match reference.filter(|r| !prices.contains_key(*r)) {
        Some(reference) => {
            let known: Vec<&str> = prices.keys().map(String::as_str).collect();
            Err(format!("{what} {reference:?} has no price in the catalog; pick one of: {}", known.join(", ")))
        }
        None => Ok(()),
    }
}

/// A client key as this server sees it now.
#[derive(Debug, Clone)]
pub struct LiveKey {
    /// Its name.
    pub name: String,
    /// Its budget and what was spent of it in the current period.
    pub budget: Option<Budget>,
    /// Its requests-per-minute limit and the last minute's use.
    pub rpm: Option<Limit>,
    /// Its tokens-per-minute limit and the last minute's use.
    pub tpm: Option<Limit>,
}

/// A deployment as this server sees it now.
#[derive(Debug, Clone)]
pub struct LiveDeployment {
    /// Its name.
    pub name: String,
    /// The model it serves.
    pub model: String,
    /// In cooldown.
    pub cooling: bool,
}

/// What only the running server knows, to fill into the log's view.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The configured client keys.
    pub keys: Vec<LiveKey>,
    /// The configured deployments.
    pub deployments: Vec<LiveDeployment>,
    /// Whether prompts may be shown (`log.prompts = "full"`).
    pub prompts_full: bool,
}

impl Live {
    /// Fills keys' limits and use (adding configured keys with no traffic), deployments' cooldowns (adding
    /// those with no calls), and hides the prompts unless they may be shown.
    pub fn apply(self, dashboard: &mut Dashboard) {
        dashboard.log.prompts = Some(if self.prompts_full { "full" } else { "hash" }.into());
        if !self.prompts_full {
            dashboard.hide_prompts();
        }
        for key in self.keys {
            let row = match dashboard.keys.iter().position(|k| k.name == key.name) {
                Some(i) => &mut dashboard.keys[i],
                None => {
                    let empty = KeyRow {
                        name: key.name.clone(),
                        requests: 0,
                        spend_usd: 0.0,
                        budget: None,
                        rpm: None,
                        tpm: None,
                    };
                    dashboard.keys.push(empty);
                    let last = dashboard.keys.len() - 1;
                    &mut dashboard.keys[last]
                }
            };
            (row.budget, row.rpm, row.tpm) = (key.budget, key.rpm, key.tpm);
        }
        for up in self.deployments {
            match dashboard.deployments.iter_mut().find(|d| d.deployment == up.name) {
                Some(row) => row.cooling = up.cooling,
                None => dashboard.deployments.push(DeploymentRow {
                    deployment: up.name,
                    model: up.model,
                    calls: 0,
                    failures: 0,
                    upstream_ms: None,
                    cooling: up.cooling,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_store::{DashboardQuery, Pricing, Store};

    fn empty_view() -> Dashboard {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.sqlite")).unwrap();
        let pricing = Pricing { price: &|_| None, candidates: Vec::new(), reference: None };
        store.dashboard(&DashboardQuery::new(0, 1_000, 1_000, 10).unwrap(), &pricing).unwrap()
    }

    #[test]
    fn live_state_adds_idle_keys_and_deployments_and_hides_prompts() {
        let mut view = empty_view();
        view.keys.push(KeyRow { name: "busy".into(), requests: 3, spend_usd: 0.5, budget: None, rpm: None, tpm: None });
        view.recent.push(switchyard_store::Recent::of(switchyard_store::DecisionRecord {
            prompt: Some("a secret plan".into()),
            ..Default::default()
        }));
        let live = Live {
            keys: vec![
                LiveKey { name: "busy".into(), budget: None, rpm: Some(Limit { limit: 10, used: 2 }), tpm: None },
                LiveKey { name: "idle".into(), budget: None, rpm: None, tpm: None },
            ],
            deployments: vec![LiveDeployment { name: "m#1".into(), model: "m".into(), cooling: true }],
            prompts_full: false,
        };
        live.apply(&mut view);
        let keys: Vec<(&str, u64, Option<u64>)> =
            view.keys.iter().map(|k| (k.name.as_str(), k.requests, k.rpm.as_ref().map(|r| r.used))).collect();
        assert_eq!(keys, [("busy", 3, Some(2)), ("idle", 0, None)]);
        assert_eq!((view.deployments.len(), view.deployments[0].cooling, view.deployments[0].calls), (1, true, 0));
        assert_eq!((view.log.prompts.as_deref(), view.recent[0].prompt.as_deref()), (Some("hash"), None));
    }
}
