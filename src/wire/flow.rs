//! The flow experiments API: pages as `{"data": […], "meta": {total, page, limit, totalPages}}`,
//! experiments with `_count.assignments`, per-variant `participants` and `conversions`.

use serde::Serialize;
use serde_json::Value;

use crate::control::Page;
use crate::reports::ExperimentWithCounts;

/// A page as the flow API returns it: `{"data": […], "meta": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paged<T> {
    /// The items.
    pub data: Vec<T>,
    /// The paging facts.
    pub meta: PageMeta,
}

/// The flow API's paging facts: `{"total", "page", "limit", "totalPages"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    /// Items matching the filter.
    pub total: u64,
    /// This page.
    pub page: u32,
    /// Items per page.
    pub limit: u32,
    /// Pages in all (0 when there are no items).
    pub total_pages: u64,
}

impl<T> Paged<T> {
    /// The flow API's form of `page`, each item converted by `f`.
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Paged<T> {
        Paged {
            meta: PageMeta {
                total: page.total,
                page: page.page,
                limit: page.limit,
                total_pages: page.total_pages,
            },
            data: page.items.into_iter().map(f).collect(),
        }
    }
}

/// An experiment as the flow API's get and list return it: the experiment's fields, each
/// variant with its `participants`, `_count: {assignments}` and `conversions`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentPayload(pub ExperimentWithCounts);

impl From<ExperimentWithCounts> for ExperimentPayload {
    fn from(e: ExperimentWithCounts) -> Self {
        ExperimentPayload(e)
    }
}

impl Serialize for ExperimentPayload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = &self.0;
        let mut v = serde_json::to_value(&e.experiment).map_err(serde::ser::Error::custom)?;
        if let Some(vs) = v.get_mut("variants").and_then(Value::as_array_mut) {
            for (variant, n) in vs.iter_mut().zip(&e.participants) {
                if let Some(o) = variant.as_object_mut() {
                    o.insert("participants".into(), (*n).into());
                }
            }
        }
        if let Some(o) = v.as_object_mut() {
            let total: u64 = e.participants.iter().sum();
            o.insert("_count".into(), serde_json::json!({ "assignments": total }));
            o.insert("conversions".into(), e.conversions.into());
        }
        v.serialize(s)
    }
}

/// The flow API's list payload: a page of experiments with their counts.
pub fn experiments_page(page: Page<ExperimentWithCounts>) -> Paged<ExperimentPayload> {
    Paged::from_page(page, ExperimentPayload)
}
