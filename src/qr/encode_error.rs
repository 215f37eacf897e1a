//! Why a payload could not be encoded: its own file because both the encoders and the TLV
//! writer under them report it.

use super::tag_path::TagPath;

/// Why a payload could not be encoded. Every limit of the format is one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("tag {tag}: a value cannot be empty")]
    EmptyValue { tag: TagPath },
    #[error("tag {tag}: value has {chars} characters, a data object holds at most 99")]
    ValueTooLong { tag: TagPath, chars: usize },
    #[error("data object id {id} is not two digits (00-99)")]
    InvalidTagId { id: u8 },
    #[error("an EMVCo payload needs {field}")]
    Missing { field: &'static str },
    #[error("{field} (tag {tag}) has {chars} characters, at most {max} allowed")]
    FieldTooLong {
        field: &'static str,
        tag: &'static str,
        chars: usize,
        max: usize,
    },
    #[error("{field} {value:?} is not {expected}")]
    InvalidField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the amount is in currency {amount_currency} but the payload currency is {currency}")]
    CurrencyMismatch {
        amount_currency: String,
        currency: String,
    },
    #[error("{count} partner templates given, tags 27-51 hold at most 25")]
    TooManyTemplates { count: usize },
    #[error(
        "partner template {guid:?}: tag {tag} is not a partner's merchant account tag (27-51)"
    )]
    TemplateTagOutOfRange { guid: String, tag: u8 },
    #[error("partner templates {first:?} and {second:?} both ask for tag {tag}")]
    DuplicateTemplateTag {
        tag: u8,
        first: String,
        second: String,
    },
    #[error("tag {tag}: the globally unique identifier (sub-tag 00) has {chars} characters, at most 32 allowed")]
    GuiTooLong { tag: TagPath, chars: usize },
    #[error("partner template {guid:?}: sub-tag 00 is the GUID and cannot be given as a value")]
    ReservedSubTag { guid: String },
    #[error("partner template {guid:?}: sub-tag {id:02} is given more than once")]
    DuplicateSubTag { guid: String, id: u8 },
}
