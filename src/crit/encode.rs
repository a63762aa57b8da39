//! crit JSON back into an image (`crit encode`): every field parsed by the
//! same `(criu)` options that rendered it (hex strings, flag names,
//! dictionary names, `major:minor` devices, IP addresses, base64 or
//! quoted-printable bytes, enum names), each kind's raw payload from
//! `"extra"`. Decoding an image and encoding its JSON gives the same bytes.

use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde_json::Value as Json;

use super::{field_opts, message, tables, FieldOpts};
use crate::images::kind::{self, Payload, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, INVENTORY_MAGIC};

/// An encoding problem, naming the JSON path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct EncodeError {
    pub path: String,
    pub msg: String,
}

fn err(path: &str, msg: impl Into<String>) -> EncodeError {
    EncodeError { path: path.to_string(), msg: msg.into() }
}

fn int_of(o: &FieldOpts, f: &FieldDescriptor, j: &Json, path: &str) -> Result<i128, EncodeError> {
    match j {
        Json::Number(n) => n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)).ok_or_else(|| err(path, "not an integer")),
        Json::String(s) => {
            if let Some(h) = s.strip_prefix("-0x") {
                return i128::from_str_radix(h, 16).map(|v| -v).map_err(|e| err(path, e.to_string()));
            }
            if let Some(h) = s.strip_prefix("0x") {
                return i128::from_str_radix(h, 16).map_err(|e| err(path, e.to_string()));
            }
            if o.dev || o.odev {
                let (ma, mi) = s.split_once(':').ok_or_else(|| err(path, "not major:minor"))?;
                let (ma, mi): (u64, u64) = (ma.parse().map_err(|_| err(path, "bad major"))?, mi.parse().map_err(|_| err(path, "bad minor"))?);
                let v = if o.odev {
                    ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12)
                } else {
                    (ma << 20) | mi
                };
                return Ok(i128::from(v));
            }
            if let Some(t) = o.flags.as_deref().and_then(tables::flag_table) {
                return tables::parse_flags(s, t).map(i128::from).ok_or_else(|| err(path, format!("bad flags {s:?}")));
            }
            if let Some(d) = &o.dict
                && let Some(v) = tables::dict_value(d, f.name(), s) {
                    return Ok(i128::from(v));
                }
            s.parse().map_err(|_| err(path, format!("not a number: {s:?}")))
        }
        _ => Err(err(path, "expected a number")),
    }
}

fn scalar(f: &FieldDescriptor, o: &FieldOpts, j: &Json, path: &str) -> Result<Value, EncodeError> {
    Ok(match f.kind() {
        Kind::Message(m) => Value::Message(message_from(&m, j, path)?),
        Kind::Bool => Value::Bool(j.as_bool().ok_or_else(|| err(path, "expected a bool"))?),
        Kind::String => Value::String(j.as_str().ok_or_else(|| err(path, "expected a string"))?.to_string()),
        Kind::Bytes => {
            let s = j.as_str().ok_or_else(|| err(path, "expected a string"))?;
            let b = if o.conv.as_deref() == Some("unix_name") { super::text::quopri_decode(s) } else { super::text::base64_decode(s) };
            Value::Bytes(b.ok_or_else(|| err(path, "bad encoded bytes"))?.into())
        }
        Kind::Enum(e) => match j {
            Json::String(n) => Value::EnumNumber(e.get_value_by_name(n).ok_or_else(|| err(path, format!("no enum value {n}")))?.number()),
            Json::Number(n) => Value::EnumNumber(n.as_i64().unwrap_or(0) as i32),
            _ => return Err(err(path, "expected an enum name")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(int_of(o, f, j, path)? as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(int_of(o, f, j, path)? as i64),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(int_of(o, f, j, path)? as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(int_of(o, f, j, path)? as u64),
        Kind::Float => Value::F32(j.as_f64().unwrap_or(0.0) as f32),
        Kind::Double => Value::F64(j.as_f64().unwrap_or(0.0)),
    })
}

fn ip_words(s: &str, path: &str) -> Result<Vec<Value>, EncodeError> {
    let ip: std::net::IpAddr = s.parse().map_err(|_| err(path, format!("bad address {s:?}")))?;
    Ok(match ip {
        std::net::IpAddr::V4(a) => vec![Value::U32(u32::from(a).to_be())],
        std::net::IpAddr::V6(a) => {
            let v = u128::from(a);
            (0..4).rev().map(|i| Value::U32(((v >> (32 * i)) as u32).to_be())).collect()
        }
    })
}

/// A message from its crit JSON object.
pub fn message_from(desc: &MessageDescriptor, j: &Json, path: &str) -> Result<DynamicMessage, EncodeError> {
    let obj = j.as_object().ok_or_else(|| err(path, "expected an object"))?;
    let mut m = DynamicMessage::new(desc.clone());
    for (k, v) in obj {
        if k == "extra" {
            continue;
        }
        let p = format!("{path}.{k}");
        let f = desc.get_field_by_name(k).ok_or_else(|| err(&p, format!("no field {k} in {}", desc.name())))?;
        let o = field_opts(&f);
        let value = if f.is_list() {
            let items = v.as_array().ok_or_else(|| err(&p, "expected a list"))?;
            if o.ipadd {
                let s = items.first().and_then(Json::as_str).ok_or_else(|| err(&p, "expected an address"))?;
                Value::List(ip_words(s, &p)?)
            } else {
                Value::List(items.iter().enumerate().map(|(i, x)| scalar(&f, &o, x, &format!("{p}[{i}]"))).collect::<Result<_, _>>()?)
            }
        } else {
            scalar(&f, &o, v, &p)?
        };
        m.set_field(&f, value);
    }
    Ok(m)
}

fn push_entry(out: &mut Vec<u8>, m: &DynamicMessage) {
    let b = m.encode_to_vec();
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(&b);
}

fn extra_bytes(e: &Json, key: Option<&str>, path: &str) -> Result<Vec<u8>, EncodeError> {
    let v = match key {
        Some(k) => &e["extra"][k],
        None => &e["extra"],
    };
    super::text::base64_decode(v.as_str().ok_or_else(|| err(path, "no extra"))?).ok_or_else(|| err(path, "bad base64 in extra"))
}

fn pad(out: &mut Vec<u8>, n: usize, to: usize) {
    out.resize(out.len() + (n.div_ceil(to) * to - n), 0);
}

/// A whole image file from crit JSON (`{"magic": ..., "entries": [...]}`).
pub fn encode_image(j: &Json) -> Result<Vec<u8>, EncodeError> {
    let name = j["magic"].as_str().ok_or_else(|| err("magic", "missing"))?;
    let k = kind::by_name(name).ok_or_else(|| err("magic", format!("unknown image kind {name}")))?;
    let mut out = Vec::new();
    if k.magic != INVENTORY_MAGIC {
        out.extend_from_slice(&(if k.service { IMG_SERVICE_MAGIC } else { IMG_COMMON_MAGIC }).to_le_bytes());
    }
    out.extend_from_slice(&k.magic.to_le_bytes());
    let desc = message(k.entry).ok_or_else(|| err("magic", format!("no schema {}", k.entry)))?;
    let entries = j["entries"].as_array().ok_or_else(|| err("entries", "missing"))?;
    for (i, e) in entries.iter().enumerate() {
        let p = format!("entries[{i}]");
        let d = match (k.payload, i) {
            (Payload::Pagemap, 0) => message("pagemap_head").ok_or_else(|| err(&p, "no pagemap_head"))?,
            (Payload::GhostFile, n) if n > 0 => message("ghost_chunk_entry").ok_or_else(|| err(&p, "no ghost_chunk_entry"))?,
            _ => desc.clone(),
        };
        let m = message_from(&d, e, &p)?;
        push_entry(&mut out, &m);
        match k.payload {
            Payload::PipeData | Payload::SkQueue | Payload::BpfMapData => out.extend(extra_bytes(e, None, &p)?),
            Payload::GhostFile if e.get("extra").is_some() => out.extend(extra_bytes(e, None, &p)?),
            Payload::TcpStream => {
                out.extend(extra_bytes(e, Some("inq"), &p)?);
                out.extend(extra_bytes(e, Some("outq"), &p)?);
            }
            Payload::IpcShm => {
                let b = extra_bytes(e, None, &p)?;
                let n = b.len();
                out.extend(b);
                pad(&mut out, n, 4);
            }
            Payload::IpcSem => {
                let sems = e["extra"].as_array().ok_or_else(|| err(&p, "extra: expected a list"))?;
                for s in sems {
                    out.extend_from_slice(&(s.as_u64().unwrap_or(0) as u16).to_le_bytes());
                }
                pad(&mut out, 2 * sems.len(), 8);
            }
            Payload::IpcMsg => {
                let msgs = e["extra"].as_array().ok_or_else(|| err(&p, "extra: expected a list"))?;
                let md = message("ipc_msg").ok_or_else(|| err(&p, "no ipc_msg"))?;
                for pair in msgs.chunks(2) {
                    let m = message_from(&md, &pair[0], &p)?;
                    push_entry(&mut out, &m);
                    let data = super::text::base64_decode(pair.get(1).and_then(Json::as_str).unwrap_or(""))
                        .ok_or_else(|| err(&p, "bad base64"))?;
                    let n = data.len();
                    out.extend(data);
                    pad(&mut out, n, 8);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
