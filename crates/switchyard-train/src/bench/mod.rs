//! Offline evaluation: a router against the field's baselines on held-out labelled logs, with the
//! cost–quality metrics of RouterBench (AIQ) and RouteLLM (APGR, CPT), and paired bootstrap intervals.

mod agreement;
pub mod bootstrap;
pub mod curve;
mod leave_out;
mod plot;
mod plot_axis;
mod resample;
mod run;
mod set;
mod sweep;

pub use agreement::{agreement, Agreement};
pub use bootstrap::{bootstrap_intervals, BootstrapOptions, Interval, SplitMix64};
pub use curve::CurvePoint;
pub use leave_out::{leave_one_out, Aiq, Estimate, LeaveOutOptions, LeaveOutReport};
pub use plot::plot;
pub use run::{run_bench, BenchReport, BootstrapSummary, Difference, Metrics, RouterMetrics, SingleModel};
pub use set::{knn_memory, training_prompts, BenchPrompt, BenchSet};
