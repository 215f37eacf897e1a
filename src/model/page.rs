//! Paging of the back office's lists (`limit`), shared by the handlers and the published
//! interface document.

/// Largest page of a list.
pub(crate) const MAX_LIMIT: i64 = 500;
pub(crate) const DEFAULT_LIMIT: i64 = 50;
