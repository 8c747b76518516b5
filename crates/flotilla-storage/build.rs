//! etcd-client's build script runs `protoc` through `scripts/protoc` (see
//! `.cargo/config.toml`), which executes the binary of the `protoc-bin-vendored`
//! build-dependency. Naming it here keeps it in the build graph, so cargo has it downloaded
//! before any build script runs.
fn main() {
    if let Err(e) = protoc_bin_vendored::protoc_bin_path() {
        println!("cargo:warning=protoc-bin-vendored ships no protoc for this platform: {e}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
