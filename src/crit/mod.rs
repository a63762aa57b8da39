//! Images as CRIU's `crit` JSON: `{"magic": NAME, "entries": [...]}`, with
//! crit's pretty rules driven by the schemas' `(criu)` field options (hex
//! numbers, flag names, dictionary names, `major:minor` devices, IP
//! addresses, base64 bytes) and each kind's raw payload as `"extra"`.
//! Works on any image kind through protobuf reflection.

pub mod encode;
pub mod tables;
mod text;

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value};
use serde_json::{Map, Value as Json};

use crate::images::file::{AnyKind, ImageReader};
use crate::images::kind::Payload;
use crate::images::pb::DESCRIPTOR_SET;
use crate::images::ImageError;

pub use encode::encode_image;
pub use text::{base64_decode, base64_lines, quopri, quopri_decode};

/// The `(criu)` options of one field.
#[derive(Clone, Debug, Default)]
struct FieldOpts {
    hex: bool,
    ipadd: bool,
    flags: Option<String>,
    dev: bool,
    odev: bool,
    dict: Option<String>,
    conv: Option<String>,
}

struct Schemas {
    pool: DescriptorPool,
    opts: HashMap<(String, u32), FieldOpts>,
}

fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| {
        let pool = DescriptorPool::decode(DESCRIPTOR_SET).expect("embedded descriptor set decodes");
        let ext = pool.get_extension_by_name("criu").expect("opts.proto defines (criu)");
        let mut opts = HashMap::new();
        for msg in pool.all_messages() {
            for f in msg.fields() {
                let o = f.options();
                if !o.has_extension(&ext) {
                    continue;
                }
                let Value::Message(c) = o.get_extension(&ext).into_owned() else { continue };
                let b = |n: &str| c.get_field_by_name(n).and_then(|v| v.as_bool()).unwrap_or(false);
                let s = |n: &str| {
                    if c.has_field_by_name(n) {
                        c.get_field_by_name(n).and_then(|v| v.as_str().map(str::to_string))
                    } else {
                        None
                    }
                };
                let fo = FieldOpts {
                    hex: b("hex"),
                    ipadd: b("ipadd"),
                    flags: s("flags"),
                    dev: b("dev"),
                    odev: b("odev"),
                    dict: s("dict"),
                    conv: s("conv"),
                };
                opts.insert((msg.full_name().to_string(), f.number()), fo);
            }
        }
        Schemas { pool, opts }
    })
}

/// The descriptor of message `name` (CRIU's schema names, e.g. `core_entry`).
pub fn message(name: &str) -> Option<MessageDescriptor> {
    schemas().pool.get_message_by_name(name)
}

fn field_opts(f: &FieldDescriptor) -> FieldOpts {
    schemas().opts.get(&(f.parent_message().full_name().to_string(), f.number())).cloned().unwrap_or_default()
}

/// Decode one entry's bytes as message `desc`.
pub fn decode_entry(desc: &MessageDescriptor, bytes: &[u8], path: &str, offset: u64) -> Result<DynamicMessage, ImageError> {
    DynamicMessage::decode(desc.clone(), bytes)
        .map_err(|e| ImageError::Decode { path: path.to_string(), offset, msg: e.to_string() })
}

/// A message as crit JSON (pretty: hex/flags/dict/dev rendering on).
pub fn to_json(msg: &DynamicMessage, pretty: bool) -> Json {
    message_json(msg, pretty, false)
}

fn message_json(msg: &DynamicMessage, pretty: bool, hex: bool) -> Json {
    let mut fields: Vec<(FieldDescriptor, &Value)> = msg.fields().collect();
    fields.sort_by_key(|(f, _)| f.number());
    let mut m = Map::new();
    for (f, v) in fields {
        let o = field_opts(&f);
        let j = match v {
            Value::List(items) if pretty && o.ipadd => Json::Array(vec![Json::String(ip_text(items))]),
            Value::List(items) => Json::Array(items.iter().map(|x| scalar_json(&f, &o, x, pretty, hex)).collect()),
            other => scalar_json(&f, &o, other, pretty, hex),
        };
        m.insert(f.name().to_string(), j);
    }
    Json::Object(m)
}

fn ip_text(items: &[Value]) -> String {
    let words: Vec<u32> = items.iter().filter_map(|v| v.as_u32()).map(u32::from_be).collect();
    if words.len() == 1 {
        std::net::Ipv4Addr::from(words[0]).to_string()
    } else {
        let mut v: u128 = 0;
        for w in words.iter().take(4) {
            v = (v << 32) | u128::from(*w);
        }
        std::net::Ipv6Addr::from(v).to_string()
    }
}

fn int_json(o: &FieldOpts, name: &str, v: i128, pretty: bool, hex: bool) -> Json {
    if pretty {
        if hex || o.hex {
            return Json::String(if v < 0 { format!("-{:#x}", -v) } else { format!("{v:#x}") });
        }
        if o.dev || o.odev {
            let d = v as u64;
            let (maj, min) = if o.odev {
                (((d >> 8) & 0xfff) | ((d >> 32) & !0xfff), (d & 0xff) | ((d >> 12) & !0xff))
            } else {
                (d >> 20, d & ((1 << 20) - 1))
            };
            return Json::String(format!("{maj}:{min}"));
        }
        if let Some(fl) = &o.flags {
            return Json::String(match tables::flag_table(fl) {
                Some(t) => tables::render_flags(v as u64, t),
                None => format!("{v:#x}"),
            });
        }
        if let Some(d) = &o.dict
            && let Some(n) = tables::dict_name(d, name, v as i64) {
                return Json::String(n.to_string());
            }
    }
    if v < 0 { Json::from(v as i64) } else { Json::from(v as u64) }
}

fn scalar_json(f: &FieldDescriptor, o: &FieldOpts, v: &Value, pretty: bool, hex: bool) -> Json {
    let hex = hex || o.hex;
    match v {
        Value::Message(m) => message_json(m, pretty, hex),
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => match o.conv.as_deref() {
            Some("unix_name") => Json::String(quopri(b)),
            _ => Json::String(base64_lines(b)),
        },
        Value::EnumNumber(n) => match f.kind() {
            Kind::Enum(e) => match e.get_value(*n) {
                Some(ev) => Json::String(ev.name().to_string()),
                None => Json::from(*n),
            },
            _ => Json::from(*n),
        },
        Value::I32(x) => int_json(o, f.name(), i128::from(*x), pretty, hex),
        Value::I64(x) => int_json(o, f.name(), i128::from(*x), pretty, hex),
        Value::U32(x) => int_json(o, f.name(), i128::from(*x), pretty, hex),
        Value::U64(x) => int_json(o, f.name(), i128::from(*x), pretty, hex),
        Value::F32(x) => Json::from(f64::from(*x)),
        Value::F64(x) => Json::from(*x),
        Value::List(_) | Value::Map(_) => Json::Null,
    }
}

fn u64_field(m: &DynamicMessage, name: &str) -> u64 {
    match m.get_field_by_name(name).as_deref() {
        Some(Value::U32(v)) => u64::from(*v),
        Some(Value::U64(v)) => *v,
        Some(Value::I32(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Value::I64(v)) => u64::try_from(*v).unwrap_or(0),
        _ => 0,
    }
}

fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

/// Decode a whole image as crit does (`crit decode [--pretty]`).
pub fn decode_image<R: Read>(mut r: ImageReader<AnyKind, R>, pretty: bool) -> Result<Json, ImageError> {
    let kind = r.kind();
    let path = r.name().to_string();
    let missing = |n: &str| ImageError::Invalid { path: path.clone(), msg: format!("schema has no message {n}") };
    let desc = message(kind.entry).ok_or_else(|| missing(kind.entry))?;
    let mut entries = Vec::new();

    let next = |r: &mut ImageReader<AnyKind, R>, d: &MessageDescriptor| -> Result<Option<DynamicMessage>, ImageError> {
        let at = r.offset();
        match r.next_raw()? {
            None => Ok(None),
            Some(b) => decode_entry(d, &b, r.name(), at).map(Some),
        }
    };

    match kind.payload {
        Payload::Pagemap => {
            let head = message("pagemap_head").ok_or_else(|| missing("pagemap_head"))?;
            if let Some(h) = next(&mut r, &head)? {
                entries.push(to_json(&h, pretty));
                while let Some(e) = next(&mut r, &desc)? {
                    entries.push(to_json(&e, pretty));
                }
            }
        }
        Payload::GhostFile => {
            let chunk = message("ghost_chunk_entry").ok_or_else(|| missing("ghost_chunk_entry"))?;
            let at = r.offset();
            let g = next(&mut r, &desc)?
                .ok_or(ImageError::Truncated { path: path.clone(), offset: at, what: "entry" })?;
            let mut gj = to_json(&g, pretty);
            let chunked = matches!(g.get_field_by_name("chunks").as_deref(), Some(Value::Bool(true)));
            if chunked {
                entries.push(gj);
                while let Some(c) = next(&mut r, &chunk)? {
                    let data = r.payload(u64_field(&c, "len"))?;
                    let mut cj = to_json(&c, pretty);
                    cj["extra"] = Json::String(base64_lines(&data));
                    entries.push(cj);
                }
            } else {
                gj["extra"] = Json::String(base64_lines(&r.rest()?));
                entries.push(gj);
            }
        }
        payload => {
            let ipc_msg = message("ipc_msg").ok_or_else(|| missing("ipc_msg"))?;
            while let Some(e) = next(&mut r, &desc)? {
                let mut j = to_json(&e, pretty);
                let extra = match payload {
                    Payload::PipeData => Some(Json::String(base64_lines(&r.payload(u64_field(&e, "bytes"))?))),
                    Payload::SkQueue => Some(Json::String(base64_lines(&r.payload(u64_field(&e, "length"))?))),
                    Payload::BpfMapData => {
                        let n = u64_field(&e, "keys_bytes") + u64_field(&e, "values_bytes");
                        Some(Json::String(base64_lines(&r.payload(n)?)))
                    }
                    Payload::TcpStream => {
                        let inq = r.payload(u64_field(&e, "inq_len"))?;
                        let outq = r.payload(u64_field(&e, "outq_len"))?;
                        let mut m = Map::new();
                        m.insert("inq".into(), Json::String(base64_lines(&inq)));
                        m.insert("outq".into(), Json::String(base64_lines(&outq)));
                        Some(Json::Object(m))
                    }
                    Payload::IpcShm => {
                        let size = u64_field(&e, "size");
                        let data = r.payload(size)?;
                        r.payload(round_up(size, 4) - size)?;
                        Some(Json::String(base64_lines(&data)))
                    }
                    Payload::IpcSem => {
                        let size = 2 * u64_field(&e, "nsems");
                        let data = r.payload(size)?;
                        r.payload(round_up(size, 8) - size)?;
                        let sems = data.chunks_exact(2).map(|c| Json::from(u16::from_le_bytes([c[0], c[1]]))).collect();
                        Some(Json::Array(sems))
                    }
                    Payload::IpcMsg => {
                        let mut msgs = Vec::new();
                        for _ in 0..u64_field(&e, "qnum") {
                            let Some(m) = next(&mut r, &ipc_msg)? else { break };
                            let msize = u64_field(&m, "msize");
                            let data = r.payload(msize)?;
                            r.payload(round_up(msize, 8) - msize)?;
                            msgs.push(to_json(&m, false));
                            msgs.push(Json::String(base64_lines(&data)));
                        }
                        Some(Json::Array(msgs))
                    }
                    Payload::None | Payload::Pagemap | Payload::GhostFile => None,
                };
                if let Some(x) = extra {
                    j["extra"] = x;
                }
                entries.push(j);
            }
        }
    }
    let mut top = Map::new();
    top.insert("magic".into(), Json::String(kind.name.to_string()));
    top.insert("entries".into(), Json::Array(entries));
    Ok(Json::Object(top))
}

/// Re-encode every entry of an image through reflection and compare with
/// the original bytes: the building block of round-trip checks.
pub fn reencode_entry(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, prost::DecodeError> {
    use prost::Message;
    let m = DynamicMessage::decode(desc.clone(), bytes)?;
    Ok(m.encode_to_vec())
}

/// Name of the message type of `msg` (for messages in errors).
pub fn type_name(msg: &DynamicMessage) -> String {
    msg.descriptor().full_name().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn options_are_loaded() {
        let s = super::schemas();
        assert!(s.opts.len() > 50, "{} field options", s.opts.len());
    }
}
