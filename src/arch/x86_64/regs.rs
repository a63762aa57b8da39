//! x86_64 general registers: the kernel's `user_regs_struct`, read and
//! written with `PTRACE_{GET,SET}REGSET NT_PRSTATUS`, and the edits compel
//! makes to run code in a seized task.

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::sys::ptrace;

/// `struct user_regs_struct` (field order is the kernel's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

const _: () = assert!(std::mem::size_of::<Regs>() == 27 * 8);

/// The kernel's internal "restart me" return values.
const ERESTARTSYS: i64 = -512;
const ERESTARTNOINTR: i64 = -513;
const ERESTARTNOHAND: i64 = -514;
const ERESTART_RESTARTBLOCK: i64 = -516;
const EINTR: i64 = -4;
/// Length of the `syscall` instruction.
const SYSCALL_LEN: u64 = 2;
/// EFLAGS.TF and DF: must be clear when we start code in the task.
const EFLAGS_TF: u64 = 1 << 8;
const EFLAGS_DF: u64 = 1 << 10;

impl Regs {
    /// Read the registers of a ptrace-stopped task.
    pub fn get(pid: Pid) -> Result<Regs, Errno> {
        ptrace::get_regs(pid, ptrace::NT_PRSTATUS)
    }

    /// Write the registers of a ptrace-stopped task.
    pub fn set(&self, pid: Pid) -> Result<(), Errno> {
        ptrace::set_regs(pid, ptrace::NT_PRSTATUS, self)
    }

    /// The thread pointer (fs base on x86_64): where the C library keeps
    /// the thread's control block.
    pub fn thread_pointer(&self) -> u64 {
        self.fs_base
    }

    pub fn ip(&self) -> u64 {
        self.rip
    }

    pub fn sp(&self) -> u64 {
        self.rsp
    }

    /// The syscall the task was stopped in, or -1 if none.
    pub fn syscall_nr(&self) -> i64 {
        self.orig_rax as i64
    }

    /// The syscall return value (or the kernel's restart code while stopped
    /// inside a syscall).
    pub fn retval(&self) -> i64 {
        self.rax as i64
    }

    /// Set up to execute syscall `nr` with `args` at `ip`. `orig_rax` = -1
    /// keeps the kernel's restart logic away from these registers.
    pub fn set_syscall(&mut self, ip: u64, nr: i64, args: [u64; 6]) {
        self.rip = ip;
        self.rax = nr as u64;
        self.orig_rax = u64::MAX;
        self.rdi = args[0];
        self.rsi = args[1];
        self.rdx = args[2];
        self.r10 = args[3];
        self.r8 = args[4];
        self.r9 = args[5];
        self.eflags &= !(EFLAGS_TF | EFLAGS_DF);
    }

    /// Set up to run `entry(arg)` on the stack ending at `sp`.
    pub fn set_call(&mut self, entry: u64, sp: u64, arg: u64) {
        self.rip = entry;
        self.rsp = sp;
        self.rdi = arg;
        self.rax = 0;
        self.orig_rax = u64::MAX;
        self.eflags &= !(EFLAGS_TF | EFLAGS_DF);
    }

    /// These registers as a dump image holds them (CRIU's convention): a
    /// task stopped inside a syscall that the kernel would restart
    /// (`-ERESTARTSYS`, `-ERESTARTNOINTR`, `-ERESTARTNOHAND` in `rax`) is
    /// rewound to re-execute its `syscall` instruction (`rip` back over it,
    /// `rax` = the syscall number); one that needs the kernel's restart
    /// block (`-ERESTART_RESTARTBLOCK`, e.g. nanosleep, clock_nanosleep)
    /// returns `-EINTR` instead, since a restored task has no restart block.
    /// `orig_rax` is kept as it was. An image never holds an `-ERESTART*`
    /// value in `rax` then, and applying this twice changes nothing.
    pub fn as_dumped(&self) -> Regs {
        let mut r = *self;
        if self.syscall_nr() >= 0 {
            match self.retval() {
                ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                    r.rax = self.orig_rax;
                    r.rip = self.rip.wrapping_sub(SYSCALL_LEN);
                }
                ERESTART_RESTARTBLOCK => r.rax = EINTR as u64,
                _ => {}
            }
        }
        r
    }

    /// These registers as `rt_sigreturn` must load them so the task carries
    /// on as the kernel would after the stop: [`Regs::as_dumped`] (rt_sigreturn
    /// disables the kernel's own syscall restart and resets the restart
    /// block), with `orig_rax` = -1. Registers from any image, ours or
    /// CRIU's, and registers read from a live task all go through here.
    pub fn rewound_for_sigreturn(&self) -> Regs {
        let mut r = self.as_dumped();
        r.orig_rax = u64::MAX;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewinds_restartable_syscalls() {
        let r = Regs { orig_rax: 34, rax: (-514i64) as u64, rip: 0x1002, ..Default::default() };
        let w = r.rewound_for_sigreturn();
        assert_eq!((w.rax, w.rip, w.orig_rax), (34, 0x1000, u64::MAX));
        let r = Regs { orig_rax: 230, rax: (-516i64) as u64, rip: 0x1002, ..Default::default() };
        let w = r.rewound_for_sigreturn();
        assert_eq!((w.rax as i64, w.rip), (-4, 0x1002));
        let r = Regs { orig_rax: u64::MAX, rax: 7, rip: 0x1002, ..Default::default() };
        assert_eq!(r.rewound_for_sigreturn().rax, 7);
    }

    #[test]
    fn dumped_registers_follow_criu() {
        // futex wait interrupted: re-executed, orig_rax kept.
        let r = Regs { orig_rax: 202, rax: (-512i64) as u64, rip: 0x2002, ..Default::default() };
        let d = r.as_dumped();
        assert_eq!((d.rax, d.rip, d.orig_rax), (202, 0x2000, 202));
        // clock_nanosleep: -EINTR, ip unchanged.
        let r = Regs { orig_rax: 230, rax: (-516i64) as u64, rip: 0x2002, ..Default::default() };
        let d = r.as_dumped();
        assert_eq!((d.rax as i64, d.rip, d.orig_rax), (-4, 0x2002, 230));
        // Idempotent, and a restore of the dumped image equals a restore of the live registers.
        assert_eq!(d.as_dumped(), d);
        for live in [
            Regs { orig_rax: 202, rax: (-512i64) as u64, rip: 0x2002, ..Default::default() },
            Regs { orig_rax: 34, rax: (-514i64) as u64, rip: 0x2002, ..Default::default() },
            Regs { orig_rax: 230, rax: (-516i64) as u64, rip: 0x2002, ..Default::default() },
            Regs { orig_rax: 0, rax: 5, rip: 0x2002, ..Default::default() },
        ] {
            assert_eq!(live.as_dumped().rewound_for_sigreturn(), live.rewound_for_sigreturn());
        }
    }
}
