//! The options every write carries (dry-run, field validation, field manager).

/// `fieldValidation` as the request asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Options shared by every write.
#[derive(Debug, Clone)]
pub(crate) struct WriteOptions {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub field_manager: String,
    /// Server-side apply: the desired object carries its own managedFields.
    pub keep_managed_fields: bool,
}

impl WriteOptions {
    /// The options of writes the server makes itself.
    pub(crate) fn internal(manager: &str) -> WriteOptions {
        WriteOptions {
            dry_run: false,
            field_validation: FieldValidation::Ignore,
            field_manager: manager.to_string(),
            keep_managed_fields: false,
        }
    }
}
