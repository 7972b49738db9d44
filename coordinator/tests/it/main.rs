//! Integration tests of the coordinator: a real tonic server on 127.0.0.1:0 over a SQLite file
//! in a temporary directory, driven by a real tonic client. One test binary (one link) for all.

mod auth;
mod bad_input;
// The end-to-end TLS tests make their certificates the same way: one definition.
#[path = "../../../tests/common/certs.rs"]
mod certs;
mod common;
mod curves;
mod fencing;
mod lease;
mod limits;
mod migrations;
mod query;
mod query_guard;
mod restart;
mod results;
mod series;
mod sql_disguises;
mod submit;
mod tls;
