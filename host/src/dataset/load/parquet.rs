//! Parquet datasets (as pandas, pyarrow and the hub write them): the text fields are top-level
//! string columns; only those columns are decoded. Codecs built in: uncompressed, snappy (the
//! pyarrow/pandas default) and gzip; zstd, brotli and lz4 are left out to keep the build short
//! (see the `parquet` line in `host/Cargo.toml`).

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;

use super::fields::{Cell, Fields};
use super::{DatasetError, Example};

/// Reads the rows of one parquet file, numbering them from `first`.
pub fn read(path: &Path, fields: Fields, first: usize) -> Result<Vec<Example>, DatasetError> {
    let bad = |e: parquet::errors::ParquetError| DatasetError::Parquet {
        path: path.to_path_buf(),
        reason: match e {
            // zstd, brotli and lz4 are left out of the build (see the module doc).
            parquet::errors::ParquetError::General(m) if m.contains("Disabled feature") => format!(
                "{m}; rinseq reads uncompressed, snappy and gzip parquet: rewrite the file with \
                 pyarrow's compression='snappy'"
            ),
            e => e.to_string(),
        },
    };
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let schema = reader.metadata().file_metadata().schema();
    let columns = schema.get_fields();
    let names: Vec<String> = columns.iter().map(|c| c.name().to_string()).collect();
    fields.check(path, &names)?;
    // Project onto the requested columns so that no other column is decoded.
    let wanted: Vec<String> = fields.names().map(str::to_string).collect();
    let projected = columns
        .iter()
        .filter(|c| wanted.iter().any(|w| w == c.name()))
        .cloned()
        .collect();
    let projection = Type::group_type_builder(schema.name())
        .with_fields(projected)
        .build()
        .map_err(bad)?;
    let mut out = Vec::new();
    for (i, row) in reader
        .get_row_iter(Some(projection))
        .map_err(bad)?
        .enumerate()
    {
        let row = row.map_err(bad)?;
        let location = || format!("{} row {i}", path.display());
        out.push(fields.example(first + i, location, |f| {
            match row.get_column_iter().find(|(name, _)| name.as_str() == f) {
                Some((_, Field::Str(s))) => Cell::Str(s.as_str().into()),
                Some((_, Field::Null)) | None => Cell::Other("null".to_string()),
                Some((_, other)) => Cell::Other(kind(other).to_string()),
            }
        })?);
    }
    Ok(out)
}

/// A non-string value's kind, for messages.
fn kind(field: &Field) -> &'static str {
    match field {
        Field::Bool(_) => "a boolean",
        Field::Bytes(_) => "binary data (not a UTF-8 string column)",
        Field::ListInternal(_) => "a list",
        Field::Group(_) | Field::MapInternal(_) => "a struct or map",
        Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => "a date or time",
        _ => "a number",
    }
}
