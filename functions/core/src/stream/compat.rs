//! Changes to a definition between releases must be additive: Athena (and every other reader)
//! reads a table's old Parquet files by column name with today's schema, so a column whose type
//! changed makes old files unreadable, and a new column that may not be null is null in every
//! old file. The lake records each stream's columns the first time a definition is used
//! ([`RecordedColumns`]); a later definition is checked against that record.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::StreamDef;

/// The raw-table columns of a stream as the lake has seen them, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedColumns {
    pub stream: String,
    pub columns: Vec<RecordedColumn>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedColumn {
    pub column: String,
    /// `string`, `double`, `long`, `bool` or `timestamp`.
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
}

/// A definition that would break the existing lake. Never retryable: edit the definition (a
/// new name for a field whose type changes; `nullable = true` for a new field).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Incompatible {
    #[error(
        "{file}: field {field:?} (column {column}) was {old} and is now {new}: old Parquet files hold {old}; keep the type, or add the field under a new name"
    )]
    TypeChanged {
        file: String,
        field: String,
        column: String,
        old: String,
        new: String,
    },
    #[error(
        "{file}: new field {field:?} (column {column}) is not nullable, but every row already in the lake lacks it: declare it nullable = true"
    )]
    NewNotNullable {
        file: String,
        field: String,
        column: String,
    },
}

impl RecordedColumns {
    /// The columns of `def` as they would be recorded.
    pub fn of(def: &StreamDef) -> Self {
        Self {
            stream: def.name.clone(),
            columns: def
                .fields
                .iter()
                .map(|f| RecordedColumn {
                    column: f.column.clone(),
                    ty: f.ty.as_str().to_string(),
                    nullable: f.nullable,
                })
                .collect(),
        }
    }

    /// Checks `def` against this record and returns the record to keep: every column ever
    /// seen (a removed field's column stays, old files hold it), with new ones appended.
    pub fn evolve(&self, def: &StreamDef) -> Result<RecordedColumns, Incompatible> {
        let mut next = self.clone();
        for f in &def.fields {
            match self.columns.iter().find(|c| c.column == f.column) {
                Some(c) if c.ty != f.ty.as_str() => {
                    return Err(Incompatible::TypeChanged {
                        file: def.file.clone(),
                        field: f.name.clone(),
                        column: f.column.clone(),
                        old: c.ty.clone(),
                        new: f.ty.as_str().to_string(),
                    });
                }
                Some(_) => {}
                None if !f.nullable => {
                    return Err(Incompatible::NewNotNullable {
                        file: def.file.clone(),
                        field: f.name.clone(),
                        column: f.column.clone(),
                    });
                }
                None => next.columns.push(RecordedColumn {
                    column: f.column.clone(),
                    ty: f.ty.as_str().to_string(),
                    nullable: true,
                }),
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::parse;

    const V1: &str = "name = \"air\"\nkey = \"station\"\n[time]\nfield = \"ts\"\nformat = \"epoch_ms\"\n[fields.station]\ntype = \"string\"\n[fields.pm25]\ntype = \"double\"\n";

    #[test]
    fn additive_changes_pass_and_the_rest_name_the_field() {
        let v1 = parse("v1.toml", V1).unwrap();
        let recorded = RecordedColumns::of(&v1);
        assert_eq!(recorded.evolve(&v1).unwrap(), recorded, "unchanged");

        let added = parse(
            "v2.toml",
            &format!("{V1}[fields.no2]\ntype = \"double\"\nnullable = true\n"),
        )
        .unwrap();
        let next = recorded.evolve(&added).unwrap();
        assert_eq!(next.columns.len(), 4);

        let required = parse("v3.toml", &format!("{V1}[fields.no2]\ntype = \"double\"\n")).unwrap();
        let e = recorded.evolve(&required).unwrap_err();
        assert!(matches!(e, Incompatible::NewNotNullable { .. }), "{e}");
        assert!(
            e.to_string().starts_with("v3.toml: new field \"no2\""),
            "{e}"
        );

        let retyped = parse(
            "v4.toml",
            &V1.replace("type = \"double\"", "type = \"long\""),
        )
        .unwrap();
        let e = recorded.evolve(&retyped).unwrap_err();
        assert!(
            e.to_string()
                .contains("field \"pm25\" (column pm25) was double and is now long"),
            "{e}"
        );

        // A removed field's column stays recorded: bringing it back with another type is
        // still a type change.
        let removed = parse(
            "v5.toml",
            &V1.replace("[fields.pm25]\ntype = \"double\"\n", ""),
        )
        .unwrap();
        let kept = recorded.evolve(&removed).unwrap();
        assert_eq!(kept, recorded);
        assert!(kept.evolve(&retyped).is_err());
    }
}
