"""Drives a running `switchyard serve` with the official Anthropic Python SDK, changing nothing but base_url.

Usage: python3 crates/switchyard/tests/anthropic_sdk_client.py BASE_URL API_KEY LIMITED_KEY UPSTREAM_URL
(run by tests/it/anthropic_sdk.rs). UPSTREAM_URL is the stand-in upstream: the SDK's own parser checks that it
speaks Anthropic's API faithfully. Prints one line per check and exits non-zero on the first failure.
"""
import sys

import anthropic
from anthropic import Anthropic

base_url, api_key, limited_key, upstream_url = sys.argv[1:5]
client = Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
ask = [{"role": "user", "content": "What is the capital of Japan?"}]

# The stand-in itself, through the SDK's parsers: a whole answer and a stream.
direct = Anthropic(base_url=upstream_url, api_key="sk-upstream", max_retries=0)
reply = direct.messages.create(model="claude-3-haiku", max_tokens=50, messages=ask)
assert reply.content[0].text == "hello from claude-3-haiku" and reply.usage.output_tokens == 3, reply
with direct.messages.stream(model="claude-3-haiku", max_tokens=50, messages=ask) as s:
    assert "".join(s.text_stream) == "hello from claude-3-haiku"
print("stand-in ok")

# A routed call.
raw = client.messages.with_raw_response.create(model="switchyard", max_tokens=100, messages=ask)
reply = raw.parse()
routed_to = raw.headers["x-switchyard-model"]
assert reply.type == "message" and reply.role == "assistant", reply
assert reply.content[0].text == f"hello from {routed_to}", reply
assert reply.stop_reason == "end_turn" and reply.usage.input_tokens == 5 and reply.usage.output_tokens == 3, reply
print(f"routed call ok: {routed_to}")

# A stream, with the SDK's helper (which checks the event sequence as it accumulates it).
with client.messages.stream(model="switchyard", max_tokens=100, messages=ask) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
assert text == final.content[0].text == "hello", (text, final)  # the OpenAI stand-in streams "hel", "lo"
assert final.usage.output_tokens == 3 and final.stop_reason == "end_turn", final
print("streamed call ok")

# Tools: the model calls one, the client sends the result back; and a streamed call, whose input arrives as
# input_json_delta pieces.
tools = [{"name": "weather", "description": "The weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
turns = [{"role": "user", "content": "What is the weather in Paris?"}]
for model in ("gpt-4o", "claude-3-haiku"):  # an OpenAI upstream and an Anthropic one
    call = client.messages.create(model=model, max_tokens=100, tools=tools, messages=turns)
    assert call.stop_reason == "tool_use", call
    use = next(b for b in call.content if b.type == "tool_use")
    assert use.name == "weather" and use.input == {"city": "Paris"}, use
    answer = client.messages.create(model=model, max_tokens=100, tools=tools, messages=turns + [
        {"role": "assistant", "content": call.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C"}]},
    ])
    assert answer.content[0].text == "the tool said: 18 C", answer
    with client.messages.stream(model=model, max_tokens=100, tools=tools, messages=turns) as s:
        final = s.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.input == {"city": "Paris"} and final.stop_reason == "tool_use", final
print("tools round trip ok")

# Fallbacks across APIs: an overloaded Anthropic deployment falls back to an OpenAI model, and back.
raw = client.messages.with_raw_response.create(model="claude-3-5-sonnet", max_tokens=50, messages=ask)
assert raw.headers["x-switchyard-model"] == "gpt-4o", raw.headers
assert raw.parse().content[0].text == "hello from gpt-4o"
raw = client.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=50, messages=ask)
assert raw.headers["x-switchyard-model"] == "claude-3-haiku", raw.headers
assert raw.parse().content[0].text == "hello from claude-3-haiku"
print("fallback ok")

count = client.messages.count_tokens(model="switchyard", messages=ask)
assert count.input_tokens == 8, count
print("count tokens ok")

# Errors come back as the SDK's typed exceptions.
try:
    client.messages.create(model="gpt-9", max_tokens=10, messages=ask)
    raise AssertionError("an unknown model was accepted")
except anthropic.NotFoundError as e:
    assert e.body["error"]["type"] == "not_found_error", e.body
print("unknown model ok")

try:
    Anthropic(base_url=base_url, api_key="wrong", max_retries=0).messages.create(
        model="switchyard", max_tokens=10, messages=ask)
    raise AssertionError("a wrong key was accepted")
except anthropic.AuthenticationError:
    print("bad key ok")

limited = Anthropic(base_url=base_url, api_key=limited_key, max_retries=0)
for _ in range(2):
    limited.messages.create(model="switchyard", max_tokens=10, messages=ask)
try:
    limited.messages.create(model="switchyard", max_tokens=10, messages=ask)
    raise AssertionError("the third request in a minute was accepted with rpm = 2")
except anthropic.RateLimitError as e:
    assert e.body["error"]["type"] == "rate_limit_error", e.body
    assert int(e.response.headers["retry-after"]) >= 1, e.response.headers
print("rate limit ok")
