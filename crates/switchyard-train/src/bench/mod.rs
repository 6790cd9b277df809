//! Offline evaluation: a router against the field's baselines on held-out labelled logs, with the
//! cost–quality metrics of RouterBench (AIQ) and RouteLLM (APGR, CPT).

pub mod curve;
mod plot;
mod run;
mod set;

pub use plot::plot;
pub use run::{run_bench, BenchReport, CurvePoint, Metrics, RouterMetrics, SingleModel};
pub use set::{knn_memory, BenchPrompt, BenchSet};
