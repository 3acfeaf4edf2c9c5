//! The bootable image: the hypervisor core plus the bare-metal x86_64 layer (`hv::arch`), booted
//! by QEMU (PVH) with a boot pack of domains as its module. Built by `cargo xtask boot-hw`.

#![no_std]
#![no_main]

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    struct Buf([u8; 256], usize);
    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if self.1 < self.0.len() {
                    self.0[self.1] = b;
                    self.1 += 1;
                }
            }
            Ok(())
        }
    }
    let mut b = Buf([0; 256], 0);
    let _ = write!(b, "{info}");
    hv::arch::x86_64::panic_exit(core::str::from_utf8(&b.0[..b.1]).unwrap_or("panic"))
}
