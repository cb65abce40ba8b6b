//! The sandbox's seccomp profile: the system calls a program may make, and nothing else.
//!
//! Docker's default profile would do, but ours is both stricter and cheaper:
//! - Native ABI only. Docker's default also admits the 32-bit x86 and x32 ABIs (`int 0x80`),
//!   the compat path behind a long line of kernel exploits, which no runner needs: a
//!   program's call through another ABI fails like any call not listed.
//! - A shorter list: nothing a runner does not use (kernel AIO, io_uring, fanotify, NUMA
//!   policy, `sync`, keyrings, ...), and sockets only of the kinds a program can use without
//!   a network, by family, type and protocol: Unix sockets; TCP and UDP over IPv4 and IPv6
//!   (the loopback); netlink's NETLINK_ROUTE, for libc's interface queries. Not AF_ALG,
//!   AF_PACKET, AF_VSOCK, SCTP, the other netlink protocols (audit, uevents, sock_diag, ...)
//!   and the rest of the kernel's socket code. The type matters: `socket(AF_INET,
//!   SOCK_SEQPACKET, 0)` is SCTP when that module is loaded.
//! - The runtime compiles the profile into a BPF filter at every container start: libseccomp
//!   compiles one ABI several times faster than three (figures in docs/BENCHMARKS.md).
//!
//! As in Docker's profile: anything unlisted fails with EPERM; `clone` is allowed only
//! without namespace flags and `clone3` (whose flags a filter cannot read) fails with ENOSYS,
//! so libc falls back to `clone`; `personality` only reads or sets the default persona.
//! Calls that need a capability (mount, chroot, module loading, setting the clock, ...) are
//! not listed: every capability is dropped anyway, and an unlisted call cannot reach a
//! kernel bug before its capability check.
//!
//! The list is deny-by-default on purpose: a system call added to a later kernel stays
//! refused until someone lists it here.

use std::sync::LazyLock;

use serde_json::{json, Value};

/// The architecture the profile admits: the fleet's own, which is the engine's (they share
/// a host), and the runner images are built for it.
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: &str = "SCMP_ARCH_X86_64";
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: &str = "SCMP_ARCH_AARCH64";

/// `errno` values the profile returns.
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET: the `clone` flags that make namespaces.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const AF_NETLINK: u64 = 16;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
/// The bits of `socket`'s type argument that name the type (the rest are SOCK_NONBLOCK and
/// SOCK_CLOEXEC).
const SOCK_TYPE_MASK: u64 = 0xf;
const IPPROTO_TCP: u64 = 6;
const IPPROTO_UDP: u64 = 17;
const NETLINK_ROUTE: u64 = 0;

/// The sockets a program may open, as (family, type, protocols): `None` for any type. A
/// protocol of 0 is the type's default (TCP for a stream, UDP for a datagram).
const SOCKETS: [(u64, Option<u64>, &[u64]); 6] = [
    (AF_UNIX, None, &[0]),
    (AF_INET, Some(SOCK_STREAM), &[0, IPPROTO_TCP]),
    (AF_INET, Some(SOCK_DGRAM), &[0, IPPROTO_UDP]),
    (AF_INET6, Some(SOCK_STREAM), &[0, IPPROTO_TCP]),
    (AF_INET6, Some(SOCK_DGRAM), &[0, IPPROTO_UDP]),
    (AF_NETLINK, None, &[NETLINK_ROUTE]),
];

/// `personality` arguments allowed: PER_LINUX (the default) and 0xffffffff (a query).
const PERSONALITIES: [u64; 2] = [0, 0xffff_ffff];

/// System calls allowed with any arguments. Names unknown on an architecture (aarch64 has
/// no `open`, `fork`, `stat`, ...) are skipped there by the runtime (crun and runc warn and
/// ignore unknown names; aarch64 is not tested here).
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    // Files and directories (a read-only root and a tmpfs: permissions do the rest).
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
    "lseek", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
    "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd",
    "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename",
    "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod",
    "fchmodat", "chown", "fchown", "lchown", "fchownat", "truncate", "ftruncate",
    "fallocate", "fsync", "fdatasync", "sync_file_range", "umask", "utime", "utimes",
    "utimensat", "futimesat", "mknod", "mknodat", "flock", "fadvise64", "readahead",
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    // File descriptors, pipes, copying and waiting on descriptors.
    "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "ioctl", "sendfile", "splice", "tee",
    "vmsplice", "copy_file_range", "poll", "ppoll", "select", "pselect6", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd",
    "eventfd2", "signalfd", "signalfd4", "timerfd_create", "timerfd_settime",
    "timerfd_gettime", "memfd_create",
    // Memory.
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
    "mlock2", "munlock", "mlockall", "munlockall", "membarrier", "pkey_alloc", "pkey_free",
    "pkey_mprotect",
    // Processes and threads (pids, memory and CPU are capped by the cgroup).
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill",
    "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "getpid", "gettid", "getppid",
    "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "getuid", "geteuid", "getgid",
    "getegid", "getresuid", "getresgid", "getgroups", "capget", "capset", "prctl",
    "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex",
    "futex_waitv", "sched_yield", "sched_getaffinity", "sched_setaffinity",
    "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
    "sched_getattr", "sched_setattr", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "getpriority", "setpriority", "getrlimit", "setrlimit",
    "prlimit64", "getrusage", "times", "sysinfo", "uname", "getcpu", "getrandom",
    "restart_syscall",
    // Signals and timers.
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "pause",
    "alarm", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "nanosleep", "clock_nanosleep", "clock_gettime",
    "clock_getres", "gettimeofday", "time",
    // Sockets (no network: loopback and Unix sockets only; families below).
    "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname",
    "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
    "shutdown", "setsockopt", "getsockopt",
    // System V and POSIX IPC (the container has its own IPC namespace).
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr",
];

/// The profile as Docker takes it (`SecurityOpt: ["seccomp=<this JSON>"]`).
pub fn profile() -> Value {
    let allow_if = |name: &str, args: Value| json!({ "names": [name], "action": "SCMP_ACT_ALLOW", "args": args });
    let mut rules = vec![json!({ "names": ALLOWED, "action": "SCMP_ACT_ALLOW" })];
    rules.push(allow_if(
        "clone",
        json!([{ "index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ" }]),
    ));
    // Several rules for one call: any of them allows it; a rule's conditions must all hold.
    for (family, kind, protocols) in SOCKETS {
        for protocol in protocols {
            let mut args = vec![
                json!({ "index": 0, "value": family, "op": "SCMP_CMP_EQ" }),
                json!({ "index": 2, "value": protocol, "op": "SCMP_CMP_EQ" }),
            ];
            if let Some(kind) = kind {
                args.push(json!({ "index": 1, "value": SOCK_TYPE_MASK, "valueTwo": kind, "op": "SCMP_CMP_MASKED_EQ" }));
            }
            rules.push(allow_if("socket", Value::Array(args)));
        }
    }
    for persona in PERSONALITIES {
        rules.push(allow_if(
            "personality",
            json!([{ "index": 0, "value": persona, "op": "SCMP_CMP_EQ" }]),
        ));
    }
    rules.push(json!({ "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS }));
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": [NATIVE_ARCH],
        "syscalls": rules,
    })
}

/// The `SecurityOpt` entry that applies [`profile`] (rendered once; every create sends it).
pub fn security_opt() -> &'static str {
    static OPT: LazyLock<String> = LazyLock::new(|| format!("seccomp={}", profile()));
    &OPT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_by_default_native_abi_only() {
        let p = profile();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(p["defaultErrnoRet"], EPERM);
        assert_eq!(p["architectures"], json!([NATIVE_ARCH]));
    }

    #[test]
    fn nothing_dangerous_is_listed() {
        let listed: Vec<&str> = ALLOWED.to_vec();
        for name in [
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "unshare",
            "setns",
            "clone3",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "init_module",
            "finit_module",
            "delete_module",
            "kexec_load",
            "reboot",
            "swapon",
            "userfaultfd",
            "io_uring_setup",
            "io_setup",
            "open_by_handle_at",
            "name_to_handle_at",
            "fanotify_init",
            "setuid",
            "setgid",
            "sync",
            "syslog",
            "acct",
            "settimeofday",
            "clock_settime",
            "socket",
            "clone",
            "personality",
            "kcmp",
            "pidfd_getfd",
            "mbind",
            "move_pages",
            "seccomp",
        ] {
            assert!(
                !listed.contains(&name),
                "{name} must not be allowed unconditionally"
            );
        }
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), listed.len(), "a name is listed twice");
    }

    #[test]
    fn conditional_rules() {
        let p = profile();
        let rules = p["syscalls"].as_array().unwrap();
        let for_name = |name: &str| -> Vec<&Value> {
            rules
                .iter()
                .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
                .collect()
        };
        let clone = for_name("clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0]["args"][0]["value"], CLONE_NAMESPACE_FLAGS);
        assert_eq!(clone[0]["args"][0]["valueTwo"], 0);
        // (family, type, protocol) of every socket rule.
        let sockets: Vec<(u64, Option<u64>, u64)> = for_name("socket")
            .iter()
            .map(|r| {
                let args = r["args"].as_array().unwrap();
                let arg = |index: u64| args.iter().find(|a| a["index"] == index);
                let family = arg(0).unwrap();
                let protocol = arg(2).unwrap();
                assert_eq!(
                    (&family["op"], &protocol["op"]),
                    (&json!("SCMP_CMP_EQ"), &json!("SCMP_CMP_EQ"))
                );
                let kind = arg(1).map(|k| {
                    assert_eq!(
                        (&k["op"], &k["value"]),
                        (&json!("SCMP_CMP_MASKED_EQ"), &json!(0xf))
                    );
                    k["valueTwo"].as_u64().unwrap()
                });
                (
                    family["value"].as_u64().unwrap(),
                    kind,
                    protocol["value"].as_u64().unwrap(),
                )
            })
            .collect();
        let allowed = |family: u64, kind: u64, protocol: u64| {
            sockets
                .iter()
                .any(|&(f, k, p)| f == family && p == protocol && k.is_none_or(|k| k == kind & 0xf))
        };
        // Unix, TCP and UDP on IPv4 and IPv6, NETLINK_ROUTE: with flags, and by default protocol.
        assert!(allowed(1, 1, 0) && allowed(1, 5, 0));
        assert!(allowed(2, 1 | 0x80000, 0) && allowed(2, 1, 6) && allowed(10, 2 | 0x800, 17));
        assert!(allowed(16, 3, 0));
        // Not SCTP (by protocol, or as SOCK_SEQPACKET's default), not other netlink
        // protocols (sock_diag 4, audit 9, uevents 15), not raw IP, not UDP-Lite, not AF_PACKET.
        assert!(!allowed(2, 1, 132) && !allowed(10, 5, 0) && !allowed(2, 5, 132));
        assert!(!allowed(16, 3, 4) && !allowed(16, 3, 9) && !allowed(16, 2, 15));
        assert!(!allowed(2, 3, 0) && !allowed(2, 2, 136) && !allowed(17, 3, 0));
        assert!(!allowed(2, 1, 17), "no UDP through a stream socket");
        let clone3 = for_name("clone3");
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], ENOSYS);
        assert!(security_opt().starts_with("seccomp={"));
    }
}
