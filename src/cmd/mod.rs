//! One module per subcommand.

pub mod reference;
pub mod train;
