//! The shipped training data obeys the labelled-log contract and agrees with its catalogs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::workspace_root;
use switchyard_core::{read_logs, Catalog, Evidence, Split};

/// (set, models in its catalog, distinct prompts)
const SETS: [(&str, usize, usize); 5] = [
    ("llmrouter", 9, 6108),
    ("zeroeval", 54, 2040),
    ("routellm", 2, 1319 + 160),
    ("routerarena", 2, 809),
    ("default", 15, 8957),
];

#[test]
fn every_set_reads_cleanly_and_matches_its_catalog() {
    for (set, models, prompts) in SETS {
        let dir = workspace_root().join("training-data").join(set);
        let catalog = Catalog::load(&dir.join("catalog.toml")).unwrap();
        assert_eq!(catalog.models.len(), models, "{set}: catalog size");
        assert!(catalog.models.iter().all(|m| m.price_source.is_some()), "{set}: a price lacks its source");

        let mut used = BTreeSet::new();
        let mut ids = BTreeMap::new();
        let mut scores = Vec::new();
        let summary = read_logs(&[dir.join("logs.jsonl.gz")], false, |row| {
            let Evidence::Outcome(o) = &row.evidence else { panic!("{set}: unexpected pairwise row") };
            used.insert(o.model.clone());
            scores.push(o.score);
            let split = row.split.expect("every shipped row has a split");
            // A prompt's rows must all be on one side of the split.
            let previous = ids.insert(row.id.clone().expect("every shipped row has an id"), split);
            assert!(previous.is_none() || previous == Some(split), "{set}: prompt {:?} on both sides", row.id);
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
