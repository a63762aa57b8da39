//! Host settings a test needs for its run, put back after it whatever
//! its result: `ping` tests get net.ipv4.ping_group_range widened to
//! every group (the kernel lets only groups in it make ping sockets; the
//! test, as TEST_UID, makes them, criu makes them again as root). Tests
//! running at once share one widening; the last to end puts the range
//! back as it was.

use std::sync::Mutex;

const RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";
const WIDE: &str = "0 2147483647";

/// (tests holding the widening, the range from before the first).
static HELD: Mutex<(usize, Option<String>)> = Mutex::new((0, None));

/// The widened range, held until dropped.
pub(super) struct PingRange;

impl PingRange {
    /// Widen the range (Err: why it could not be).
    pub(super) fn widen() -> Result<PingRange, String> {
        let mut h = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if h.0 == 0 {
            let old = std::fs::read_to_string(RANGE).map_err(|e| format!("{RANGE}: {e}"))?;
            std::fs::write(RANGE, WIDE).map_err(|e| format!("widening {RANGE} to {WIDE:?}: {e}"))?;
            h.1 = Some(old.trim().to_string());
        }
        h.0 += 1;
        Ok(PingRange)
    }
}

impl Drop for PingRange {
    fn drop(&mut self) {
        let mut h = HELD.lock().unwrap_or_else(|e| e.into_inner());
        h.0 -= 1;
        let old = if h.0 == 0 { h.1.take() } else { None };
        if let Some(Err(e)) = old.as_ref().map(|old| std::fs::write(RANGE, old)) {
            eprintln!("WARNING: putting {RANGE} back to {old:?}: {e}");
        }
    }
}
