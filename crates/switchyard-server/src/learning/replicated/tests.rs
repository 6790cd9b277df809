use super::*;

#[test]
fn a_failed_batch_keeps_its_feedback_scores_not_its_signals() {
    let config = crate::replicas::StateConfig { url: Some("redis://127.0.0.1:1".into()), ..Default::default() };
    let shared = SharedCells::new(SharedState::start(&config).unwrap().unwrap());
    let outcome = |key: &str, once: bool, tries: u8| Outcome {
        key: key.into(),
        half_life: 200.0,
        score: 0.0,
        predicted: 0.8,
        domains: vec![("math".into(), 1.0)],
        once: once.then(|| Once {
            scored_key: format!("scored:{key}"),
            share_key: "share".into(),
            share: 0.25,
            prior_strength: 20.0,
            window_ms: 1_000,
            ts_ms: 1,
            until_ms: 2,
        }),
        tries,
    };
    shared.unsynced.lock().unwrap().push_back(outcome("queued after", true, 0));
    let chunk = vec![outcome("score", true, 0), outcome("signal", false, 0), outcome("tried", true, REPLAY_TRIES - 1)];
    assert_eq!(shared.requeue(chunk), 2, "the signal (it may have landed) and the score tried too often");
    let queue: Vec<(String, u8)> = shared.unsynced.lock().unwrap().iter().map(|o| (o.key.clone(), o.tries)).collect();
    assert_eq!(queue, [("score".to_string(), 1), ("queued after".to_string(), 0)]);
}

#[test]
fn cells_parse_from_their_stored_form() {
    let cell = super::parse_cell("2.5 1 1.75").unwrap();
    assert_eq!((cell.n, cell.successes, cell.predicted), (2.5, 1.0, 1.75));
    assert!(super::parse_cell("2.5 x 1").is_none());
}
