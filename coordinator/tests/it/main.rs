//! Integration tests of the coordinator: a real tonic server on 127.0.0.1:0 over a SQLite file
//! in a temporary directory, driven by a real tonic client. One test binary (one link) for all.

mod auth;
mod common;
mod curves;
mod lease;
mod query;
mod restart;
mod submit;
