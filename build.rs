//! Build script: compiles the CRIU-compatible schemas in proto/ with protox
//! (a pure-Rust protobuf compiler, so no system `protoc` is needed) into
//! prost types, and keeps the descriptor set for reflection (crit JSON).

use std::path::PathBuf;

#[path = "build/blob.rs"]
mod blob;
#[path = "build/parasite.rs"]
mod parasite;
#[path = "build/restorer.rs"]
mod restorer;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=proto");

    let mut files: Vec<PathBuf> = std::fs::read_dir("proto")
        .expect("proto/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();

    // rpc.proto stands alone and its `criu_opts` would clash with the
    // images' `CRIU_Opts` in one Rust module: build it into its own.
    let (rpc, images): (Vec<PathBuf>, Vec<PathBuf>) =
        files.into_iter().partition(|p| p.file_name().is_some_and(|n| n == "rpc.proto"));
    compile(&images, &out.join("images"), "criu_descriptors.bin");
    compile(&rpc, &out.join("rpc"), "rpc_descriptors.bin");
    parasite::build();
    restorer::build();
}

fn compile(files: &[PathBuf], dir: &std::path::Path, descriptors: &str) {
    std::fs::create_dir_all(dir).expect("create out dir");
    let mut compiler = protox::Compiler::new(["proto"]).unwrap_or_else(|e| panic!("proto/: {e}"));
    compiler.include_imports(true);
    compiler.open_files(files).unwrap_or_else(|e| panic!("compiling proto/: {e}"));
    // The encoded set keeps the (criu) field options, which crit JSON needs;
    // prost_types would drop them as unknown extension fields.
    std::fs::write(dir.join(descriptors), compiler.encode_file_descriptor_set()).expect("write descriptor set");
    let fds = compiler.file_descriptor_set();
    // Type names (`prost::Name`) let each image kind check its entry type.
    prost_build::Config::new()
        .enable_type_names()
        .out_dir(dir)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("prost-build: {e}"));
}
