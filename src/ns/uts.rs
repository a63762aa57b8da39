//! The UTS namespace: utsns-ID.img (hostname and domain name), read in
//! the namespace at dump and written into the new one at restore.

use anyhow::{Context, Result};

use crate::images::kind::kinds;
use crate::images::pb::UtsnsEntry;
use crate::images::{ImageDir, ImageReader, ImageWriter};

use super::ids::Kind;
use super::kind::NsKind;

pub struct Uts;

fn read(name: &str) -> Result<String> {
    let p = format!("/proc/sys/kernel/{name}");
    Ok(std::fs::read_to_string(&p).with_context(|| format!("can't read {p}"))?.trim_end_matches('\n').to_string())
}

fn write(name: &str, v: &str) -> Result<()> {
    let p = format!("/proc/sys/kernel/{name}");
    std::fs::write(&p, v).with_context(|| format!("can't write {v:?} to {p}"))
}

impl NsKind for Uts {
    fn kind(&self) -> Kind {
        Kind::Uts
    }

    fn images(&self, id: u32) -> Vec<String> {
        vec![kinds::utsns().file_name(u64::from(id))]
    }

    fn dump(&self, dir: &ImageDir, id: u32, _pages_id: &mut u32) -> Result<()> {
        let e = UtsnsEntry { nodename: read("hostname")?, domainname: read("domainname")? };
        let name = kinds::utsns().file_name(u64::from(id));
        let mut w = ImageWriter::create(dir, &name, kinds::utsns())?;
        w.write(&e)?;
        w.finish()?;
        Ok(())
    }

    fn prepare(&self, dir: &ImageDir, id: u32) -> Result<()> {
        let name = kinds::utsns().file_name(u64::from(id));
        let e = ImageReader::open_kind(dir, &name, kinds::utsns())?.expect().with_context(|| dir.display(&name))?;
        write("hostname", &e.nodename).with_context(|| dir.display(&name))?;
        write("domainname", &e.domainname).with_context(|| dir.display(&name))
    }
}
