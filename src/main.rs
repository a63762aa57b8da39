//! The `criu` binary: parse, dispatch, exit code. Everything else lives in the library.

fn main() {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    std::process::exit(criu::ops::main(args));
}
