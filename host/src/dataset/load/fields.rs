//! The fields read from every row, and the check that each holds a string.

use std::path::Path;

use super::{DatasetError, Example};

/// The requested text fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// `--input-text-field`.
    pub input: &'a str,
    /// `--generated-text-field`.
    pub generated: Option<&'a str>,
}

impl Fields<'_> {
    /// The requested field names, input first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.input).chain(self.generated)
    }

    /// Errors with [`DatasetError::MissingField`] unless every requested field is in `available`.
    pub fn check(&self, path: &Path, available: &[String]) -> Result<(), DatasetError> {
        match self.names().find(|f| !available.iter().any(|a| a == f)) {
            None => Ok(()),
            Some(field) => Err(DatasetError::MissingField {
                path: path.to_path_buf(),
                field: field.to_string(),
                available: available.join(", "),
            }),
        }
    }

    /// Builds row `index` from its cells, `cell(field)` giving each requested field's value.
    pub fn example<'c>(
        &self,
        index: usize,
        location: impl Fn() -> String,
        mut cell: impl FnMut(&str) -> Cell<'c>,
    ) -> Result<Example, DatasetError> {
        let mut text = |field: &str| match cell(field) {
            Cell::Str(s) => Ok(s.into_owned()),
            Cell::Other(found) => Err(DatasetError::NotAString {
                row: index,
                location: location(),
                field: field.to_string(),
                found,
            }),
        };
        let input = text(self.input)?;
        let generated = self.generated.map(&mut text).transpose()?;
        Ok(Example {
            index,
            input,
            generated,
        })
    }
}

/// One field's value in a row.
pub enum Cell<'a> {
    /// A string.
    Str(std::borrow::Cow<'a, str>),
    /// Anything else, described for the error (`null`, `a number`, …).
    Other(String),
}
