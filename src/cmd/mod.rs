//! One module per subcommand.

pub mod cancel;
pub mod coordinator;
pub mod curves;
pub mod dashboard;
pub mod history;
pub mod methods;
pub mod reference;
pub mod retry;
pub mod sql;
pub mod status;
pub mod submit;
pub mod sweep;
pub mod train;
pub mod worker;
