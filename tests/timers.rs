//! POSIX timers (timer_create) survive dump and restore: same ids, signal,
//! value and clock, still firing at their interval.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn posix_timers_keep_ids_and_keep_firing() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    let script = format!(
        r#"import ctypes,signal,time
libc=ctypes.CDLL(None, use_errno=True)
class sigev(ctypes.Structure): _fields_=[('val',ctypes.c_long),('signo',ctypes.c_int),('notify',ctypes.c_int),('pad',ctypes.c_int*12)]
class ts(ctypes.Structure): _fields_=[('s',ctypes.c_long),('n',ctypes.c_long)]
class its(ctypes.Structure): _fields_=[('i',ts),('v',ts)]
n=[0]
def h(*a):
    n[0]+=1
    open('{out}','w').write(str(n[0]))
signal.signal(signal.SIGUSR1,h)
ids=[]
for k in range(3):
    tid=ctypes.c_int(0)
    assert libc.timer_create(1, ctypes.byref(sigev(0x100+k, 10 if k==1 else 12, 0)), ctypes.byref(tid))==0
    ids.append(tid.value)
libc.timer_delete(ids[0])
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
assert libc.timer_settime(ids[1],0,ctypes.byref(its(ts(0,50000000),ts(0,50000000))),None)==0
assert libc.timer_settime(ids[2],0,ctypes.byref(its(ts(5,0),ts(30,0))),None)==0
open('{ready}','w').close()
while True: time.sleep(1)
"#,
        out = out.display(),
        ready = ready.display()
    );
    let mut t = Target::spawn(py, &["-c", &script], Some(&ready));
    let pid = t.pid();
    let before = std::fs::read_to_string(format!("/proc/{pid}/timers")).unwrap();
    let imgs = dump_killed(&mut t, tmp.path());
    let core = crit(&imgs.join(format!("core-{pid}.img")));
    let posix = core["entries"][0]["tc"]["timers"]["posix"].as_array().unwrap().clone();
    assert_eq!(posix.len(), 2, "{posix:?}");
    restore_detached(&imgs);
    let after = std::fs::read_to_string(format!("/proc/{pid}/timers")).unwrap();
    // Same ids, signals, values, clocks; notified to the same (restored) pid.
    assert_eq!(after, before);
    let n0: u64 = read_number(&out);
    std::thread::sleep(Duration::from_millis(500));
    let n1: u64 = read_number(&out);
    assert!(n1 >= n0 + 5, "the 50 ms timer keeps firing: {n0} then {n1}");
    kill_and_reap(pid);
}
