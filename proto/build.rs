//! Compiles proto/sweep.proto with the vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/sweep.proto");
    tonic_prost_build::configure().compile_protos(&["proto/sweep.proto"], &["proto"])?;
    Ok(())
}
