//! The credit scheduler's domctl constants and `struct xen_domctl_scheduler_op` layout
//! (`hv::sched`) against Xen's public headers (`xen-public/domctl.h`, which only the toolstack
//! and Xen may include: the C probe defines `__XEN_TOOLS__`). Skips, saying so, without the
//! headers or a C compiler (as `xen_abi.rs` does).

use std::path::PathBuf;
use std::process::Command;

use hv::sched::*;

fn xen_public() -> PathBuf {
    std::env::var_os("XEN_PUBLIC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/xen-public"))
}

/// `#define NAME VALUE` of a header, VALUE a plain integer.
fn define(text: &str, name: &str) -> Option<i64> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == "#define" && w.next()? == name).then_some(())?;
        w.next()?.parse().ok()
    })
}

#[test]
fn domctl_scheduler_op_matches_xen_public() {
    let dir = xen_public();
    let Ok(text) = std::fs::read_to_string(dir.join("domctl.h")) else {
        println!("sched_abi: SKIPPED: no {}", dir.join("domctl.h").display());
        return;
    };
    for (name, ours) in [
        ("XEN_DOMCTL_scheduler_op", XEN_DOMCTL_SCHEDULER_OP),
        ("XEN_SCHEDULER_CREDIT", XEN_SCHEDULER_CREDIT),
        ("XEN_DOMCTL_SCHEDOP_putinfo", XEN_DOMCTL_SCHEDOP_PUTINFO),
        ("XEN_DOMCTL_SCHEDOP_getinfo", XEN_DOMCTL_SCHEDOP_GETINFO),
        ("XEN_DOMCTL_SCHEDOP_putvcpuinfo", XEN_DOMCTL_SCHEDOP_PUTVCPUINFO),
        ("XEN_DOMCTL_SCHEDOP_getvcpuinfo", XEN_DOMCTL_SCHEDOP_GETVCPUINFO),
    ] {
        assert_eq!(define(&text, name), Some(ours as i64), "{name} in xen-public/domctl.h");
    }
    if !cfg!(target_arch = "x86_64") || Command::new("cc").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("sched_abi: layout SKIPPED: no C compiler for x86_64");
        return;
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sched_abi_{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (src, exe) = (tmp.join("p.c"), tmp.join("p"));
    std::fs::write(
        &src,
        "#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n#include \"xen.h\"\n#include \"domctl.h\"\n\
         int main(void) { printf(\"%zu %zu %zu %zu %zu\\n\", sizeof(struct xen_domctl_scheduler_op),\n\
         offsetof(struct xen_domctl_scheduler_op, sched_id), offsetof(struct xen_domctl_scheduler_op, cmd),\n\
         offsetof(struct xen_domctl_scheduler_op, u.credit.weight), offsetof(struct xen_domctl_scheduler_op, u.credit.cap));\n\
         return 0; }\n",
    )
    .unwrap();
    let out =
        Command::new("cc").args(["-std=gnu11", "-D__XEN_TOOLS__", "-iquote"]).arg(&dir).arg(&src).arg("-o").arg(&exe).output().unwrap();
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&exe).output().unwrap();
    let got: Vec<usize> = String::from_utf8_lossy(&run.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();
    use std::mem::{offset_of, size_of};
    let ours = vec![
        size_of::<DomctlSchedulerOp>(),
        offset_of!(DomctlSchedulerOp, sched_id),
        offset_of!(DomctlSchedulerOp, cmd),
        offset_of!(DomctlSchedulerOp, weight),
        offset_of!(DomctlSchedulerOp, cap),
    ];
    assert_eq!(got, ours, "struct xen_domctl_scheduler_op: size, sched_id, cmd, u.credit.weight, u.credit.cap");
}
