//! TEMPORARY STUB: replaced by the stats branch at merge.
#![allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Proportion,
    Mean,
    Ratio,
}
