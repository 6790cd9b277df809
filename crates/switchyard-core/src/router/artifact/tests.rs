//! Tests of saving and loading: every predictor round-trips, damaged or foreign artifacts are refused, and a
//! save replaces the folder whole while readers load it.

use crate::router::manifest::{EncoderInfo, RouterError, FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE};
use crate::router::test_support::{predictors, tiny};
use crate::router::Router;

#[test]
fn every_predictor_round_trips_with_identical_decisions() {
    for (predictor, hidden) in predictors() {
        let router = tiny(predictor, hidden);
        let dir = tempfile::tempdir().unwrap();
        router.save(dir.path()).unwrap();
        let mode = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().permissions();
        assert_eq!(mode(WEIGHTS_FILE), mode(MANIFEST_FILE), "the weights are as readable as the manifest");
        let loaded = Router::load(dir.path()).unwrap();
        for x in [[1f32, 0.], [0., 1.], [0.6, 0.8], [-1., 0.]] {
            let policy = &router.manifest.default_policy;
            let (a, da) = router.route(&x, 500.0, policy).unwrap();
            let (b, db) = loaded.route(&x, 500.0, policy).unwrap();
            assert_eq!(da, db);
            for (ma, mb) in a.models.iter().zip(&b.models) {
                assert_eq!(ma.p_success.to_bits(), mb.p_success.to_bits(), "{:?}", router.predictor.kind());
            }
            assert_eq!(a.domains, b.domains);
        }
        let p = router.predict(&[1., 0.], 500.0);
        assert_eq!(p.domains[0].domain, "math");
        assert!(p.complexity > 0.5);
        assert_eq!((p.ood, p.shrink), (0.0, 0.0));
        // Opposite every centroid: fully shrunk to the priors (math-heavy domain mix) and base complexity.
        let far = router.predict(&[-1., 0.], 500.0);
        assert_eq!((far.ood, far.shrink), (1.0, 1.0));
        assert!((far.complexity - 0.3).abs() < 1e-6);
        let probs = router.heads.domain_probs(&[-1., 0.]);
        // The domain prior, moved by the difficulty slope (−2.5) for the complexity (0.3) against the
        // domains' typical complexity (0.2 and 0.5).
        let typical = 0.2 * probs[0] + 0.5 * probs[1];
        let prior =
            crate::predictor::sigmoid(crate::predictor::logit(0.5 * probs[0] + 0.6 * probs[1]) - 2.5 * (0.3 - typical));
        assert!((far.models[0].p_success - f64::from(prior)).abs() < 1e-6, "{far:?}");
        assert!(p.models[1].expected_cost_usd > p.models[0].expected_cost_usd);
    }
}

#[test]
fn incompatible_or_damaged_artifacts_are_refused() {
    let (predictor, hidden) = predictors().remove(0);
    let router = tiny(predictor, hidden);
    let dir = tempfile::tempdir().unwrap();
    router.save(dir.path()).unwrap();
    let running = |id: &str, max_tokens, files: Option<&str>| EncoderInfo {
        id: id.into(),
        dim: 2,
        max_tokens,
        files_sha256: files.map(str::to_string),
        precision: None,
    };
    assert!(matches!(
        router.check_encoder(&running("other", 256, Some("f1"))),
        Err(RouterError::EncoderMismatch { .. })
    ));
    router.check_encoder(&running("enc", 256, Some("f1"))).unwrap();
    // Another truncation, or another tokenizer/config, is another encoder: the error names both.
    let err = router.check_encoder(&running("enc", 128, Some("f1"))).unwrap_err().to_string();
    assert!(err.contains("max_tokens 256") && err.contains("max_tokens 128"), "{err}");
    let err = router.check_encoder(&running("enc", 256, Some("f2"))).unwrap_err().to_string();
    assert!(err.contains("f1") && err.contains("f2"), "{err}");
    // So is another precision: a router trained on f32 embeddings refuses int8 ones, and names both.
    let int8 = EncoderInfo { precision: Some("int8".into()), ..running("enc", 256, Some("f1")) };
    let err = router.check_encoder(&int8).unwrap_err().to_string();
    assert!(err.contains("precision f32") && err.contains("precision int8") && err.contains("--precision"), "{err}");

    let manifest = dir.path().join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace(&format!("\"format_version\": {FORMAT_VERSION}"), "\"format_version\": 99"))
        .unwrap();
    let err = Router::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("format version 99"), "{err}");

    std::fs::write(&manifest, text.replace("\"hidden\": 0,", "\"hidden\": \"x\",")).unwrap();
    assert!(matches!(Router::load(dir.path()), Err(RouterError::Manifest { .. })));

    std::fs::write(&manifest, &text).unwrap();
    std::fs::write(dir.path().join(WEIGHTS_FILE), b"garbage").unwrap();
    // The manifest's digest tells the replaced file apart before it is parsed.
    let err = Router::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("does not match manifest.json"), "{err}");
    let unchecked: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut unchecked = unchecked.as_object().unwrap().clone();
    unchecked.remove("weights_sha256");
    std::fs::write(&manifest, serde_json::to_string(&unchecked).unwrap()).unwrap();
    let err = Router::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("router.safetensors") && err.contains("retrain"), "{err}");
    std::fs::remove_dir_all(dir.path()).unwrap();
    assert!(matches!(Router::load(dir.path()), Err(RouterError::Io { .. })));
}

#[test]
fn a_save_replaces_the_folder_whole_while_readers_load_it() {
    let mut all = predictors();
    let (a, b) = (tiny(all.remove(0).0, 0), tiny(all.pop().unwrap().0, 3));
    let (kind_a, kind_b) = (a.manifest.predictor, b.manifest.predictor);
    assert_ne!(kind_a, kind_b);
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("router");
    a.save(&dir).unwrap();
    std::fs::write(dir.join("NOTES.md"), "trained on the March logs").unwrap();
    std::fs::create_dir(dir.join("reports")).unwrap();
    std::fs::write(dir.join("reports/bench.json"), "{}").unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut whole, mut missing) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match Router::load(&dir) {
                    Ok(r) => {
                        assert!(r.manifest.predictor == kind_a || r.manifest.predictor == kind_b);
                        whole += 1;
                    }
                    // Between the two renames there is, for an instant, no folder at all; and a reader
                    // overtaken by several saves in a row is told, never handed a mix.
                    Err(RouterError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                        missing += 1;
                    }
                    Err(RouterError::Torn { .. }) => missing += 1,
                    Err(e) => panic!("a reader saw half a router: {e}"),
                }
            }
            (whole, missing)
        })
    };
    for i in 0..40 {
        if i % 2 == 0 {
            b.save(&dir).unwrap()
        } else {
            a.save(&dir).unwrap()
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (whole, _) = reader.join().unwrap();
    assert!(whole > 0);
    assert_eq!(Router::load(&dir).unwrap().manifest.predictor, kind_a);
    assert_eq!(std::fs::read_to_string(dir.join("NOTES.md")).unwrap(), "trained on the March logs");
    assert!(dir.join("reports/bench.json").is_file());
    let left: Vec<String> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["router"], "temporary folders left behind");
}
