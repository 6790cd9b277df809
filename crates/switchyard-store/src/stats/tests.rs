use super::*;
use crate::record::{Attempt, DecisionRecord, Feedback};
use crate::Store;

#[test]
fn wilson_matches_a_textbook_value() {
    // 8 of 10: Wilson 95% interval [0.490, 0.943] (Newcombe 1998, table I method 3 style).
    let i = wilson(8, 10).unwrap();
    assert!((i.low - 0.4902).abs() < 1e-3 && (i.high - 0.9433).abs() < 1e-3, "{i:?}");
    let zero = wilson(0, 20).unwrap();
    assert_eq!(zero.low, 0.0);
    assert!(zero.high > 0.1 && zero.high < 0.2);
    assert!(wilson(0, 0).is_none());
}

#[test]
fn arms_are_compared_with_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
    let mut records = Vec::new();
    let mut feedback = Vec::new();
    for i in 0..200 {
        let arm = if i % 2 == 0 { "a" } else { "b" };
        let ok = Attempt { model: "m".into(), deployment: None, status: Some(200), latency_ms: 5.0, error: None };
        let failed = Attempt {
            model: "n".into(),
            deployment: None,
            status: Some(500),
            latency_ms: 5.0,
            error: Some("x".into()),
        };
        let attempts = if arm == "b" && i % 10 == 1 { vec![failed, ok] } else { vec![ok] };
        records.push(DecisionRecord {
            request_id: format!("r{i}"),
            ts_ms: i,
            endpoint: "chat".into(),
            experiment: Some("e".into()),
            arm: Some(arm.into()),
            chosen_model: Some("m".into()),
            status: 200,
            cost_usd: Some(if arm == "a" { 0.01 } else { 0.002 }),
            attempts,
            latency_ms: 10.0,
            // Half of b's answers are cut, a tenth of them refused; a quarter of a's are empty.
            finish_reason: Some(if arm == "b" && i % 4 == 1 { "length" } else { "stop" }.into()),
            response: Some(
                match (arm, i % 8, i % 20) {
                    ("a", 0, _) => "",
                    ("b", _, 3) => "  I'm sorry, but I can't help with that.",
                    _ => "an answer",
                }
                .into(),
            ),
            ..DecisionRecord::default()
        });
        // Arm a scores 0.9 on average, arm b 0.6.
        let score = if arm == "a" { [1.0, 0.8][i as usize / 2 % 2] } else { [0.5, 0.7][i as usize / 2 % 2] };
        feedback.push(Feedback { request_id: format!("r{i}"), api_key: None, score, comment: None, ts_ms: 0 });
    }
    store.insert(&records).unwrap();
    for f in &feedback {
        store.feedback(f).unwrap();
    }
    let s = stats(&store, 0).unwrap();
    assert_eq!((s.requests, s.with_feedback, s.fallbacks), (200, 200, 20));
    assert!((s.spend_usd - (100.0 * 0.01 + 100.0 * 0.002)).abs() < 1e-9);
    let [a, b] = &s.by_arm[..] else { panic!("two arms expected: {:?}", s.by_arm) };
    assert_eq!((a.arm.as_str(), a.calls, b.calls), ("a", 100, 100));
    let fa = a.feedback.unwrap();
    assert!((fa.mean - 0.9).abs() < 1e-9 && fa.low < 0.9 && fa.high > 0.9);
    let diff = b.feedback_vs_first.unwrap();
    assert!((diff.mean + 0.3).abs() < 1e-9 && diff.high < 0.0, "b is clearly worse: {diff:?}");
    assert!(a.feedback_vs_first.is_none());
    assert_eq!((b.significant, b.more_needed, a.significant), (Some(true), None, None));
    assert_eq!((b.cut_rate.unwrap().mean, a.cut_rate.unwrap().mean), (0.5, 0.0));
    assert_eq!((a.empty_rate.unwrap().mean, b.empty_rate.unwrap().mean), (0.25, 0.0));
    assert_eq!((a.refusal_rate.unwrap().mean, b.refusal_rate.unwrap().mean), (0.0, 0.1));
    // With the config's own patterns, only those count.
    let options = StatsOptions { refusal_patterns: vec!["an answer".to_string()], ..StatsOptions::default() };
    let custom = stats_with(&store, 0, &options).unwrap();
    assert_eq!(custom.by_arm[0].refusal_rate.unwrap().mean, 0.75);
    // With b as the control, b comes first and a is compared with it.
    let options = StatsOptions { control: [("e".to_string(), "b".to_string())].into(), ..StatsOptions::default() };
    let s = stats_with(&store, 0, &options).unwrap();
    assert_eq!((s.by_arm[0].arm.as_str(), s.by_arm[1].arm.as_str()), ("b", "a"));
    assert!(s.by_arm[0].feedback_vs_first.is_none());
    assert!((s.by_arm[1].feedback_vs_first.unwrap().mean - 0.3).abs() < 1e-9);
    assert!(s.to_string().contains("against the experiment's control, listed first"));
    assert!((a.latency_ms.unwrap().mean - 10.0).abs() < 1e-9);
    assert_eq!(b.fallback_rate.unwrap().mean, 0.2);
    assert_eq!(a.fallback_rate.unwrap().mean, 0.0);
    assert!((b.spend_per_call.unwrap().mean - 0.002).abs() < 1e-12);
    let text = s.to_string();
    assert!(text.contains("e / b: 100 calls"), "{text}");
}

#[test]
fn keys_are_summed_with_tokens_spend_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
    let row = |i: i64, key: Option<&str>, status: u16| DecisionRecord {
        request_id: format!("r{i}"),
        ts_ms: i,
        endpoint: "chat".into(),
        api_key: key.map(str::to_string),
        status,
        input_tokens: (status == 200).then_some(10),
        output_tokens: (status == 200).then_some(4),
        cost_usd: (status == 200).then_some(0.5),
        ..DecisionRecord::default()
    };
    store
        .insert(&[
            row(1, Some("a"), 200),
            row(2, Some("a"), 200),
            row(3, Some("a"), 429),
            row(4, Some("b"), 200),
            row(5, None, 200),
        ])
        .unwrap();
    let s = stats(&store, 0).unwrap();
    let a = &s.by_key[0];
    assert_eq!((a.key.as_str(), a.requests, a.limited, a.errors), ("a", 3, 1, 1));
    assert_eq!((a.input_tokens, a.output_tokens, a.spend_usd), (20, 8, 1.0));
    let names: Vec<&str> = s.by_key.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(names, ["a", "-", "b"]);
    let table = s.key_table();
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with('a') && l.contains("1.0000")), "{table}");
    assert!(s.to_string().contains("limited"));
}

#[test]
fn a_small_difference_says_how_many_more_requests_it_needs() {
    // Scores 0/1 with means 0.5 and 0.6 over 40 requests each: s² ≈ 0.256 and 0.246; n = 1.96² × 0.502 / 0.01
    // ≈ 193 per arm, so about 153 more.
    let (mut a, mut b) = (Moments::default(), Moments::default());
    for i in 0..40 {
        a.add(f64::from(u8::from(i % 2 == 0)));
        b.add(f64::from(u8::from(i % 5 < 3)));
    }
    let more = more_needed(b.mean - a.mean, &b, &a).unwrap();
    assert!((150..=157).contains(&more), "{more}");
    assert_eq!(more_needed(0.0, &a, &b), None);
}

#[test]
fn no_verdict_without_enough_scores_and_no_empty_rate_without_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
    // One scored request per arm (1 against 0): a difference, but no spread to judge it by.
    for (i, (arm, score)) in [("a", 1.0), ("b", 0.0)].into_iter().enumerate() {
        let record = DecisionRecord {
            request_id: format!("r{i}"),
            endpoint: "chat".into(),
            experiment: Some("e".into()),
            arm: Some(arm.into()),
            status: 200,
            finish_reason: Some("stop".into()),
            response_sha256: Some("x".into()),
            ..DecisionRecord::default()
        };
        store.insert(&[record]).unwrap();
        store
            .feedback(&Feedback { request_id: format!("r{i}"), api_key: None, score, comment: None, ts_ms: 0 })
            .unwrap();
    }
    let s = stats(&store, i64::MIN).unwrap();
    let b = &s.by_arm[1];
    assert_eq!((b.significant, b.more_needed), (None, None), "{b:?}");
    assert!(b.empty_rate.is_none() && b.cut_rate.is_some(), "hashed answers: no empty rate");
}
