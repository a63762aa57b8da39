//! Kernel feature probes (CRIU's kerndat): what this kernel can do for dump and restore.
