use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("switchyard.toml"))
}

#[test]
fn sessions_are_read_under_their_old_section_name_too() {
    let path = Path::new("switchyard.toml");
    let old = Config::parse("[routing]\ndeescalate_after = 5\n", path).unwrap();
    let new = Config::parse("[sessions]\ndeescalate_after = 5\n", path).unwrap();
    assert_eq!((old.sessions.deescalate_after, new.sessions), (5, old.sessions.clone()));
    let both = Config::parse("[routing]\ndeescalate_after = 5\n[sessions]\nmax_sessions = 9\n", path);
    assert!(both.unwrap_err().to_string().contains("sessions"));
    let e = Config::parse("[sessions]\ndeescalate_after = 0\n", path).unwrap_err().to_string();
    assert!(e.contains("sessions.deescalate_after"), "{e}");
}

#[test]
fn defaults_and_a_full_file() {
    let c = parse("").unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.router.path, PathBuf::from("models/default"));
    let c = parse(
        "[server]\nlisten = \"0.0.0.0:9000\"\nclient_keys = [\"k1\"]\n[router]\npath = \"r\"\nmin_quality = 0.6\n\
         [encoder]\nmax_tokens = 128\n[[models]]\nname = \"a\"\ninput_usd_per_mtok = 1.0\n",
    )
    .unwrap();
    assert_eq!(c.default_knob(), Some(Knob::MinQuality(0.6)));
    assert_eq!(c.models.len(), 1);
}

#[test]
fn the_bundled_config_is_the_defaults() {
    let bundled = parse(include_str!("../../../../switchyard.toml")).unwrap();
    assert_eq!(bundled, parse("").unwrap());
    assert!(bundled.log.enabled && bundled.rules.is_empty() && bundled.experiment.is_none());
}

#[test]
fn the_worked_example_in_the_readme_is_valid() {
    let c = parse(include_str!("../../../../examples/two-providers.toml")).unwrap();
    assert_eq!((c.keys.len(), c.models.len(), c.rules.len()), (2, 5, 1));
    let gpt = c.models.iter().find(|m| m.name == "gpt-4o").unwrap();
    assert_eq!(gpt.endpoints().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["gpt-4o-azure", "gpt-4o-openai"]);
    assert_eq!(c.server.first_byte_timeout(), std::time::Duration::from_secs(45));
}

#[test]
fn the_old_total_timeout_is_an_alias_of_the_first_byte_limit() {
    let c = parse("").unwrap();
    assert_eq!(c.server.first_byte_timeout(), std::time::Duration::from_secs(60));
    assert!(c.deprecations().is_empty());
    let c = parse("[server]\nupstream_timeout_ms = 1500\n").unwrap();
    assert_eq!(c.server.first_byte_timeout(), std::time::Duration::from_millis(1500));
    assert!(c.deprecations()[0].contains("first_byte_timeout_ms"), "{:?}", c.deprecations());
    let c = parse("[server]\nfirst_byte_timeout_ms = 700\nidle_timeout_ms = 900\n").unwrap();
    assert_eq!(c.server.first_byte_timeout(), std::time::Duration::from_millis(700));
    assert_eq!(c.server.idle_timeout(), std::time::Duration::from_millis(900));
}

#[test]
fn overrides_from_flags_and_environment() {
    let env = Config::env_overrides(
        [("SWITCHYARD__SERVER__MAX_ATTEMPTS".to_string(), "5".to_string()), ("HOME".into(), "/root".into())]
            .into_iter(),
    );
    assert_eq!(env, vec![("server.max_attempts".to_string(), "5".to_string())]);
    let mut overrides = env;
    overrides.push(("server.listen".into(), "0.0.0.0:9999".into()));
    overrides.push(("router.min_quality".into(), "0.55".into()));
    overrides.push(("server.client_keys".into(), "[\"a\", \"b\"]".into()));
    let c = Config::parse_with_overrides("[server]\nmax_attempts = 2\n", Path::new("s.toml"), &overrides).unwrap();
    assert_eq!((c.server.max_attempts, c.server.listen.as_str()), (5, "0.0.0.0:9999"));
    assert_eq!(c.default_knob(), Some(Knob::MinQuality(0.55)));
    assert_eq!(c.server.client_keys, ["a", "b"]);
    let err = Config::parse_with_overrides("", Path::new("s.toml"), &[("server.port".into(), "1".into())]);
    assert!(err.unwrap_err().to_string().contains("unknown field `port`"));
    let err = Config::parse_with_overrides("", Path::new("s.toml"), &[("server.max_attempts".into(), "0".into())]);
    assert!(err.unwrap_err().to_string().contains("server.max_attempts"));
}

#[test]
fn errors_name_the_key() {
    let cases = [
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[server]\nmax_body_bytes = 0\n", "server.max_body_bytes"),
        ("[server]\nport = 80\n", "unknown field `port`"),
        ("[router]\nmin_quality = 2.0\n", "min_quality must be in [0, 1]"),
        ("[router]\nmin_quality = 0.5\nwillingness_to_pay = 1.0\n", "exclusive"),
        ("[encoder]\nmax_tokens = 1000\n", "encoder.max_tokens"),
        ("[server]\nclient_keys = \"abc\"\n", "invalid type"),
        ("[[models]]\nname = \"a\"\ninput_usd_per_mtok = -1\n", "input_usd_per_mtok"),
        ("[log]\nqueue_capacity = 0\n", "log.queue_capacity"),
        ("[encoder]\nbatch_wait_ms = -1\n", "encoder.batch_wait_ms"),
        ("[encoder]\nprecision = \"fp16\"\n", "unknown variant `fp16`, expected `f32` or `int8`"),
        ("[log]\nprompts = \"some\"\n", "unknown variant `some`"),
        ("[server]\nidle_timeout_ms = 0\n", "server.idle_timeout_ms"),
        ("[server]\nheader_timeout_ms = 0\n", "server.header_timeout_ms"),
        ("[server]\nmax_concurrency_per_key = 0\n", "server.max_concurrency_per_key"),
        ("[server]\nmax_id_bytes = 0\n", "server.max_id_bytes"),
        ("[server]\nadmin_keys_sha256 = [\"abc\"]\n", "server.admin_keys_sha256"),
        ("[server]\nmetrics_keys = [\" \"]\n", "server.metrics_keys"),
        ("[server]\nmetrics_key_labels = \"id\"\n", "unknown variant `id`"),
        ("[log]\nurl = \"mysql://db/log\"\n", "log.url"),
        ("[state]\nurl = \"http://127.0.0.1:6379\"\n", "state"),
        ("[state]\nrequired = true\n", "state"),
        ("[log]\nurl = \"postgres://user:pw@db:notaport/log\"\n", "log.url"),
        ("[[keys]]\nname = \"team\"\nrpm = 10\n", "key \"team\": has no secret"),
        ("[[keys]]\nname = \"team\"\nkey_env = \"T\"\nbudget_usd = -1\n", "budget_usd must be a number >= 0"),
        ("[[keys]]\nname = \"team\"\nkey_env = \"T\"\nbudget_period = \"week\"\n", "unknown variant `week`"),
        ("[server]\nfirst_byte_timeout_ms = 0\n", "server.first_byte_timeout_ms"),
        ("[server]\nupstream_timeout_ms = 5\nfirst_byte_timeout_ms = 5\n", "deprecated alias"),
        ("[tiers]\ncheap = []\n", "tier \"cheap\" has no models"),
        ("[[models]]\nname = \"a\"\n[tiers]\ncheap = [\"b\"]\n", "names \"b\", which is not in [[models]]"),
        ("[[rules]]\nname = \"r\"\nwhen = { regex = \"(\" }\nthen = { model = \"a\" }\n", "rule \"r\": when.regex"),
        (
            "[[rules]]\nname = \"r\"\nwhen = { min_chars = 1 }\nthen = { model = \"a\" }\n\
             [[rules]]\nname = \"r\"\nwhen = { min_chars = 2 }\nthen = { model = \"a\" }\n",
            "defined twice",
        ),
        ("[experiment]\nname = \"e\"\narms = [{ name = \"a\", weight = 1 }]\n", "at least two"),
        ("[experiment]\nname = \"e\"\nkey = \"device\"\narms = []\n", "unknown variant `device`"),
    ];
    for (text, needle) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains("switchyard.toml") || err.contains(needle), "{text:?}: {err}");
    }
}

#[test]
fn answers_kept_in_clear_beside_hashed_prompts_are_warned_about() {
    let warned = parse("[log]\nprompts = \"hash\"\nresponses = \"full\"\n").unwrap();
    assert!(warned.log.warnings()[0].contains("log.responses = \"hash\""), "{:?}", warned.log.warnings());
    for quiet in ["[log]\nprompts = \"hash\"\n", "[log]\nresponses = \"full\"\n", ""] {
        assert!(parse(quiet).unwrap().log.warnings().is_empty(), "{quiet}");
    }
}
