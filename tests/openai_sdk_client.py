"""Drives a running `switchyard serve` with the official OpenAI Python SDK, changing nothing but base_url.

Usage: python3 tests/openai_sdk_client.py BASE_URL API_KEY   (run by tests/openai_sdk.rs)
Prints one line per check and exits non-zero on the first failure.
"""
import sys

import openai
from openai import OpenAI

base_url, api_key = sys.argv[1], sys.argv[2]
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
text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
assert text == "hello", text
print("streamed call ok")

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

models = [m.id for m in client.models.list()]
assert "switchyard" in models and routed_to in models, models
print("models ok")
