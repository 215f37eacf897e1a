//! Where a data object sits in a payload, for the errors of both the encoders and the
//! parser.

use std::fmt;

/// A tag's position for error messages: `"54"` at the root, `"62.05"` inside a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPath(String);

impl TagPath {
    pub(crate) fn root(id: u8) -> Self {
        Self(format!("{id:02}"))
    }

    pub(crate) fn child(&self, id: u8) -> Self {
        Self(format!("{}.{id:02}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
