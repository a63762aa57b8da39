//! Logging in CRIU's format, through `tracing`.
//!
//! Levels map as CRIU's `-v0..-v4`: 0 nothing, 1 errors, 2 (default) plus
//! warnings, 3 plus info and timestamps, 4 plus debug. Lines look like
//! `(00.012345) text`; errors `Error (src/file.rs:123): text`, warnings
//! `Warn  (src/file.rs:123): text`. Errors also go to stderr when the log
//! is a file. [`msg`] is CRIU's `pr_msg`: always printed, to stdout.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::opts::Opts;

/// CRIU's level at which timestamps start to be printed.
const LOG_TIMESTAMP: i32 = 3;

struct Sink {
    /// None: the log is stderr.
    file: Option<File>,
    path: Option<PathBuf>,
    level: i32,
}

struct State {
    start: Instant,
    sink: Mutex<Sink>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    STATE.get_or_init(|| State {
        start: Instant::now(),
        sink: Mutex::new(Sink { file: None, path: None, level: crate::opts::DEFAULT_LOGLEVEL }),
    })
}

/// Start the clock early so timestamps count from process start.
pub fn start_clock() {
    let _ = state();
}

fn level_num(l: &Level) -> i32 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        _ => 4,
    }
}

/// Where the log goes for these options: `None` for stderr.
pub fn log_path(opts: &Opts) -> Option<PathBuf> {
    let out = opts.output.as_deref()?;
    if out == "-" {
        return None;
    }
    let p = Path::new(out);
    if p.is_absolute() {
        return Some(p.to_path_buf());
    }
    match opts.work_dir.as_ref().or(opts.imgs_dir.as_ref()) {
        Some(base) => Some(base.join(p)),
        None => Some(p.to_path_buf()),
    }
}

/// Install the subscriber and open the log for `opts`. Call once.
pub fn init(opts: &Opts) -> std::io::Result<()> {
    let st = state();
    {
        let mut sink = st.sink.lock().unwrap_or_else(|e| e.into_inner());
        sink.level = opts.effective_log_level();
        if let Some(path) = log_path(opts) {
            sink.file = Some(open_log(&path)?);
            sink.path = Some(path);
        }
    }
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CriuLayer));
    Ok(())
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("can't open log file {}: {e}", path.display())))
}

/// `--log-pid`: switch this process's log to `FILE.PID` (a restored task
/// calls this after fork). Does nothing when the log is stderr.
pub fn reopen_for_pid(pid: i32) -> std::io::Result<()> {
    let mut sink = state().sink.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = sink.path.clone() {
        let mut name = path.into_os_string();
        name.push(format!(".{pid}"));
        // The base path stays: a grandchild's log is LOG.PID as well,
        // never LOG.PARENT.PID.
        sink.file = Some(open_log(&PathBuf::from(name))?);
    }
    Ok(())
}

/// A restoring process sharing its fd table with another (CLONE_FILES):
/// log through a copy of the log file's fd of its own, the shared one left
/// to the other process (never closed here).
pub fn own_fd() -> std::io::Result<()> {
    let mut sink = state().sink.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = sink.file.take() {
        let copy = f.try_clone();
        std::mem::forget(f);
        sink.file = Some(copy?);
    }
    Ok(())
}

/// Move the log file's fd to a number >= `min` (a restore installing the
/// task's fd table keeps logging there). Returns the new fd, if the log is
/// a file.
pub fn lift_fd(min: i32) -> std::io::Result<Option<i32>> {
    use std::os::fd::{AsFd, AsRawFd};
    let mut sink = state().sink.lock().unwrap_or_else(|e| e.into_inner());
    let Some(f) = sink.file.as_ref() else { return Ok(None) };
    let moved = File::from(crate::sys::fd::dup_cloexec_from(f.as_fd(), min)?);
    let fd = moved.as_raw_fd();
    sink.file = Some(moved);
    Ok(Some(fd))
}

/// CRIU's `pr_msg`: a message for the user, on stdout, at every level.
pub fn msg(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// The current log level (0..=4).
pub fn level() -> i32 {
    state().sink.lock().map(|s| s.level).unwrap_or(crate::opts::DEFAULT_LOGLEVEL)
}

struct MessageVisitor<'a>(&'a mut String);

impl Visit for MessageVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
}

/// Format one line the CRIU way.
pub fn format_line(elapsed: std::time::Duration, level: i32, event_level: &Level, file: &str, line: u32, text: &str) -> String {
    let mut s = String::new();
    if level >= LOG_TIMESTAMP {
        let _ = write!(s, "({:02}.{:06}) ", elapsed.as_secs(), elapsed.subsec_micros());
    }
    match *event_level {
        Level::ERROR => {
            let _ = write!(s, "Error ({file}:{line}): ");
        }
        Level::WARN => {
            let _ = write!(s, "Warn  ({file}:{line}): ");
        }
        _ => {}
    }
    s.push_str(text);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

struct CriuLayer;

impl<S: Subscriber> Layer<S> for CriuLayer {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        level_num(meta.level()) <= level()
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let st = state();
        let meta = event.metadata();
        let mut text = String::new();
        event.record(&mut MessageVisitor(&mut text));
        let mut sink = st.sink.lock().unwrap_or_else(|e| e.into_inner());
        if level_num(meta.level()) > sink.level {
            return;
        }
        let line = format_line(
            st.start.elapsed(),
            sink.level,
            meta.level(),
            meta.file().unwrap_or("?"),
            meta.line().unwrap_or(0),
            &text,
        );
        match sink.file.as_mut() {
            Some(f) => {
                let _ = f.write_all(line.as_bytes());
                if *meta.level() == Level::ERROR {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn line_format() {
        let d = Duration::from_micros(12_345);
        assert_eq!(format_line(d, 4, &Level::INFO, "src/a.rs", 7, "hello"), "(00.012345) hello\n");
        assert_eq!(format_line(d, 2, &Level::INFO, "src/a.rs", 7, "hello"), "hello\n");
        assert_eq!(
            format_line(d, 4, &Level::ERROR, "src/a.rs", 7, "bad"),
            "(00.012345) Error (src/a.rs:7): bad\n"
        );
        assert_eq!(format_line(d, 2, &Level::WARN, "src/a.rs", 9, "hm"), "Warn  (src/a.rs:9): hm\n");
        let long = Duration::from_secs(123) + Duration::from_micros(5);
        assert_eq!(format_line(long, 3, &Level::DEBUG, "f", 1, "x"), "(123.000005) x\n");
    }

    #[test]
    fn path_resolution() {
        let mut o = Opts::default();
        assert_eq!(log_path(&o), None);
        o.output = Some("dump.log".into());
        assert_eq!(log_path(&o), Some(PathBuf::from("dump.log")));
        o.imgs_dir = Some("/imgs".into());
        assert_eq!(log_path(&o), Some(PathBuf::from("/imgs/dump.log")));
        o.work_dir = Some("/work".into());
        assert_eq!(log_path(&o), Some(PathBuf::from("/work/dump.log")));
        o.output = Some("/abs.log".into());
        assert_eq!(log_path(&o), Some(PathBuf::from("/abs.log")));
        o.output = Some("-".into());
        assert_eq!(log_path(&o), None);
    }
}
