//! Rules: operator overrides applied before the learned policy. A rule matches a request on a header or
//! metadata value, a regex or keywords in the prompt, or the prompt's length, and then pins a model, restricts
//! the choice to a tier (a named set of models), or sets the knob. The first matching rule wins.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use switchyard_core::Knob;

/// `[[rules]]` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Shown in decisions, logs and metrics.
    pub name: String,
    /// What the request must look like (every condition given must hold).
    pub when: Condition,
    /// What the rule does.
    pub then: Action,
}

/// When a rule fires. Every condition that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A request header whose value must equal `equals`.
    pub header: Option<String>,
    /// A key of the request's `metadata` whose value must equal `equals`.
    pub metadata: Option<String>,
    /// The value `header` or `metadata` must have (compared case-insensitively).
    pub equals: Option<String>,
    /// A regular expression that must match somewhere in the prompt (`(?i)` for case-insensitive).
    pub regex: Option<String>,
    /// Words of which at least one must appear in the prompt (case-insensitive, whole words).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The prompt has at least this many characters.
    pub min_chars: Option<usize>,
    /// The prompt has at most this many characters.
    pub max_chars: Option<usize>,
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Send the request to this model (the learned ranking still supplies the fallbacks).
    pub model: Option<String>,
    /// Choose only among the models of this `[tiers]` entry.
    pub tier: Option<String>,
    /// Set the quality bar.
    pub min_quality: Option<f64>,
    /// Set the willingness to pay (USD per success).
    pub willingness_to_pay: Option<f64>,
}

impl Action {
    /// The knob the action sets, if any.
    pub fn knob(&self) -> Option<Knob> {
        Knob::from_options(self.min_quality, self.willingness_to_pay)
    }
}

/// A rule ready to match: its regex compiled, its keywords lower-cased.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule as configured.
    pub config: RuleConfig,
    regex: Option<regex::Regex>,
    keywords: Option<regex::Regex>,
}

/// What a rule match needs to see of a request.
pub struct RequestView<'a> {
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The body's `metadata` (`Null` when absent).
    pub metadata: &'a Value,
    /// The prompt the router reads.
    pub prompt: &'a str,
}

impl Rule {
    /// Compiles a configured rule, checking it against the tiers. The error says what is wrong.
    pub fn new(config: RuleConfig, tiers: &BTreeMap<String, Vec<String>>) -> Result<Self, String> {
        let c = &config.when;
        if config.name.trim().is_empty() {
            return Err("needs a non-empty `name`".into());
        }
        let selects = c.header.is_some() || c.metadata.is_some();
        if selects != c.equals.is_some() {
            return Err("`when.header` or `when.metadata` goes with `when.equals` (the value to match)".into());
        }
        if c.header.is_some() && c.metadata.is_some() {
            return Err("set `when.header` or `when.metadata`, not both (write two rules)".into());
        }
        if !selects && c.regex.is_none() && c.keywords.is_empty() && c.min_chars.is_none() && c.max_chars.is_none() {
            return Err(
                "`when` needs a condition: header/metadata + equals, regex, keywords, min_chars or max_chars".into()
            );
        }
        if let (Some(lo), Some(hi)) = (c.min_chars, c.max_chars) {
            if lo > hi {
                return Err(format!("when.min_chars ({lo}) is above when.max_chars ({hi})"));
            }
        }
        let regex = c
            .regex
            .as_deref()
            .map(|r| regex::Regex::new(r).map_err(|e| format!("when.regex does not compile: {e}")))
            .transpose()?;
        if c.keywords.iter().any(|k| k.trim().is_empty()) {
            return Err("when.keywords must not contain empty words".into());
        }
        let keywords = (!c.keywords.is_empty())
            .then(|| {
                let words: Vec<String> = c.keywords.iter().map(|k| regex::escape(k.trim())).collect();
                regex::Regex::new(&format!(r"(?i)\b(?:{})\b", words.join("|")))
                    .map_err(|e| format!("when.keywords cannot be matched: {e}"))
            })
            .transpose()?;
        let t = &config.then;
        let targets = usize::from(t.model.is_some()) + usize::from(t.tier.is_some());
        if t.min_quality.is_some() && t.willingness_to_pay.is_some() {
            return Err("set then.min_quality or then.willingness_to_pay, not both".into());
        }
        if targets > 1 || (t.model.is_some() && t.knob().is_some()) {
            return Err("`then` takes a model, or a tier and/or a knob".into());
        }
        if targets == 0 && t.knob().is_none() {
            return Err("`then` needs model, tier, min_quality or willingness_to_pay".into());
        }
        if let Some(k) = t.knob() {
            k.validate().map_err(|e| format!("then: {e}"))?;
        }
        if let Some(tier) = &t.tier {
            if !tiers.contains_key(tier) {
                return Err(format!("then.tier {tier:?} is not defined in [tiers]"));
            }
        }
        Ok(Self { config, regex, keywords })
    }

    /// Whether the request matches every condition.
    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        let c = &self.config.when;
        let equals = |value: Option<&str>| {
            c.equals.as_deref().is_some_and(|want| value.is_some_and(|v| v.trim().eq_ignore_ascii_case(want)))
        };
        if let Some(name) = &c.header {
            if !equals(request.headers.get(name.as_str()).and_then(|v| v.to_str().ok())) {
                return false;
            }
        }
        if let Some(key) = &c.metadata {
            let value = match request.metadata.get(key) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
                _ => None,
            };
            if !equals(value.as_deref()) {
                return false;
            }
        }
        if c.min_chars.is_some() || c.max_chars.is_some() {
            let n = request.prompt.chars().count();
            if c.min_chars.is_some_and(|lo| n < lo) || c.max_chars.is_some_and(|hi| n > hi) {
                return false;
            }
        }
        self.regex.as_ref().is_none_or(|r| r.is_match(request.prompt))
            && self.keywords.as_ref().is_none_or(|r| r.is_match(request.prompt))
    }
}

/// The first rule that matches, if any.
pub fn first_match<'r>(rules: &'r [Rule], request: &RequestView<'_>) -> Option<&'r Rule> {
    rules.iter().find(|r| r.matches(request))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(toml_text: &str) -> Result<Rule, String> {
        let config: RuleConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let tiers = BTreeMap::from([("premium".to_string(), vec!["big".to_string()])]);
        Rule::new(config, &tiers)
    }

    fn view<'a>(headers: &'a HeaderMap, metadata: &'a Value, prompt: &'a str) -> RequestView<'a> {
        RequestView { headers, metadata, prompt }
    }

    #[test]
    fn each_condition_matches_what_it_says() {
        let none = HeaderMap::new();
        let mut premium = HeaderMap::new();
        premium.insert("x-tier", "Premium".parse().unwrap());
        let null = Value::Null;
        let meta = json!({"tier": "premium", "level": 3});

        let by_header =
            rule("name = \"h\"\nwhen = { header = \"x-tier\", equals = \"premium\" }\nthen = { tier = \"premium\" }")
                .unwrap();
        assert!(by_header.matches(&view(&premium, &null, "hi")));
        assert!(!by_header.matches(&view(&none, &meta, "hi")));

        let by_meta =
            rule("name = \"m\"\nwhen = { metadata = \"level\", equals = \"3\" }\nthen = { min_quality = 0.9 }")
                .unwrap();
        assert!(by_meta.matches(&view(&none, &meta, "hi")));
        assert!(!by_meta.matches(&view(&none, &null, "hi")));

        let words = rule("name = \"k\"\nwhen = { keywords = [\"contract\", \"lawsuit\"] }\nthen = { model = \"big\" }")
            .unwrap();
        assert!(words.matches(&view(&none, &null, "Review this Contract, please")));
        assert!(!words.matches(&view(&none, &null, "contractual obligations"))); // whole words only
        assert!(!words.matches(&view(&none, &null, "hello")));

        let re = rule("name = \"r\"\nwhen = { regex = '(?i)prove|\\bproof\\b' }\nthen = { model = \"big\" }").unwrap();
        assert!(re.matches(&view(&none, &null, "Give a PROOF that sqrt 2 is irrational")));
        assert!(!re.matches(&view(&none, &null, "waterproofing")));

        let long = rule("name = \"l\"\nwhen = { min_chars = 10, max_chars = 20 }\nthen = { willingness_to_pay = 1.0 }")
            .unwrap();
        assert!(long.matches(&view(&none, &null, "0123456789")));
        assert!(!long.matches(&view(&none, &null, "012345678")));
        assert!(!long.matches(&view(&none, &null, &"x".repeat(21))));

        // Conditions combine with AND; the first matching rule wins.
        let both = rule("name = \"b\"\nwhen = { header = \"x-tier\", equals = \"premium\", keywords = [\"law\"] }\nthen = { model = \"big\" }").unwrap();
        assert!(both.matches(&view(&premium, &null, "a question of law")));
        assert!(!both.matches(&view(&premium, &null, "a question of taste")));
        let rules = [words.clone(), by_header.clone()];
        assert_eq!(first_match(&rules, &view(&premium, &null, "contract")).unwrap().config.name, "k");
        assert_eq!(first_match(&rules, &view(&premium, &null, "other")).unwrap().config.name, "h");
        assert!(first_match(&rules, &view(&none, &null, "other")).is_none());
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let cases = [
            ("name = \"x\"\nwhen = {}\nthen = { model = \"big\" }", "needs a condition"),
            ("name = \"x\"\nwhen = { header = \"x-tier\" }\nthen = { model = \"big\" }", "when.equals"),
            ("name = \"x\"\nwhen = { regex = \"(unclosed\" }\nthen = { model = \"big\" }", "does not compile"),
            ("name = \"x\"\nwhen = { min_chars = 5 }\nthen = {}", "needs model, tier"),
            ("name = \"x\"\nwhen = { min_chars = 5 }\nthen = { tier = \"gold\" }", "not defined in [tiers]"),
            (
                "name = \"x\"\nwhen = { min_chars = 5 }\nthen = { model = \"a\", min_quality = 0.5 }",
                "a model, or a tier",
            ),
            ("name = \"x\"\nwhen = { min_chars = 5 }\nthen = { min_quality = 1.5 }", "min_quality"),
            ("name = \"x\"\nwhen = { min_chars = 9, max_chars = 3 }\nthen = { model = \"a\" }", "above"),
            ("name = \"x\"\nwhen = { sometimes = true }\nthen = { model = \"a\" }", "unknown field"),
        ];
        for (text, needle) in cases {
            let err = rule(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
