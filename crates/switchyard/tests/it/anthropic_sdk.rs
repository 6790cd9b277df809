//! The official `anthropic` Python SDK against a real `switchyard serve` process, changing nothing but
//! `base_url` (`tests/anthropic_sdk_client.py`): the stand-in upstream checked by the SDK's own parsers, a routed
//! call, a stream, a tools round trip through an OpenAI upstream and an Anthropic one (whole and streamed),
//! fallbacks from an Anthropic deployment to an OpenAI one and back, `count_tokens`, typed errors and a key's
//! rate limit as `RateLimitError`. The SDK is installed from PyPI into a virtual environment under the target
//! folder the first time.

use std::path::Path;
use std::process::Command;

use sha2::Digest;
use switchyard_testkit::upstream::{self, Mode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_sdk_works_against_serve() {
    switchyard_testkit::model_files();
    let python = tokio::task::spawn_blocking(|| {
        crate::openai_sdk::python_with("anthropic-venv", "anthropic", "anthropic>=0.40,<3")
    })
    .await
    .unwrap();
    let (addr, fake) = upstream::start().await;
    // claude-3-5-sonnet (Anthropic's API) is overloaded and falls back to gpt-4o (OpenAI's); gpt-4o-mini
    // (OpenAI's) fails and falls back to claude-3-haiku (Anthropic's).
    fake.modes.lock().unwrap().insert("claude-3-5-sonnet".into(), Mode::Fail500);
    fake.modes.lock().unwrap().insert("gpt-4o-mini".into(), Mode::Fail500);
    let limited: String = sha2::Sha256::digest(b"sk-limited").iter().map(|b| format!("{b:02x}")).collect();
    let tables = format!(
        "[[keys]]\nname = \"sdk-limited\"\nkey_sha256 = \"{limited}\"\nrpm = 2\n\
         [[models]]\nname = \"claude-3-5-sonnet\"\nbase_url = \"http://{addr}\"\napi = \"anthropic\"\n\
         api_key_env = \"CARGO_PKG_NAME\"\nsupports_tools = true\nfallbacks = [\"gpt-4o\"]\n\
         [[models]]\nname = \"claude-3-haiku\"\nbase_url = \"http://{addr}\"\napi = \"anthropic\"\n\
         api_key_env = \"CARGO_PKG_NAME\"\nsupports_tools = true\n\
         [[models]]\nname = \"gpt-4o\"\nbase_url = \"http://{addr}/v1\"\nsupports_tools = true\n\
         [[models]]\nname = \"gpt-4o-mini\"\nbase_url = \"http://{addr}/v1\"\nfallbacks = [\"claude-3-haiku\"]\n"
    );
    let server = switchyard_testkit::serve::spawn_with(crate::BIN, "client_keys = [\"sk-test\"]", &tables, addr).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/anthropic_sdk_client.py");
    let (base, upstream_url) = (server.base.clone(), format!("http://{addr}"));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).args([&base, "sk-test", "sk-limited", &upstream_url]).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK checks failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    let keys = fake.anthropic_keys.lock().unwrap().clone();
    // The first two calls are the SDK's own, straight to the stand-in; every call through the gateway carries
    // the deployment's key (api_key_env) as x-api-key.
    assert!(keys.len() > 2 && keys[2..].iter().all(|k| k == "switchyard"), "{keys:?}");
    for check in [
        "stand-in ok",
        "routed call ok",
        "streamed call ok",
        "tools round trip ok",
        "fallback ok",
        "count tokens ok",
        "unknown model ok",
        "bad key ok",
        "rate limit ok",
    ] {
        assert!(stdout.contains(check), "{check} missing:\n{stdout}");
    }
}
