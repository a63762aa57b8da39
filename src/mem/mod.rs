//! Task memory: VMAs (`vma`), AIO rings (`aio`), the page dump (`pages`), memfd objects
//! (`memfd`), hugetlb page sizes (`hugetlb`), shared memory contents at restore (`shmem`), the restore's
//! premap (`premap`), packet-socket rings mapped by the task (`packet_ring`), the copy-on-write sharing children take from their
//! parent's premap (`inherit`) and vDSO decision (`vdso`), and the
//! mm_entry that ties them to the task's mm boundaries (`mm`).

pub mod aio;
pub mod hugetlb;
pub mod inherit;
pub mod memfd;
pub mod mm;
pub mod packet_ring;
pub mod pages;
pub mod premap;
pub mod shmem;
pub mod vdso;
pub mod vma;

/// The top of the 47-bit user address space: nothing is laid out above it.
pub const TASK_SIZE: u64 = (1 << 47) - 4096;
