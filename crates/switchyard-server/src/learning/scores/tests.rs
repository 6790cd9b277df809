//! Feedback's guards, on one replica (and one degraded Redis), driven by the feedback's arrival time.

use std::sync::Arc;

use super::*;
use crate::learning::{LearningConfig, Observation};

/// An arrival time; the tests move it by hours (`learning.key_share_window_s` is 3600 s by default).
const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn learning(config: LearningConfig) -> Learning {
    Learning::with(&LearningConfig { online: true, ..config }, Posteriors::default())
}

fn math(predicted: f64) -> Observation {
    Observation { model: "m".into(), domains: vec![("math".into(), 1.0)], predicted }
}

fn cell(l: &Learning) -> switchyard_core::Cell {
    l.lock().cells["m"]["math"]
}

#[tokio::test]
async fn a_resent_score_replaces_the_first_and_adds_no_observation() {
    let l = learning(LearningConfig::default());
    l.remember_at("sy-1", math(0.8), T0);
    assert_eq!(l.feedback("sy-1", Some("team-a"), 0.0, T0).await, Verdict::Counted);
    for i in 1..=300 {
        assert_eq!(l.feedback("sy-1", Some("team-a"), 0.0, T0 + i).await, Verdict::Replaced);
    }
    let c = cell(&l);
    assert_eq!((c.n, c.successes), (1.0, 0.0), "300 resends are still one observation");
    assert_eq!(l.feedback("sy-1", Some("team-a"), 1.0, T0 + 400).await, Verdict::Replaced);
    assert_eq!(cell(&l).successes, 1.0, "the latest score is the one counted");
    let mut text = String::new();
    l.render(&mut text);
    assert!(text.contains("switchyard_online_updates_total{source=\"feedback\"} 1\n"), "{text}");
}

#[tokio::test]
async fn a_key_moves_a_cell_only_up_to_its_share() {
    let l = learning(LearningConfig::default());
    let mut verdicts = Vec::new();
    for i in 0..20 {
        l.remember_at(&format!("a-{i}"), math(0.8), T0);
        verdicts.push(l.feedback(&format!("a-{i}"), Some("team-a"), 0.0, T0 + i).await);
    }
    // κ = 20: 6 observations are within a quarter of the cell (6 ≤ 0.25 · 26), a 7th is not.
    let counted = verdicts.iter().filter(|v| **v == Verdict::Counted).count();
    assert_eq!(counted, 6, "{verdicts:?}");
    let over = Verdict::KeyShare { model: "m".into(), domain: "math".into() };
    assert_eq!(verdicts[19], over);
    assert!(over.reason().unwrap().1.contains("learning.max_key_share"));
    let n = cell(&l).n;
    assert!((n - 6.0).abs() < 0.1, "six observations (faded by half_life): {n}");
    // At its share, the key cannot move the cell by rescoring either.
    assert_eq!(l.feedback("a-0", Some("team-a"), 1.0, T0 + 30).await, over);
    // Another key, and requests made without a key, are learned from.
    l.remember_at("b-1", math(0.8), T0);
    assert_eq!(l.feedback("b-1", Some("team-b"), 1.0, T0 + 40).await, Verdict::Counted);
    for i in 0..30 {
        l.remember_at(&format!("open-{i}"), math(0.8), T0);
        assert_eq!(l.feedback(&format!("open-{i}"), None, 1.0, T0 + 50 + i).await, Verdict::Counted);
    }
    // With room in the cell, a counted score is replaced (and charged to the key's share).
    assert_eq!(l.feedback("a-0", Some("team-a"), 1.0, T0 + 100).await, Verdict::Replaced);
    let mut text = String::new();
    l.render(&mut text);
    assert!(text.contains("switchyard_online_feedback_unlearned_total{reason=\"key_share\"} 15"), "{text}");
    // With max_key_share = 1 there is no cap.
    let open = learning(LearningConfig { max_key_share: 1.0, ..Default::default() });
    for i in 0..20 {
        open.remember_at(&format!("a-{i}"), math(0.8), T0);
        assert_eq!(open.feedback(&format!("a-{i}"), Some("team-a"), 0.0, T0 + i).await, Verdict::Counted);
    }
}

/// Counts scores of 1 from `key` at `at` for new requests until the key's share refuses one: the ids counted.
async fn bank(l: &Learning, key: &str, at: i64, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..100 {
        let id = format!("{tag}-{i}");
        l.remember_at(&id, math(0.8), at);
        match l.feedback(&id, Some(key), 1.0, at + i).await {
            Verdict::Counted => ids.push(id),
            Verdict::KeyShare { .. } => return ids,
            other => panic!("{other:?}"),
        }
    }
    panic!("the key's share never refused a score");
}

/// The attack of the review: a key banks counts window after window, then flips them all from 1 to 0 at once.
/// Each window lets it move the cell by at most its share of it, counts and rescores together.
#[tokio::test]
async fn counts_banked_over_windows_cannot_be_flipped_at_once() {
    let l = learning(LearningConfig::default());
    let mut banked = Vec::new();
    for window in 0..4 {
        banked.extend(bank(&l, "a", T0 + window * HOUR, &format!("w{window}")).await);
    }
    let before = cell(&l);
    assert!(banked.len() > 25, "{} counted over four windows", banked.len());
    // A window later, every banked score is past its rescore window: none moves the cell.
    for (i, id) in banked.iter().enumerate() {
        let verdict = l.feedback(id, Some("a"), 0.0, T0 + 5 * HOUR + i as i64).await;
        assert_eq!(verdict, Verdict::RescoreClosed, "{id}");
    }
    assert_eq!(cell(&l), before, "the banked counts were flipped");
    assert_eq!(Verdict::RescoreClosed.reason().unwrap().0, "rescore_closed");

    // Within a window, counts and flips share one budget: what the key moves is at most its share.
    let at = T0 + 6 * HOUR;
    let (mut moved, mut flipped) = (0.0, 0);
    for i in 0..100 {
        let id = format!("w6-{i}");
        l.remember_at(&id, math(0.8), at);
        if l.feedback(&id, Some("a"), 1.0, at + 2 * i).await != Verdict::Counted {
            break;
        }
        moved += 1.0;
        match l.feedback(&id, Some("a"), 0.0, at + 2 * i + 1).await {
            Verdict::Replaced => (moved, flipped) = (moved + 1.0, flipped + 1),
            Verdict::KeyShare { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    let after = cell(&l);
    let share = 0.25 * (20.0 + after.n);
    assert!(flipped > 0 && moved <= share + 1e-9, "moved {moved} (flipped {flipped}) with a share of {share}");
    assert!(moved > share - 2.0, "the key used its share: {moved} of {share}");
    let successes_moved = (after.successes - before.successes).abs();
    assert!(successes_moved <= share, "successes moved by {successes_moved}, over the share {share}");
}

#[tokio::test]
async fn a_score_older_than_the_counted_one_does_not_replace_it() {
    let l = learning(LearningConfig::default());
    l.remember_at("sy-1", math(0.8), T0);
    assert_eq!(l.feedback("sy-1", None, 0.0, T0 + 10).await, Verdict::Counted);
    assert_eq!(l.feedback("sy-1", None, 1.0, T0 + 5).await, Verdict::Superseded);
    assert_eq!(cell(&l).successes, 0.0);
    assert_eq!(Verdict::Superseded.reason().unwrap().0, "superseded");
}

#[tokio::test]
async fn feedback_after_a_reload_that_changed_the_estimates_is_not_learned() {
    let l = learning(LearningConfig::default());
    l.lock().fingerprints.insert("m".into(), "before".into());
    l.remember_at("sy-1", math(0.8), T0);
    l.remember_at("sy-2", math(0.8), T0);
    assert_eq!(l.feedback("sy-1", None, 0.0, T0 + 1).await, Verdict::Counted);
    l.lock().fingerprints.insert("m".into(), "after".into());
    l.lock().cells.clear();
    let changed = Verdict::EstimatesChanged { model: "m".into() };
    assert_eq!(l.feedback("sy-1", None, 1.0, T0 + 2).await, changed);
    assert_eq!(l.feedback("sy-2", None, 1.0, T0 + 3).await, changed);
    assert!(l.lock().cells.is_empty(), "the new cells learned from the old estimates' requests");
    assert_eq!(changed.reason().unwrap().0, "estimates_changed");
}

/// While Redis does not answer, the replica decides alone; only what it learned from is written to Redis later.
#[tokio::test]
async fn only_scores_learned_while_redis_is_out_of_reach_are_kept_for_it() {
    let config = crate::replicas::StateConfig { url: Some("redis://127.0.0.1:1".into()), ..Default::default() };
    let shared = crate::replicas::SharedState::start(&config).unwrap().unwrap();
    assert!(shared.is_degraded());
    let mut l = learning(LearningConfig::default());
    l.share(Arc::clone(&shared));
    l.lock().fingerprints.insert("m".into(), "f".into());
    let now = switchyard_store::now_ms();
    let mut verdicts = Vec::new();
    for i in 0..10 {
        l.remember_at(&format!("a-{i}"), math(0.8), now);
        verdicts.push(l.feedback(&format!("a-{i}"), Some("team-a"), 0.0, now + i).await);
    }
    assert_eq!(verdicts.iter().filter(|v| v.learned()).count(), 6, "{verdicts:?}");
    let mut text = String::new();
    shared.render(&mut text);
    assert!(text.contains("switchyard_state_unsynced_outcomes 6\n"), "{text}");
}
