//! `crit`: CRIU's image tool, for our images and CRIU's. `decode` prints
//! an image as the same JSON CRIU's crit prints; `show` is `decode --pretty`;
//! `encode` turns such JSON back into the image; `info` prints the magic
//! and entry count.

use std::io::Write;
use std::path::Path;

use criu::images::{ImageDir, ImageReader};

fn usage() -> ! {
    eprintln!("usage: crit decode [-i FILE] [-o FILE] [--pretty] | crit encode [-i JSON] [-o FILE] | crit show FILE | crit info FILE");
    std::process::exit(1);
}

fn open(path: &str) -> Result<ImageReader, String> {
    let p = Path::new(path);
    let dir = ImageDir::open(p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")))
        .map_err(|e| e.to_string())?;
    let name = p.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{path}: not a file name"))?;
    ImageReader::open(&dir, name).map_err(|e| e.to_string())
}

fn run(args: &[String]) -> Result<(), String> {
    let Some(cmd) = args.first() else { usage() };
    let mut input = None;
    let mut output = None;
    let mut pretty = cmd == "show";
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-i" | "--in" => input = it.next().cloned(),
            "-o" | "--out" => output = it.next().cloned(),
            "--pretty" => pretty = true,
            s if !s.starts_with('-') && input.is_none() => input = Some(s.to_string()),
            _ => usage(),
        }
    }
    if cmd == "encode" {
        let text = match &input {
            Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?,
            None => std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?,
        };
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("JSON: {e}"))?;
        let bytes = criu::crit::encode_image(&json).map_err(|e| e.to_string())?;
        return match output {
            Some(o) => std::fs::write(&o, bytes).map_err(|e| format!("{o}: {e}")),
            None => std::io::stdout().write_all(&bytes).map_err(|e| e.to_string()),
        };
    }
    let input = input.unwrap_or_else(|| usage());
    let r = open(&input)?;
    let text = match cmd.as_str() {
        "decode" | "show" => {
            let json = criu::crit::decode_image(r, pretty).map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&json, &mut ser).map_err(|e| e.to_string())?;
            buf.push(b'\n');
            buf
        }
        "info" => {
            let name = r.kind().name;
            let json = criu::crit::decode_image(r, false).map_err(|e| e.to_string())?;
            let n = json["entries"].as_array().map_or(0, Vec::len);
            format!("{{\"magic\": \"{name}\", \"count\": {n}}}\n").into_bytes()
        }
        _ => usage(),
    };
    match output {
        Some(o) => std::fs::write(&o, text).map_err(|e| format!("{o}: {e}")),
        None => std::io::stdout().write_all(&text).map_err(|e| e.to_string()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}
