//! brk00: memory from sbrk() keeps its pattern, and the kernel's program
//! break (mm->brk) is where it was: brk(0) answers the same, and the heap
//! can still grow and shrink from there.

use zdtm::Checks;

const SIZE: usize = 1 << 20;

fn kernel_brk(addr: usize) -> usize {
    // SAFETY: raw brk; 0 only queries.
    unsafe { libc::syscall(libc::SYS_brk, addr) as usize }
}

fn main() {
    zdtm::test_init();
    let seed = std::process::id() as u64 * 77;
    // SAFETY: sbrk grows the data segment; the memory is ours.
    let p = unsafe { libc::sbrk(SIZE as libc::intptr_t) };
    if p as isize == -1 {
        zdtm::fail(&format!("sbrk: {}", zdtm::last_err()));
    }
    let p = p as *mut u8;
    // SAFETY: p..p+SIZE was just given to us.
    let heap = unsafe { std::slice::from_raw_parts_mut(p, SIZE) };
    zdtm::datagen(heap, seed);
    let end = kernel_brk(0);
    if end < p as usize + SIZE {
        zdtm::fail(&format!(
            "brk {end:#x} below our sbrk area end {:#x}",
            p as usize + SIZE
        ));
    }
    let heap_vma = zdtm::maps_entry(p as usize).unwrap_or_default();

    zdtm::test_daemon();
    zdtm::test_waitsig();

    if zdtm::sabotaged() {
        kernel_brk(end + 2 * zdtm::page_size());
    }
    let mut c = Checks::new();
    c.eq(
        "brk(0)",
        format!("{:#x}", kernel_brk(0)),
        format!("{end:#x}"),
    );
    c.check(zdtm::datachk(heap, seed).is_none(), || {
        format!(
            "sbrk memory differs at byte {:?}",
            zdtm::datachk(heap, seed)
        )
    });
    c.eq(
        "vma of the sbrk area",
        zdtm::maps_entry(p as usize).unwrap_or_default(),
        heap_vma.clone(),
    );
    c.check(heap_vma.ends_with("[heap]"), || {
        format!("sbrk area is not [heap]: {heap_vma}")
    });
    // Grow the break by a page and write there; then shrink back.
    let ps = zdtm::page_size();
    let grown = kernel_brk(end + ps);
    c.eq("brk grows by a page", grown, end + ps);
    if grown == end + ps {
        // SAFETY: the page just added to the data segment.
        unsafe { *((end + ps - 1) as *mut u8) = 1 };
        c.eq("brk shrinks back", kernel_brk(end), end);
    }
    c.finish()
}
