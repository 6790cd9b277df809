"""Drives a running `switchyard serve` with the official OpenAI Python SDK, changing nothing but base_url.

Usage: python3 crates/switchyard/tests/openai_sdk_client.py BASE_URL API_KEY LIMITED_KEY   (run by tests/it/openai_sdk.rs)
Prints one line per check and exits non-zero on the first failure.
"""
import sys

import openai
from openai import OpenAI

base_url, api_key, limited_key = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

# A routed call.
raw = client.chat.completions.with_raw_response.create(
    model="switchyard", messages=[{"role": "user", "content": "What is the capital of Japan?"}]
)
reply = raw.parse()
routed_to = raw.headers["x-switchyard-model"]
assert reply.choices[0].message.content == f"hello from {routed_to}", reply
print(f"routed call ok: {routed_to}")

# A streamed call.
stream = client.chat.completions.create(
    model="switchyard", stream=True, messages=[{"role": "user", "content": "Say hello."}]
)
# The gateway asks the upstream for usage to count spend, and strips it when the client did not ask: every
# chunk the SDK sees has a choice.
text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
assert text == "hello", text
print("streamed call ok")

# A client that asks for usage gets it, in a final chunk with no choices.
stream = client.chat.completions.create(
    model="switchyard",
    stream=True,
    stream_options={"include_usage": True},
    messages=[{"role": "user", "content": "Say hello."}],
)
chunks = list(stream)
assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 5, chunks[-1]
assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"
print("streamed usage ok")

# Errors come back as the SDK's typed exceptions.
try:
    client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.body["code"] == "model_not_found", e.body
print("unknown model ok")

try:
    OpenAI(base_url=base_url, api_key="wrong", max_retries=0).chat.completions.create(
        model="switchyard", messages=[{"role": "user", "content": "hi"}]
    )
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    print("bad key ok")

# A key over its rate limit gets the SDK's RateLimitError, with retry-after.
limited = OpenAI(base_url=base_url, api_key=limited_key, max_retries=0)
for _ in range(2):
    limited.chat.completions.create(model="switchyard", messages=[{"role": "user", "content": "hi"}])
try:
    limited.chat.completions.create(model="switchyard", messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("the third request in a minute was accepted with rpm = 2")
except openai.RateLimitError as e:
    assert e.body["code"] == "rate_limit_exceeded", e.body
    assert int(e.response.headers["retry-after"]) >= 1, e.response.headers
print("rate limit ok")

models = [m.id for m in client.models.list()]
assert "switchyard" in models and routed_to in models, models
print("models ok")
