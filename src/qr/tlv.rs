//! TLV primitives: one data object is a 2-digit id, a 2-digit length and the value.
//!
//! The length counts **characters**, not bytes (EMVCo MPM; the spec sample carries Chinese
//! characters in tag 64 with character lengths), so every length here is `chars().count()`.

use super::encode_error::EncodeError;
use super::tag_path::TagPath;

/// The largest value one data object can carry: the length field has two digits, and `00` is
/// not a valid length.
pub(crate) const MAX_VALUE_CHARS: usize = 99;

/// A data object as read from a payload.
///
/// `nested` is `Some` for the ids the format defines as templates (26–51, 62, 64, 80–99); it
/// holds the template's own data objects in payload order. `value` always keeps the raw text,
/// so a template can still be compared or re-emitted verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataObject {
    /// The id, 0–99.
    pub id: u8,
    /// The raw value (for a template, its whole TLV body).
    pub value: String,
    /// The template's data objects, when `id` is a template id.
    pub nested: Option<Vec<DataObject>>,
}

impl DataObject {
    /// The nested data object with this id, if this is a template that has one.
    pub fn sub(&self, id: u8) -> Option<&DataObject> {
        self.nested.as_deref()?.iter().find(|o| o.id == id)
    }

    /// The value of the nested data object with this id.
    pub fn sub_value(&self, id: u8) -> Option<&str> {
        self.sub(id).map(|o| o.value.as_str())
    }
}

/// Whether a root-level id is a template whose value nests data objects.
///
/// 26–51 merchant account information, 62 additional data, 64 language template and 80–99
/// unreserved templates (EMVCo MPM §3.2 of `spec/emv-qr-notes.md`). 02–25 are card-scheme
/// primitives and are *not* templates.
pub fn is_template_id(id: u8) -> bool {
    matches!(id, 26..=51 | 62 | 64 | 80..=99)
}

/// Appends data objects to a payload, refusing (never panicking on) values the format cannot
/// carry.
#[derive(Debug, Default)]
pub(crate) struct TlvWriter {
    out: String,
    /// `Some(template path)` when this writer builds a template's body, so errors name the
    /// full path (`26.01`) rather than the bare sub-tag.
    parent: Option<TagPath>,
}

impl TlvWriter {
    /// A writer for a root payload.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A writer for the body of the template `parent`.
    pub(crate) fn for_template(parent: TagPath) -> Self {
        Self {
            out: String::new(),
            parent: Some(parent),
        }
    }

    fn path(&self, id: u8) -> TagPath {
        match &self.parent {
            Some(p) => p.child(id),
            None => TagPath::root(id),
        }
    }

    /// Appends `id` + length + `value`.
    ///
    /// Errors: an id above 99, an empty value (the length field cannot say `00`), or a value
    /// over 99 characters.
    pub(crate) fn put(&mut self, id: u8, value: &str) -> Result<&mut Self, EncodeError> {
        if id > 99 {
            return Err(EncodeError::InvalidTagId { id });
        }
        let chars = value.chars().count();
        if chars == 0 {
            return Err(EncodeError::EmptyValue { tag: self.path(id) });
        }
        if chars > MAX_VALUE_CHARS {
            return Err(EncodeError::ValueTooLong {
                tag: self.path(id),
                chars,
            });
        }
        self.out.push_str(&format!("{id:02}{chars:02}"));
        self.out.push_str(value);
        Ok(self)
    }

    /// Appends the template `id`, whose body `build` writes with a nested writer.
    pub(crate) fn template<F>(&mut self, id: u8, build: F) -> Result<&mut Self, EncodeError>
    where
        F: FnOnce(&mut TlvWriter) -> Result<(), EncodeError>,
    {
        let mut inner = TlvWriter::for_template(self.path(id));
        build(&mut inner)?;
        let body = inner.finish();
        self.put(id, &body)
    }

    /// The payload (or template body) written.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_id_length_value() {
        let mut w = TlvWriter::new();
        w.put(0, "01").unwrap().put(59, "TEST STORE").unwrap();
        assert_eq!(w.finish(), "0002015910TEST STORE");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let mut w = TlvWriter::new();
        w.put(1, "最佳运输").unwrap();
        assert_eq!(w.finish(), "0104最佳运输");
    }

    #[test]
    fn templates_nest_the_same_format() {
        let mut w = TlvWriter::new();
        w.template(62, |t| {
            t.put(5, "INV0001234")?.put(7, "POS00001")?;
            Ok(())
        })
        .unwrap();
        assert_eq!(w.finish(), "62260510INV00012340708POS00001");
    }

    #[test]
    fn limits_are_errors_not_panics() {
        let mut w = TlvWriter::new();
        assert!(w.put(59, &"x".repeat(99)).is_ok());
        assert_eq!(
            w.put(59, &"x".repeat(100)).unwrap_err(),
            EncodeError::ValueTooLong {
                tag: TagPath::root(59),
                chars: 100
            }
        );
        assert_eq!(
            w.put(59, "").unwrap_err(),
            EncodeError::EmptyValue {
                tag: TagPath::root(59)
            }
        );
        assert_eq!(
            w.put(100, "x").unwrap_err(),
            EncodeError::InvalidTagId { id: 100 }
        );
    }

    #[test]
    fn errors_inside_templates_name_the_full_path() {
        let mut w = TlvWriter::new();
        let err = w
            .template(26, |t| {
                t.put(0, "za.co.elec")?.put(1, "")?;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "tag 26.01: a value cannot be empty");
        // A template whose body overflows 99 characters is refused at the template's tag.
        let err = w
            .template(26, |t| {
                t.put(0, &"a".repeat(60))?.put(1, &"b".repeat(60))?;
                Ok(())
            })
            .unwrap_err();
        assert!(
            matches!(err, EncodeError::ValueTooLong { ref tag, chars: 128 } if tag.as_str() == "26")
        );
    }

    #[test]
    fn template_ids() {
        for id in [26, 51, 62, 64, 80, 99] {
            assert!(is_template_id(id), "{id}");
        }
        for id in [0, 1, 25, 52, 54, 63, 65, 79] {
            assert!(!is_template_id(id), "{id}");
        }
    }
}
