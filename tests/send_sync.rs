//! Public types that are shared across threads are `Send + Sync`; decision results are `Send`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn shared_types_are_send_and_sync() {
    send_sync::<abkit::Lab>();
    send_sync::<abkit::Experiment>();
    send_sync::<abkit::Flag>();
    send_sync::<abkit::Condition>();
    send_sync::<abkit::SavedGroups>();
    send_sync::<abkit::CompiledExperiment>();
    send_sync::<abkit::Decision>();
    send_sync::<abkit::Context>();
    send_sync::<abkit::Error>();
    send_sync::<abkit::storage::MemoryStorage>();
    send_sync::<abkit::stats::Report>();
    send_sync::<abkit::stats::AnalysisRequest>();
    send_sync::<abkit::ExperimentAnalysis>();
    send::<abkit::Evaluation<'static>>();
    send::<abkit::EvaluateAllResponse>();
    // Compiles, hence holds; the assertion documents that the check ran.
    assert_eq!(std::mem::size_of::<abkit::Timestamp>(), 8);
}
