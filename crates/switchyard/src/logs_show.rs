//! `switchyard logs show REQUEST_ID`: one logged request whole, as text.

use std::fmt::Write;

use switchyard_store::LoggedRequest;

/// One request as `logs show` prints it: what was asked, the decision with every model's estimate (best P
/// first), every upstream attempt, the answer, the cost and the feedback.
pub fn render(request: &LoggedRequest) -> String {
    let r = &request.record;
    let mut out = String::new();
    let when = switchyard_store::format_rfc3339(r.ts_ms);
    let _ = writeln!(out, "request   {} at {when} ({}, {})", r.request_id, r.endpoint, stream_word(r.stream));
    let _ = writeln!(
        out,
        "caller    key {}, user {}",
        r.api_key.as_deref().unwrap_or("-"),
        printable(r.user.as_deref().unwrap_or("-"))
    );
    if let Some(messages) = r.messages.as_ref().and_then(serde_json::Value::as_array) {
        let _ = writeln!(out, "messages  ({})", messages.len());
        for m in messages {
            let _ = writeln!(out, "{}", message(m));
        }
    }
    match &r.prompt {
        Some(prompt) => {
            let _ =
                writeln!(out, "prompt    ({} message(s); the last user turn)\n{}", r.messages_count, indent(prompt));
        }
        None => {
            let _ = writeln!(out, "prompt    sha256 {} (log.prompts = \"hash\")", r.prompt_sha256);
        }
    }
    decision(r, &mut out);
    for (i, a) in r.attempts.iter().enumerate() {
        let status = a.status.map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
        let _ = writeln!(
            out,
            "attempt {} {} via {}: {status} in {:.0} ms{}",
            i + 1,
            printable(&a.model),
            printable(a.deployment.as_deref().unwrap_or("-")),
            a.latency_ms,
            a.error.as_deref().map(|e| format!(" ({})", printable(e))).unwrap_or_default()
        );
    }
    answer(r, &mut out);
    let _ = match request.feedback {
        Some(score) => writeln!(out, "feedback  {score}"),
        None => writeln!(out, "feedback  none"),
    };
    out
}

fn stream_word(stream: bool) -> &'static str {
    if stream {
        "streamed"
    } else {
        "whole"
    }
}

/// `text` indented by four spaces, with control characters other than line breaks and tabs shown escaped
/// (so that a logged text cannot move the cursor or recolour the terminal).
fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {}", printable(l))).collect::<Vec<_>>().join("\n")
}

fn printable(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() && c != '\t' { c.escape_unicode().to_string() } else { c.to_string() })
        .collect()
}

/// One logged message: its role, then its text (a part that is not text shown by its kind), indented.
fn message(m: &serde_json::Value) -> String {
    use serde_json::Value;
    if let Some(n) = m.get("omitted_messages").and_then(Value::as_u64) {
        return format!("  ({n} earlier message(s) not kept: log.max_response_chars bounds what is logged)");
    }
    let role = printable(m.get("role").and_then(Value::as_str).unwrap_or("?"));
    let text = match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("text").and_then(Value::as_str) {
                Some(t) => t.to_string(),
                None => format!("[{}]", p.get("type").and_then(Value::as_str).unwrap_or("part")),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let mut notes = Vec::new();
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        notes.push(format!("{} tool call(s)", calls.len()));
    }
    if let Some(why) = m.get("omitted").and_then(Value::as_str) {
        notes.push(printable(why));
    }
    if m.get("truncated").and_then(Value::as_bool) == Some(true) {
        notes.push("cut at log.max_response_chars".to_string());
    }
    let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
    format!("  {role}{notes}\n{}", indent(&text))
}

/// The decision: the model decided, what steered it, and every model's estimate, best P first.
fn decision(r: &switchyard_store::DecisionRecord, out: &mut String) {
    let steered: Vec<String> = [
        r.rule.as_ref().map(|x| format!("rule {x}")),
        r.experiment.as_ref().map(|x| format!("experiment {x} arm {}", r.arm.as_deref().unwrap_or("-"))),
        r.session.as_ref().map(|s| format!("session {s}")),
        r.policy.as_ref().map(|p| format!("policy {p}")),
        r.explored.then(|| "explored".to_string()),
        r.domain.as_ref().map(|d| format!("domain {d}")),
        r.complexity.map(|c| format!("complexity {c:.2}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let _ = writeln!(
        out,
        "decided   {}{}",
        r.decided_model.as_deref().unwrap_or("-"),
        if steered.is_empty() { String::new() } else { format!(" ({})", steered.join(", ")) }
    );
    let mut ranked = r.estimates.clone();
    ranked.sort_by(|a, b| b.p.total_cmp(&a.p));
    for e in ranked {
        let _ = writeln!(out, "    P {:.3}  expected ${:.6}  {}", e.p, e.cost_usd, e.model);
    }
}

/// The answer: who answered, its text (or hash) and tool calls, tokens and cost, a cache hit.
fn answer(r: &switchyard_store::DecisionRecord, out: &mut String) {
    let _ = writeln!(
        out,
        "answered  {} with HTTP {}, finish {}, in {:.0} ms{}",
        r.chosen_model.as_deref().unwrap_or("-"),
        r.status,
        r.finish_reason.as_deref().unwrap_or("-"),
        r.latency_ms,
        if r.cache_hit {
            format!(", from the response cache (saved ${:.6})", r.cache_saved_usd.unwrap_or(0.0))
        } else {
            String::new()
        }
    );
    match (&r.response, &r.response_sha256) {
        (Some(text), _) => {
            let cut = if r.response_truncated {
                " (the text or a tool call's arguments cut at log.max_response_chars)"
            } else {
                ""
            };
            let _ = writeln!(out, "answer{cut}\n{}", indent(text));
        }
        (None, Some(hash)) => {
            let _ = writeln!(out, "answer    sha256 {hash} (log.responses = \"hash\")");
        }
        (None, None) => {
            let _ = writeln!(out, "answer    not logged");
        }
    }
    if let Some(calls) = &r.tool_calls {
        let _ = writeln!(out, "tool calls\n{}", indent(&serde_json::to_string_pretty(calls).unwrap_or_default()));
    }
    let tokens = |t: Option<u64>| t.map_or_else(|| "-".to_string(), |t| t.to_string());
    let _ = writeln!(
        out,
        "usage     {} in, {} out, ${:.6}{}",
        tokens(r.input_tokens),
        tokens(r.output_tokens),
        r.cost_usd.unwrap_or(0.0),
        if r.usage_estimated { " (estimated)" } else { "" }
    );
}

#[cfg(test)]
mod tests {
    use switchyard_store::{Attempt, DecisionRecord, Estimate, PromptLogging, ResponseLogging};

    use super::*;

    #[test]
    fn a_request_is_shown_whole() {
        let mut r = DecisionRecord {
            request_id: "sy-1".into(),
            endpoint: "chat".into(),
            decided_model: Some("big".into()),
            chosen_model: Some("small".into()),
            estimates: vec![
                Estimate { model: "small".into(), p: 0.4, cost_usd: 0.001 },
                Estimate { model: "big".into(), p: 0.9, cost_usd: 0.01 },
            ],
            attempts: vec![
                Attempt {
                    model: "big".into(),
                    deployment: Some("big-eu".into()),
                    status: Some(500),
                    latency_ms: 12.0,
                    error: Some("HTTP 500".into()),
                },
                Attempt { model: "small".into(), deployment: None, status: Some(200), latency_ms: 30.0, error: None },
            ],
            status: 200,
            domain: Some("math".into()),
            complexity: Some(0.125),
            ..DecisionRecord::default()
        };
        r.set_prompt("What is 2 + 2?", PromptLogging::Full);
        let answer = serde_json::json!({"choices": [{"message": {"content": "4"}, "finish_reason": "stop"}]});
        r.set_response(&answer, ResponseLogging::Full, 100);
        let text = render(&LoggedRequest { record: r, feedback: Some(0.0) });
        for expected in [
            "request   sy-1",
            "    What is 2 + 2?",
            "decided   big (domain math, complexity 0.12)",
            "attempt 1 big via big-eu: HTTP 500 in 12 ms (HTTP 500)",
            "answered  small with HTTP 200, finish stop",
            "answer\n    4",
            "feedback  0",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        // Best P first.
        assert!(text.find("P 0.900").unwrap() < text.find("P 0.400").unwrap(), "{text}");
    }

    #[test]
    fn a_conversation_is_shown_and_control_characters_are_escaped() {
        let mut r = DecisionRecord {
            request_id: "sy-2".into(),
            messages_count: 3,
            user: Some("u\u{7}".into()),
            ..DecisionRecord::default()
        };
        let messages = serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {}}]},
            {"role": "user\u{1b}[2J", "content": "Say \u{1b}[31mred"}
        ]);
        r.set_messages(Some(&messages), PromptLogging::Full, ResponseLogging::Full, 4);
        r.set_prompt("Say \u{1b}[31mred", PromptLogging::Full);
        let text = render(&LoggedRequest { record: r, feedback: None });
        for expected in [
            "messages  (3)",
            "  system (cut at log.max_response_chars)\n    Be b",
            "  user\n    Look\n    [image_url]",
            "    Say \\u{1b}[31mred",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "no raw escape reaches the terminal");
        assert!(text.contains("user\\u{1b}[2J") && text.contains("user u\\u{7}"), "{text}");
    }
}
