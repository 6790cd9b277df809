//! Which models a request may be sent to, in the order they are tried: each ranked model followed by its
//! named fallbacks, then only those the caller's key allows, with a deployment, able to take what the request
//! sends (tools, images, a JSON schema), and with a context window for the conversation plus the requested
//! output.

use switchyard_core::ModelCard;

use crate::gateway::deployments::Deployments;
use crate::gateway::error::GatewayError;
use crate::routing::query::Needs;

/// Each model of `ranking` followed by its fallbacks (chained), without repeats.
pub(crate) fn with_fallbacks(ranking: &[String], deployments: &Deployments) -> Vec<String> {
    let mut models: Vec<String> = Vec::new();
    for name in ranking {
        for m in deployments.with_fallbacks(name) {
            if !models.contains(&m) {
                models.push(m);
            }
        }
    }
    models
}

/// The catalog entries (`card(name)`) of `candidates` that can serve the request, in order. `allows` is the
/// caller's key;
/// `needed_tokens` the conversation plus the requested output. A request that needs what none of the allowed
/// models declares is the client's error; a request no model can reach is [`GatewayError::NoUpstream`].
pub(crate) fn reachable<'c>(
    candidates: &[String],
    card: impl Fn(&str) -> Option<&'c ModelCard>,
    allows: impl Fn(&str) -> bool,
    needs: Needs,
    needed_tokens: f64,
) -> Result<Vec<&'c ModelCard>, GatewayError> {
    let allowed: Vec<&ModelCard> = candidates
        .iter()
        .filter(|name| allows(name))
        .filter_map(|name| card(name).filter(|m| m.has_deployment()))
        .collect();
    let capable: Vec<&ModelCard> = allowed.iter().copied().filter(|m| needs.missing(m).is_empty()).collect();
    if let (true, Some(first)) = (capable.is_empty(), allowed.first()) {
        return Err(GatewayError::Unsupported(format!(
            "this request sends {}, but {} lacks {} in [[models]]; send it to a model that declares it, or to \
             \"switchyard\" to route among those that do",
            needs.describe(),
            allowed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
            needs.missing(first).join(" and ")
        )));
    }
    let reachable: Vec<&ModelCard> =
        capable.into_iter().filter(|m| m.context_window.is_none_or(|w| w as f64 >= needed_tokens)).collect();
    if reachable.is_empty() {
        return Err(GatewayError::NoUpstream(format!(
            "none of the candidate models ({}) has a base_url or deployments in the config's [[models]] and a \
             context window of at least {needed_tokens:.0} tokens",
            candidates.join(", ")
        )));
    }
    Ok(reachable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<ModelCard> {
        let text = r#"
            [[models]]
            name = "small"
            base_url = "http://127.0.0.1:9/v1"
            context_window = 8000
            fallbacks = ["big"]
            [[models]]
            name = "big"
            base_url = "http://127.0.0.1:9/v1"
            supports_tools = true
            [[models]]
            name = "nowhere"
        "#;
        let catalog: switchyard_core::Catalog = toml::from_str(text).unwrap();
        catalog.models
    }

    fn names(cards: &[&ModelCard]) -> Vec<String> {
        cards.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn ranked_models_bring_their_fallbacks_right_after_them() {
        let deployments = Deployments::new(&catalog());
        let ranking = vec!["small".to_string(), "nowhere".to_string(), "big".to_string()];
        assert_eq!(with_fallbacks(&ranking, &deployments), ["small", "big", "nowhere"]);
    }

    #[test]
    fn candidates_are_filtered_by_key_deployment_needs_and_context() {
        let cards = catalog();
        let catalog = |m: &str| cards.iter().find(|c| c.name == m);
        let all = vec!["small".to_string(), "big".to_string(), "nowhere".to_string()];
        let any = |_: &str| true;
        let ok = reachable(&all, catalog, any, Needs::default(), 100.0).unwrap();
        assert_eq!(names(&ok), ["small", "big"], "a model without a deployment is skipped");
        let ok = reachable(&all, catalog, |m| m != "small", Needs::default(), 100.0).unwrap();
        assert_eq!(names(&ok), ["big"]);
        let ok = reachable(&all, catalog, any, Needs::default(), 9000.0).unwrap();
        assert_eq!(names(&ok), ["big"], "small's 8,000-token window is too small");
        let tools = Needs { tools: true, ..Needs::default() };
        assert_eq!(names(&reachable(&all, catalog, any, tools, 100.0).unwrap()), ["big"]);

        let only_small = vec!["small".to_string()];
        let e = reachable(&only_small, catalog, any, tools, 100.0).unwrap_err();
        assert!(matches!(&e, GatewayError::Unsupported(m) if m.contains("small lacks supports_tools")), "{e}");
        let e = reachable(&only_small, catalog, any, Needs::default(), 9000.0).unwrap_err();
        assert!(matches!(&e, GatewayError::NoUpstream(m) if m.contains("at least 9000 tokens")), "{e}");
    }
}
