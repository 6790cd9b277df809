//! Tests of the catalog: parsing, validation and lookups.

use super::*;

fn parse(text: &str) -> Result<Catalog, CatalogError> {
    Catalog::from_toml(text, Path::new("c.toml"))
}

#[test]
fn reads_the_contract_example() {
    let catalog = parse(
        r#"
        [[models]]
        name = "gpt-4o-mini"
        input_usd_per_mtok = 0.15
        output_usd_per_mtok = 0.60
        base_url = "https://api.example.com/v1"
        api_key_env = "EXAMPLE_API_KEY"
        context_window = 128000
        tags = ["general"]

        [[models]]
        name = "local"
        "#,
    )
    .unwrap();
    assert_eq!(catalog.names(), ["gpt-4o-mini", "local"]);
    let mini = catalog.get("gpt-4o-mini").unwrap();
    assert!((mini.cost_usd(1000.0, 500.0) - 0.00045).abs() < 1e-12);
    assert_eq!(catalog.get("local").unwrap().input_usd_per_mtok, 0.0);
    assert_eq!(parse(&catalog.to_toml().unwrap()).unwrap(), catalog);
}

#[test]
fn bad_catalogs_name_the_problem() {
    let cases = [
        ("", "lists no models"),
        ("[[models]]\nname = \"a\"\n[[models]]\nname = \"a\"\n", "duplicate name"),
        ("[[models]]\nname = \"a\"\ninput_usd_per_mtok = -1.0\n", "input_usd_per_mtok must be a number >= 0"),
        ("[[models]]\nname = \"\"\n", "name must not be empty"),
        ("[[models]]\nname = \"a\"\nprice = 3\n", "unknown field `price`"),
        ("[[models]]\nname = \"a\"\ninput_usd_per_mtok = \"cheap\"\n", "invalid type"),
        ("[[models]]\nname = \"a\"\nbase_url = \"api.example.com\"\n", "base_url must start with"),
    ];
    for (text, needle) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains("c.toml"), "{text:?} gave {err}");
    }
}

#[test]
fn deployments_and_fallbacks() {
    let catalog = parse(
        r#"
        [[models]]
        name = "gpt-4o"
        fallbacks = ["claude"]
        [[models.deployments]]
        base_url = "https://a.example/v1"
        api_key_env = "A_KEY"
        upstream_model = "gpt-4o-2024-08-06"
        weight = 2
        [[models.deployments]]
        name = "gpt-4o-eu"
        base_url = "https://b.example/v1"

        [[models]]
        name = "claude"
        base_url = "https://c.example/v1"
        fallbacks = ["mini"]

        [[models]]
        name = "mini"
        base_url = "https://d.example/v1"

        [[models]]
        name = "offline"
        "#,
    )
    .unwrap();
    let names: Vec<String> = catalog.get("gpt-4o").unwrap().endpoints().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["gpt-4o#1", "gpt-4o-eu"]);
    assert_eq!(catalog.get("gpt-4o").unwrap().deployments[0].weight, 2);
    assert_eq!(catalog.get("gpt-4o").unwrap().deployments[1].weight, 1);
    assert_eq!(catalog.get("claude").unwrap().endpoints()[0].0, "claude");
    assert_eq!(catalog.with_fallbacks("gpt-4o"), ["gpt-4o", "claude", "mini"]);
    assert_eq!(catalog.with_fallbacks("mini"), ["mini"]);
    assert!(!catalog.get("offline").unwrap().has_deployment());
    assert_eq!(parse(&catalog.to_toml().unwrap()).unwrap(), catalog);
}

#[test]
fn bad_deployments_and_fallbacks_name_the_problem() {
    let two = "[[models]]\nname = \"b\"\nbase_url = \"http://b\"\n";
    let cases = [
        (
            "[[models]]\nname = \"a\"\n[[models.deployments]]\nbase_url = \"http://x\"\nregion = \"eu\"\n".to_string(),
            "unknown field `region`",
        ),
        (
            "[[models]]\nname = \"a\"\nbase_url = \"http://x\"\n[[models.deployments]]\nbase_url = \"http://y\"\n"
                .to_string(),
            "not both",
        ),
        ("[[models]]\nname = \"a\"\n[[models.deployments]]\nbase_url = \"x\"\n".to_string(), "deployment #1: base_url"),
        (
            "[[models]]\nname = \"a\"\n[[models.deployments]]\nbase_url = \"http://x\"\nweight = 0\n".to_string(),
            "weight must be at least 1",
        ),
        (
            "[[models]]\nname = \"a\"\nbase_url = \"https://api.anthropic.com/v1\"\napi = \"anthropic\"\n".to_string(),
            "deployment a: an Anthropic base_url is the API's root",
        ),
        ("[[models]]\nname = \"a\"\nbase_url = \"http://x\"\napi = \"gemini\"\n".to_string(), "unknown variant `gemini`"),
        (
            "[[models]]\nname = \"a\"\n[[models.deployments]]\nbase_url = \"http://x\"\n[[models.deployments]]\nbase_url = \"http://x/\"\n"
                .to_string(),
            "deployment #2 repeats",
        ),
        (
            format!("[[models]]\nname = \"a\"\n[[models.deployments]]\nname = \"b\"\nbase_url = \"http://x\"\n{two}"),
            "deployment name \"b\" is used twice",
        ),
        (format!("[[models]]\nname = \"a\"\nfallbacks = [\"b\"]\n{two}"), "has fallbacks but no deployment"),
        (
            "[[models]]\nname = \"a\"\nbase_url = \"http://a\"\nfallbacks = [\"z\"]\n".to_string(),
            "fallback \"z\" is not in the catalog",
        ),
        (
            "[[models]]\nname = \"a\"\nbase_url = \"http://a\"\nfallbacks = [\"b\"]\n[[models]]\nname = \"b\"\n".to_string(),
            "fallback \"b\" has no base_url",
        ),
        (
            format!(
                "[[models]]\nname = \"a\"\nbase_url = \"http://a\"\nfallbacks = [\"b\"]\n{two}fallbacks = [\"c\"]\n\
                 [[models]]\nname = \"c\"\nbase_url = \"http://c\"\nfallbacks = [\"a\"]\n"
            ),
            "fallbacks form a cycle: a -> b -> c -> a",
        ),
        ("[[models]]\nname = \"a\"\nbase_url = \"http://a\"\nfallbacks = [\"a\"]\n".to_string(), "a -> a"),
    ];
    for (text, needle) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?} gave {err}");
    }
}

#[test]
fn unknown_models_in_logs_are_listed() {
    let catalog = parse("[[models]]\nname = \"a\"\n").unwrap();
    let err = catalog.check_known(["a", "z", "b", "z"]).unwrap_err().to_string();
    assert!(err.contains("b, z"), "{err}");
    assert!(catalog.check_known(["a"]).is_ok());
}
