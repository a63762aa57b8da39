//! Plain-old-data views: the one place where typed values and raw bytes are
//! converted, for the parasite protocol (`compel::proto`) and the register
//! sets ptrace fills in (`arch`).
//!
//! A type may implement [`Pod`] only here, each impl with the reason it is
//! sound: `#[repr(C)]`, made only of integers (or arrays of them), no implicit
//! padding (padding is spelled out as `_pad` fields), so every bit pattern is
//! a valid value and no byte is uninitialised.

use std::mem::{size_of, MaybeUninit};

/// Plain data: any byte pattern of `size_of::<Self>()` bytes is a valid value,
/// and a value has no uninitialised (padding) bytes.
///
/// # Safety
/// Implement only for types meeting the above; all impls live in this file.
pub unsafe trait Pod: Copy + 'static {}

/// The bytes of a value.
pub fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T: Pod has no padding, so all size_of::<T>() bytes behind the
    // reference are initialised; the slice borrows `v`.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The bytes of a value, writable (any bytes written form a valid T).
pub fn bytes_of_mut<T: Pod>(v: &mut T) -> &mut [u8] {
    // SAFETY: as in bytes_of; T: Pod accepts every bit pattern, so writes
    // through the slice cannot make `v` invalid; the slice borrows `v` mutably.
    unsafe { std::slice::from_raw_parts_mut((v as *mut T).cast::<u8>(), size_of::<T>()) }
}

/// An all-zero value.
pub fn zeroed<T: Pod>() -> T {
    // SAFETY: all-zero bytes are a valid T (T: Pod).
    unsafe { MaybeUninit::<T>::zeroed().assume_init() }
}

/// Read a value from the first `size_of::<T>()` bytes (any alignment).
pub fn read<T: Pod>(b: &[u8]) -> Option<T> {
    if b.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length was checked; read_unaligned has no alignment
    // requirement; any bytes form a valid T (T: Pod).
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) })
}

// SAFETY: `()` has no bytes, so nothing can be invalid or uninitialised.
unsafe impl Pod for () {}
// SAFETY: `u8` has no padding and every bit pattern is a value.
unsafe impl Pod for u8 {}
// SAFETY: `u16` has no padding and every bit pattern is a value.
unsafe impl Pod for u16 {}
// SAFETY: `u32` has no padding and every bit pattern is a value.
unsafe impl Pod for u32 {}
// SAFETY: `u64` has no padding and every bit pattern is a value.
unsafe impl Pod for u64 {}
// SAFETY: `i32` has no padding and every bit pattern is a value.
unsafe impl Pod for i32 {}
// SAFETY: `i64` has no padding and every bit pattern is a value.
unsafe impl Pod for i64 {}
// SAFETY: arrays have no padding between elements, so an array of Pod is Pod.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

mod proto_impls {
    use super::Pod;
    use crate::compel::proto::*;
    // Each is #[repr(C)] of u32/i32/u64/i64 fields and arrays of such
    // structs, with explicit `_pad` fields where alignment would otherwise
    // insert padding (sizes are asserted in proto.rs).
    // SAFETY: `BootArgs`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for BootArgs {}
    // SAFETY: `Request`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for Request {}
    // SAFETY: `Reply`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for Reply {}
    // SAFETY: `Hello`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for Hello {}
    // SAFETY: `PingArgs`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for PingArgs {}
    // SAFETY: `PingReply`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for PingReply {}
    // SAFETY: `KSigaction`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for KSigaction {}
    // SAFETY: `SigactsReply`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for SigactsReply {}
    // SAFETY: `StackT`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for StackT {}
    // SAFETY: `Timeval`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for Timeval {}
    // SAFETY: `Itimer`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for Itimer {}
    // SAFETY: `MiscReply`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for MiscReply {}
    // SAFETY: `IoVec`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for IoVec {}
}

#[cfg(target_arch = "x86_64")]
mod arch_impls {
    use super::Pod;
    // SAFETY: #[repr(C)] of 27 u64 fields (the kernel's user_regs_struct).
    unsafe impl Pod for crate::arch::Regs {}
    // SAFETY: #[repr(C)] of u64/u16/u32 fields laid out without holes (the
    // kernel's rt_sigframe pieces; sizes asserted in arch/x86_64/sigframe.rs).
    // SAFETY: `crate::arch::sigframe::RtSigframe`: #[repr(C)], integer fields only, padding spelled out (see above).
    unsafe impl Pod for crate::arch::sigframe::RtSigframe {}
}
