//! The `criu` binary: parse, dispatch, exit code. Everything else lives in the library.

fn main() {
    let mut argv = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let prog = argv.next().unwrap_or_else(|| "criu".into());
    std::process::exit(criu::ops::main_as(&prog, argv.collect()));
}
