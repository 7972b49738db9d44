//! The schema: the numbered migrations of `migrations/`, embedded at compile time. Only a
//! coordinator applies them ([`Store::open`](crate::Store::open)); a read-only
//! [`Reader::open`](crate::Reader::open) refuses a store whose schema is older.

use sqlx::migrate::Migrator;

/// The schema, embedded at compile time from `migrations/` and applied by `Store::open`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");
