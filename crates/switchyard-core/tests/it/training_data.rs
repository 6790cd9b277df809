//! The shipped training data obeys the labelled-log contract, agrees with its catalogs, and splits cleanly: no
//! prompt id and no normalised prompt text has rows on both sides of the train/test split, within a set or
//! across sets (the default set reuses the others' rows, and a text in one set's train split must not be in
//! another's test split).

use std::collections::{BTreeMap, BTreeSet};

use switchyard_core::{normalize_prompt, read_logs, Catalog, Evidence, Split};
use switchyard_testkit::workspace_root;

/// (set, models in its catalog, distinct prompts)
const SETS: [(&str, usize, usize); 6] = [
    ("llmrouter", 9, 6108),
    ("zeroeval", 54, 2040),
    ("routellm", 2, 1319 + 160),
    ("routerarena", 2, 809),
    ("mmlu-pro", 15, 8839),
    ("default", 15, 8957 + 8839),
];

/// The side of the split a key (an id or a normalised text) was first seen on, and the set it was seen in.
type Sides = BTreeMap<String, (Split, &'static str)>;

/// Records `key` on `split` in `set`; panics if an earlier row (of this set or another) put it on the other side.
fn one_side(seen: &mut Sides, what: &str, key: String, split: Split, set: &'static str) {
    let (first, where_) = *seen.entry(key.clone()).or_insert((split, set));
    assert_eq!(first, split, "{what} {key:?}: {first:?} in {where_}, {split:?} in {set}");
}

#[test]
fn every_set_reads_cleanly_and_matches_its_catalog() {
    // Across every set: which side each id and each normalised text is on.
    let (mut all_ids, mut all_texts) = (Sides::new(), Sides::new());
    for (set, models, prompts) in SETS {
        let dir = workspace_root().join("training-data").join(set);
        let catalog = Catalog::load(&dir.join("catalog.toml")).unwrap();
        assert_eq!(catalog.models.len(), models, "{set}: catalog size");
        assert!(catalog.models.iter().all(|m| m.price_source.is_some()), "{set}: a price lacks its source");

        let mut used = BTreeSet::new();
        let mut ids = BTreeMap::new();
        let mut texts = BTreeMap::new();
        let mut scores = Vec::new();
        let summary = read_logs(&[dir.join("logs.jsonl.gz")], false, |row| {
            let Evidence::Outcome(o) = &row.evidence else { panic!("{set}: unexpected pairwise row") };
            used.insert(o.model.clone());
            scores.push(o.score);
            let split = row.split.expect("every shipped row has a split");
            let id = row.id.clone().expect("every shipped row has an id");
            // A prompt's rows must all be on one side of the split, in this set and in every other.
            let previous = ids.insert(id.clone(), split);
            assert!(previous.is_none() || previous == Some(split), "{set}: prompt {id:?} on both sides");
            one_side(&mut all_ids, "prompt id", id, split, set);
            // So must all rows of one text (the last user turn for chat rows), up to spacing and case: else the
            // test split would score prompts the router was trained on.
            let text = normalize_prompt(&row.prompt);
            let previous = texts.insert(text.clone(), split);
            assert!(previous.is_none() || previous == Some(split), "{set}: text {:?} on both sides", row.prompt);
            one_side(&mut all_texts, "text", text, split, set);
        })
        .unwrap();
        assert_eq!(summary.skipped, 0);
        assert_eq!(ids.len(), prompts, "{set}: prompt count");
        catalog.check_known(used.iter().map(String::as_str)).unwrap();
        assert_eq!(used.len(), models, "{set}: every catalog model has rows");

        let test_share = ids.values().filter(|s| **s == Split::Test).count() as f64 / ids.len() as f64;
        assert!((0.05..0.35).contains(&test_share), "{set}: test share {test_share}");
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        assert!((0.2..0.95).contains(&mean), "{set}: mean score {mean}");
    }
}

#[test]
fn default_profiles_parse_and_cover_the_catalog() {
    const KEYS: [&str; 5] = ["mmlu_redux", "zebra_puzzle", "zebra_easy", "zebra_hard", "zebra_cell"];
    let dir = workspace_root().join("training-data").join("default");
    let catalog = Catalog::load(&dir.join("catalog.toml")).unwrap();
    let doc: toml::Table = std::fs::read_to_string(dir.join("profiles.toml")).unwrap().parse().unwrap();
    let profiles = doc["profiles"].as_array().expect("profiles.toml is a list of [[profiles]]");

    let mut models = BTreeSet::new();
    let mut with_mmlu = 0;
    for profile in profiles {
        let profile = profile.as_table().expect("a profile is a table");
        let model = profile["model"].as_str().expect("a profile names its model");
        assert!(catalog.get(model).is_some(), "profile for {model}, which is not in the catalog");
        assert!(models.insert(model), "two profiles for {model}");
        assert!(profile["source_model"].is_str() && profile["source"].is_str(), "{model}: source missing");
        for (key, value) in profile.iter().filter(|(k, _)| !["model", "source_model", "source"].contains(&k.as_str())) {
            assert!(KEYS.contains(&key.as_str()), "{model}: unknown key {key}");
            let v = value.as_float().unwrap_or_else(|| panic!("{model}: {key} is not a number"));
            assert!((0.0..=1.0).contains(&v), "{model}: {key} = {v} is not a fraction");
        }
        if let Some(mmlu) = profile.get("mmlu_redux").and_then(toml::Value::as_float) {
            assert!(mmlu > 0.3 && mmlu < 1.0, "{model}: mmlu_redux {mmlu}");
            with_mmlu += 1;
        }
    }
    assert_eq!(catalog.models.len(), 15);
    assert!(with_mmlu >= 12, "only {with_mmlu} of the 15 default models have an MMLU-Redux prior");
}
