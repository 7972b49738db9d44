//! Placeholder: the coordinator load generator is being written (issue 6).
fn main() {
    eprintln!("coordinator-load: not implemented yet");
    std::process::exit(2);
}
