//! Rules: operator overrides applied before the learned policy. A rule matches a request on a header or
//! metadata value, a regex or keywords in the prompt, the prompt's length, or its meaning (the prompt's
//! embedding close to example prompts), and then pins a model, restricts the choice to a tier (a named set of
//! models), or sets the knob. The first matching rule wins.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use switchyard_core::Knob;
use switchyard_encoder::Encoder;

use crate::routing::query::Query;

/// A prompt's similarity to a `similar_to` rule's examples is the mean cosine similarity of its embedding to
/// the nearest this many examples' (fewer when the rule has fewer).
pub const NEAREST: usize = 3;

/// Without a `threshold`, a rule needs this share of the lowest similarity any example has to the others
/// (leave-one-out): a prompt about as close to the examples as they are to one another matches.
pub const AUTO_THRESHOLD_SHARE: f32 = 0.8;

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
    /// Example prompts, as a file with one per line (blank lines and `#` comments skipped) or an inline list:
    /// the prompt matches when its similarity to the examples (the mean cosine similarity of its embedding to
    /// the nearest three examples') reaches `threshold`.
    pub similar_to: Option<Examples>,
    /// The similarity `similar_to` needs, in (0, 1]. Default: 0.8 times the lowest similarity of any example
    /// to the others, computed when the examples are embedded (a single example needs an explicit threshold).
    pub threshold: Option<f64>,
}

/// Where a semantic rule's examples come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Examples {
    /// A text file, one example prompt per line.
    File(PathBuf),
    /// The examples themselves.
    List(Vec<String>),
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

/// A rule ready to match: its regex compiled, its keywords lower-cased, its examples read (and, once
/// [`Rule::embed_examples`] ran, embedded).
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule as configured.
    pub config: RuleConfig,
    regex: Option<regex::Regex>,
    keywords: Option<regex::Regex>,
    examples: Vec<String>,
    vectors: Vec<Vec<f32>>,
    /// The similarity a prompt needs: the configured threshold, else derived from the examples.
    threshold: f32,
}

/// How a rule matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleMatch {
    /// For a `similar_to` rule, the similarity to the nearest example.
    pub similarity: Option<f32>,
}

/// Reads a semantic rule's examples.
fn read_examples(examples: &Examples) -> Result<Vec<String>, String> {
    let list: Vec<String> = match examples {
        Examples::List(list) => list.iter().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect(),
        Examples::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("when.similar_to: cannot read {}: {e}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect(),
    };
    if list.is_empty() {
        return Err("when.similar_to has no example prompts; give at least one".into());
    }
    Ok(list)
}

impl Rule {
    /// A rule's `when` alone, compiled (its `then` is not checked): what scopes an experiment. The error says
    /// what is wrong.
    pub fn scope(config: RuleConfig) -> Result<Self, String> {
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
        if !selects
            && c.regex.is_none()
            && c.keywords.is_empty()
            && c.min_chars.is_none()
            && c.max_chars.is_none()
            && c.similar_to.is_none()
        {
            return Err("`when` needs a condition: header/metadata + equals, regex, keywords, min_chars, max_chars \
                        or similar_to"
                .into());
        }
        if c.threshold.is_some() && c.similar_to.is_none() {
            return Err("when.threshold goes with when.similar_to".into());
        }
        if let Some(t) = c.threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(format!("when.threshold must be in (0, 1], got {t}"));
            }
        }
        let examples = c.similar_to.as_ref().map(read_examples).transpose()?.unwrap_or_default();
        if examples.len() == 1 && c.threshold.is_none() {
            return Err("when.similar_to has a single example: set when.threshold, or give more examples".into());
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
        let threshold = c.threshold.unwrap_or(1.0) as f32;
        Ok(Self { config, regex, keywords, examples, vectors: Vec::new(), threshold })
    }

    /// Compiles a configured rule, checking it against the tiers. The error says what is wrong.
    pub fn new(config: RuleConfig, tiers: &BTreeMap<String, Vec<String>>) -> Result<Self, String> {
        let rule = Self::scope(config)?;
        let t = &rule.config.then;
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
        Ok(rule)
    }

    /// Embeds a semantic rule's examples (at start-up and on reload); other rules have nothing to embed.
    pub fn embed_examples(&mut self, encoder: &dyn Encoder) -> Result<(), String> {
        if self.examples.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = self.examples.iter().map(String::as_str).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(32) {
            let embedded = encoder.embed_batch(chunk).map_err(|e| format!("cannot embed when.similar_to: {e}"))?;
            vectors.extend(embedded.into_iter().map(|e| e.vector));
        }
        if self.config.when.threshold.is_none() {
            let lowest = (0..vectors.len())
                .map(|i| {
                    let others: Vec<&[f32]> =
                        vectors.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, v)| v.as_slice()).collect();
                    similarity(&vectors[i], others)
                })
                .fold(f32::MAX, f32::min);
            self.threshold = AUTO_THRESHOLD_SHARE * lowest;
        }
        tracing::info!(
            rule = self.config.name,
            examples = vectors.len(),
            threshold = self.threshold,
            "semantic rule ready{}",
            if self.config.when.threshold.is_none() { " (threshold from its examples)" } else { "" }
        );
        self.vectors = vectors;
        Ok(())
    }

    /// The similarity a prompt needs to match, for a `similar_to` rule.
    pub fn threshold(&self) -> Option<f32> {
        self.config.when.similar_to.as_ref().map(|_| self.threshold)
    }

    /// How the request matches every condition, or `None`. `embedding` is the prompt's (unit length), which a
    /// `similar_to` condition compares with its examples'.
    pub fn matches(&self, query: &Query, embedding: &[f32]) -> Option<RuleMatch> {
        let c = &self.config.when;
        let equals = |value: Option<&str>| {
            c.equals.as_deref().is_some_and(|want| value.is_some_and(|v| v.trim().eq_ignore_ascii_case(want)))
        };
        if c.header.as_ref().is_some_and(|name| !equals(query.header(name))) {
            return None;
        }
        if c.metadata.as_ref().is_some_and(|key| !equals(query.meta(key))) {
            return None;
        }
        if c.min_chars.is_some() || c.max_chars.is_some() {
            let n = query.prompt.chars().count();
            if c.min_chars.is_some_and(|lo| n < lo) || c.max_chars.is_some_and(|hi| n > hi) {
                return None;
            }
        }
        let words = self.regex.as_ref().is_none_or(|r| r.is_match(&query.prompt))
            && self.keywords.as_ref().is_none_or(|r| r.is_match(&query.prompt));
        if !words {
            return None;
        }
        if c.similar_to.is_none() {
            return Some(RuleMatch { similarity: None });
        }
        if self.vectors.is_empty() || embedding.len() != self.vectors[0].len() {
            return None;
        }
        let score = similarity(embedding, self.vectors.iter().map(Vec::as_slice));
        (score >= self.threshold).then_some(RuleMatch { similarity: Some(score) })
    }
}

/// The mean cosine similarity of a unit vector to its [`NEAREST`] nearest unit vectors among `pool`.
fn similarity<'a>(v: &[f32], pool: impl IntoIterator<Item = &'a [f32]>) -> f32 {
    let mut sims: Vec<f32> = pool.into_iter().map(|p| switchyard_core::dot(v, p)).collect();
    if sims.is_empty() {
        return f32::MIN;
    }
    sims.sort_by(|a, b| b.total_cmp(a));
    let k = NEAREST.min(sims.len());
    sims[..k].iter().sum::<f32>() / k as f32
}

/// The first rule that matches, if any, and how.
pub fn first_match<'r>(rules: &'r [Rule], query: &Query, embedding: &[f32]) -> Option<(&'r Rule, RuleMatch)> {
    rules.iter().find_map(|r| r.matches(query, embedding).map(|m| (r, m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> Result<Rule, String> {
        let config: RuleConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let tiers = BTreeMap::from([("premium".to_string(), vec!["big".to_string()])]);
        Rule::new(config, &tiers)
    }

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn view(headers: Pairs<'_>, metadata: Pairs<'_>, prompt: &str) -> Query {
        let map = |pairs: Pairs<'_>| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Query { prompt: prompt.into(), headers: map(headers), metadata: map(metadata), ..Query::default() }
    }

    trait Hit {
        fn matches_view(&self, q: &Query) -> bool;
    }

    impl Hit for Rule {
        fn matches_view(&self, q: &Query) -> bool {
            self.matches(q, &[]).is_some()
        }
    }

    #[test]
    fn each_condition_matches_what_it_says() {
        let none: Pairs<'_> = &[];
        let premium: Pairs<'_> = &[("x-tier", "Premium")];
        let null: Pairs<'_> = &[];
        let meta: Pairs<'_> = &[("tier", "premium"), ("level", "3")];

        let by_header =
            rule("name = \"h\"\nwhen = { header = \"x-tier\", equals = \"premium\" }\nthen = { tier = \"premium\" }")
                .unwrap();
        assert!(by_header.matches_view(&view(premium, null, "hi")));
        assert!(!by_header.matches_view(&view(none, meta, "hi")));

        let by_meta =
            rule("name = \"m\"\nwhen = { metadata = \"level\", equals = \"3\" }\nthen = { min_quality = 0.9 }")
                .unwrap();
        assert!(by_meta.matches_view(&view(none, meta, "hi")));
        assert!(!by_meta.matches_view(&view(none, null, "hi")));

        let words = rule("name = \"k\"\nwhen = { keywords = [\"contract\", \"lawsuit\"] }\nthen = { model = \"big\" }")
            .unwrap();
        assert!(words.matches_view(&view(none, null, "Review this Contract, please")));
        assert!(!words.matches_view(&view(none, null, "contractual obligations"))); // whole words only
        assert!(!words.matches_view(&view(none, null, "hello")));

        let re = rule("name = \"r\"\nwhen = { regex = '(?i)prove|\\bproof\\b' }\nthen = { model = \"big\" }").unwrap();
        assert!(re.matches_view(&view(none, null, "Give a PROOF that sqrt 2 is irrational")));
        assert!(!re.matches_view(&view(none, null, "waterproofing")));

        let long = rule("name = \"l\"\nwhen = { min_chars = 10, max_chars = 20 }\nthen = { willingness_to_pay = 1.0 }")
            .unwrap();
        assert!(long.matches_view(&view(none, null, "0123456789")));
        assert!(!long.matches_view(&view(none, null, "012345678")));
        assert!(!long.matches_view(&view(none, null, &"x".repeat(21))));

        // Conditions combine with AND; the first matching rule wins.
        let both = rule("name = \"b\"\nwhen = { header = \"x-tier\", equals = \"premium\", keywords = [\"law\"] }\nthen = { model = \"big\" }").unwrap();
        assert!(both.matches_view(&view(premium, null, "a question of law")));
        assert!(!both.matches_view(&view(premium, null, "a question of taste")));
        let rules = [words.clone(), by_header.clone()];
        assert_eq!(first_match(&rules, &view(premium, null, "contract"), &[]).unwrap().0.config.name, "k");
        assert_eq!(first_match(&rules, &view(premium, null, "other"), &[]).unwrap().0.config.name, "h");
        assert!(first_match(&rules, &view(none, null, "other"), &[]).is_none());
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
            ("name = \"x\"\nwhen = { similar_to = [] }\nthen = { model = \"big\" }", "no example prompts"),
            (
                "name = \"x\"\nwhen = { similar_to = \"/nonexistent/legal.txt\" }\nthen = { model = \"big\" }",
                "cannot read /nonexistent/legal.txt",
            ),
            ("name = \"x\"\nwhen = { similar_to = [\"a\"], threshold = 1.5 }\nthen = { model = \"big\" }", "(0, 1]"),
            ("name = \"x\"\nwhen = { min_chars = 3, threshold = 0.5 }\nthen = { model = \"big\" }", "goes with"),
            ("name = \"x\"\nwhen = { similar_to = [\"only one\"] }\nthen = { model = \"big\" }", "single example"),
        ];
        for (text, needle) in cases {
            let err = rule(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn similarity_is_the_mean_over_the_nearest_examples() {
        let unit = |v: [f32; 3]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.map(|x| x / n).to_vec()
        };
        let pool = [unit([1.0, 0.1, 0.0]), unit([1.0, -0.1, 0.0]), unit([1.0, 0.0, 0.1]), unit([0.0, 0.0, 1.0])];
        let near = unit([1.0, 0.0, 0.0]);
        let s = similarity(&near, pool.iter().map(Vec::as_slice));
        // The three nearest are all about 0.995 away; the fourth (orthogonal) is left out.
        assert!((s - 0.995).abs() < 0.001, "{s}");
        let mut rule =
            rule("name = \"s\"\nwhen = { similar_to = [\"a\", \"b\"], threshold = 0.9 }\nthen = { model = \"big\" }")
                .unwrap();
        rule.vectors = pool.to_vec();
        let q = view(&[], &[], "anything");
        assert_eq!(rule.threshold(), Some(0.9));
        assert!(rule.matches(&q, &near).is_some_and(|m| m.similarity.is_some_and(|s| s > 0.99)));
        assert!(rule.matches(&q, &unit([0.0, 1.0, 0.0])).is_none());
        // Not embedded yet (or another encoder's size): no match rather than a wrong one.
        assert!(rule.matches(&q, &[1.0, 0.0]).is_none());
    }
}
