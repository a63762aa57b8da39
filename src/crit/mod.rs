//! Images as CRIU's `crit` JSON.
