//! The boot pack decoder (`hv::pack::read`), which the bootable image runs on its module.
//! It may not panic, and what it decodes must survive an encode/decode round trip unchanged.
#![no_main]

use hv::pack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(p) = pack::read(data) else { return };
    let again = pack::read(&pack::write(p.run_for_ns, &p.domains, &p.steps)).expect("a written pack reads back");
    assert_eq!(again.run_for_ns, p.run_for_ns);
    assert_eq!(again.domains.len(), p.domains.len());
    for (a, b) in again.domains.iter().zip(&p.domains) {
        assert_eq!(
            (&a.name, &a.kernel_name, &a.cmdline, a.memory_mib, a.vcpus, &a.kernel),
            (&b.name, &b.kernel_name, &b.cmdline, b.memory_mib, b.vcpus, &b.kernel)
        );
        assert_eq!((a.on_poweroff, a.on_reboot, a.on_crash), (b.on_poweroff, b.on_reboot, b.on_crash));
        assert_eq!((&a.initrd, a.weight, a.cap, a.privileged), (&b.initrd, b.weight, b.cap, b.privileged));
    }
    // The scenario's steps (sched-credit, input bytes, ...) too.
    assert_eq!(again.steps, p.steps);
});
