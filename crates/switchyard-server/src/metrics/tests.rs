//! The metrics' text rendering.

use super::*;

#[test]
fn renders_counters_and_cumulative_buckets() {
    let m = Metrics::default();
    m.request("/v1/route", "gpt-4o-mini", 200, "-");
    m.request("/v1/route", "gpt-4o-mini", 200, "-");
    m.decision(0.003, 0.4);
    m.decision(0.2, 1.0);
    m.fallback();
    let text = m.render();
    assert!(
        text.contains(
            "switchyard_requests_total{endpoint=\"/v1/route\",model=\"gpt-4o-mini\",status=\"200\",arm=\"-\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("switchyard_decision_seconds_bucket{le=\"0.005\"} 1"), "{text}");
    assert!(text.contains("switchyard_decision_seconds_bucket{le=\"0.25\"} 2"), "{text}");
    assert!(text.contains("switchyard_decision_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
    assert!(text.contains("switchyard_decision_seconds_count 2") && text.contains("switchyard_fallbacks_total 1"));
    assert!(text.contains("switchyard_route_ood_bucket{le=\"0.5\"} 1"), "{text}");
    assert!(text.contains("switchyard_route_ood_bucket{le=\"0.999\"} 1"), "{text}");
    assert!(text.contains("switchyard_route_ood_bucket{le=\"1\"} 2"), "{text}");
    assert_eq!(escape("a\"b"), "a\\\"b");
}

#[test]
fn arms_count_cut_answers_of_those_with_a_finish_reason_and_first_feedback() {
    let m = Metrics::default();
    for cut in [Some(true), Some(false), None, Some(false)] {
        let finished = ArmRequest { spend_usd: Some(0.5), fell_back: false, latency_s: 0.25, cut };
        m.arm("e", "a", finished);
    }
    m.arm_feedback("e", "a", 0.75);
    let text = m.render();
    for line in [
        "switchyard_arm_requests_total{experiment=\"e\",arm=\"a\"} 4",
        "switchyard_arm_cost_usd_total{experiment=\"e\",arm=\"a\"} 2",
        "switchyard_arm_latency_seconds_total{experiment=\"e\",arm=\"a\"} 1",
        "switchyard_arm_judged_total{experiment=\"e\",arm=\"a\"} 3",
        "switchyard_arm_cut_total{experiment=\"e\",arm=\"a\"} 1",
        "switchyard_arm_feedback_total{experiment=\"e\",arm=\"a\"} 1",
        "switchyard_arm_feedback_score_total{experiment=\"e\",arm=\"a\"} 0.75",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}
